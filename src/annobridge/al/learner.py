"""A Learner: one spaCy component that can be fit on labelled docs and asked how unsure it is.

=====================  ====================  =====================================================
task                   component             probabilities used for uncertainty
=====================  ====================  =====================================================
textcat                ``textcat`` (BOW)     softmax over the labels (``exclusive``)
textcat_multilabel     ``textcat_multilabel``  one sigmoid per label (``independent``, mean)
ner                    ``beam_ner``          probabilities of the beam's complete parses
                                             (``exclusive``); entity scores = their marginals
spans                  ``spancat``           sigmoid per candidate span and label (``independent``, max)
=====================  ====================  =====================================================

The plain transition-based ``ner`` has no usable probabilities, so ``ner`` means ``beam_ner``.

Pool scoring streams: documents are read, scored and dropped batch by batch, and only the best
candidates (a bounded heap) are kept with their pre-annotations.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

from ..errors import UsageError
from ..model import Document, Prediction, Span, TaskKind
from .gpu import Device, select_device, to_host
from .pipeline import component_config, is_initialized, load_pipeline, prepare_pipeline
from .strategies import Candidate, ProbBatch, TopCandidates, check_strategy, uncertainty

__all__ = ["BatchOutput", "FitReport", "Learner", "LearnerConfig", "PoolScores"]

FIT_MODES = ("warm", "retrain")
#: where ``score_pool`` runs: in this process, or on Ray Data (the ``ray`` extra)
ENGINES = ("local", "ray")

log = logging.getLogger(__name__)


@dataclass
class LearnerConfig:
    """Settings of a built pipeline and of training. Defaults are small and CPU-friendly."""

    lang: str = "en"
    spans_key: str = "sc"
    #: tok2vec (ner, spans): HashEmbedCNN width / depth / embedding rows
    width: int = 96
    depth: int = 4
    embed_size: int = 2000
    beam_width: int = 8
    beam_density: float = 0.01
    #: textcat BOW n-gram size
    ngram_size: int = 2
    ngram_sizes: tuple[int, ...] = (1, 2, 3)
    #: a fit from scratch: ``epochs`` passes, but at least ``min_steps`` updates
    epochs: int = 10
    min_steps: int = 60
    #: a warm start continues the current weights for ``warm_epochs`` passes (>= ``warm_min_steps``)
    warm_epochs: int = 3
    warm_min_steps: int = 20
    batch_size: int = 16
    dropout: float = 0.2
    #: ``warm`` (default; see docs/benchmarks.md, measured against ``retrain``) or ``retrain``
    fit_mode: str = "warm"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ngram_sizes"] = list(self.ngram_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnerConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "ngram_sizes" in known:
            known["ngram_sizes"] = tuple(known["ngram_sizes"])
        return cls(**known)


@dataclass
class FitReport:
    mode: str
    examples: int
    epochs: int
    steps: int
    seconds: float
    loss: float


@dataclass
class PoolScores:
    """The outcome of scoring a pool: the best candidates (best first) and how fast it went."""

    candidates: list[Candidate]
    strategy: str
    scored: int
    skipped: int
    seconds: float
    cold_start: bool = False
    #: ``local`` or ``ray``; on Ray, ``startup_seconds`` of ``seconds`` went to connecting and shipping the model
    engine: str = "local"
    startup_seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class BatchOutput:
    """One scored batch: the documents, their probabilities (on the device) and lazy pre-annotations."""

    learner: Learner
    documents: list[Document]
    docs: list[Doc]
    probs: ProbBatch
    #: beam_ner: per doc the (probability, [(start_tok, end_tok, label)]) parses
    parses: list[list[tuple[float, list[tuple[int, int, str]]]]] = field(default_factory=list)
    #: spancat: candidate (start_tok, end_tok) rows and row offsets per doc (host)
    span_indices: numpy.ndarray | None = None
    span_offsets: numpy.ndarray | None = None
    _host: numpy.ndarray | None = None

    def host_probs(self) -> numpy.ndarray:
        if self._host is None:
            self._host = numpy.asarray(to_host(self.learner.ops, self.probs.probs))
        return self._host

    def prediction(self, i: int, model_version: str, score: float | None = None) -> Prediction:
        return self.learner._prediction(self, i, model_version, score)


def check_engine(engine: str, workers: int | None) -> None:
    """A clear UsageError for an engine or worker count that score_pool cannot run with."""
    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if workers is not None and workers < 1:
        raise UsageError("workers must be at least 1")


def read_pool(path: str | os.PathLike[str]) -> Iterator[Document]:
    """A pool file (path or URL) streamed by :mod:`annobridge.readers`; a bad line is logged and costs only itself."""
    from ..readers import read_documents

    return read_documents(
        path if isinstance(path, str) else Path(path),
        on_skip=lambda where, reason: log.warning("pool %s skipped: %s", where, reason),
    )


def _with_overrides(config: LearnerConfig, overrides: dict[str, Any]) -> LearnerConfig:
    """``config`` with ``Learner(..., width=64)``-style keyword settings applied (in place)."""
    for key, value in overrides.items():
        if key not in LearnerConfig.__dataclass_fields__:
            raise TypeError(f"Unknown Learner setting {key!r}")
        setattr(config, key, value)
    return config


def _candidate(out: BatchOutput, j: int, index: int, score: float, version: str) -> Candidate:
    return Candidate(score, index, out.documents[j], out.prediction(j, version, round(score, 6)))


class Learner:
    """Fit a spaCy component on labelled docs, predict per-document probabilities for a pool.

    >>> learner = Learner("textcat", ["ham", "spam"])
    >>> learner.fit(gold_docs)                       # spaCy Docs with cats / ents / spans set
    >>> scores = learner.score_pool(documents, "entropy", keep=200)
    """

    def __init__(
        self,
        task: TaskKind | str,
        labels: Sequence[str],
        *,
        nlp: Language | None = None,
        component: str | None = None,
        config: LearnerConfig | None = None,
        gpu: int | None = None,
        _added: bool = False,
        **overrides: Any,
    ) -> None:
        self.task = TaskKind(task)
        self.labels = list(dict.fromkeys(labels))
        if not self.labels:
            raise UsageError("A Learner needs the label set (e.g. labels=['ham', 'spam']).")
        if self.task == TaskKind.TEXTCAT and len(self.labels) < 2:
            raise UsageError("Exclusive textcat needs at least two labels; use textcat_multilabel for yes/no.")
        self.config = _with_overrides(config or LearnerConfig(), overrides)
        if self.config.fit_mode not in FIT_MODES:
            raise UsageError(f"fit_mode must be one of {', '.join(FIT_MODES)}, not {self.config.fit_mode!r}")
        # The device first: models keep the Ops current when they are created.
        self.device: Device = select_device(gpu)
        self._user_nlp = nlp is not None
        #: a component added to a user's pipeline runs on tokens alone: no upstream component is run for it
        self._added = _added
        #: the pipeline a from_pipeline Learner was loaded from (``retrain`` after a resume goes back to it)
        self.base_pipeline: str | None = None
        #: what from_pipeline found, switched or added (for the user)
        self.notes: list[str] = []
        self.component = component or ("ner" if self.task == TaskKind.NER else self._factory())
        self.nlp: Language = nlp if nlp is not None else self._build()
        self._check_component()
        self._snapshot: bytes | None = None
        self.optimizer: Any = None
        self.fitted = False
        self.fits = 0
        self._pool_rng = numpy.random.default_rng(self.config.seed)

    # -- pipeline -------------------------------------------------------------

    def _factory(self) -> str:
        return {
            TaskKind.TEXTCAT: "textcat",
            TaskKind.TEXTCAT_MULTILABEL: "textcat_multilabel",
            TaskKind.NER: "beam_ner",
            TaskKind.SPANS: "spancat",
        }[self.task]

    def _build(self) -> Language:
        nlp = spacy.blank(self.config.lang)
        factory, cfg = component_config(self.task, self.config)
        pipe = nlp.add_pipe(factory, name=self.component, config=cfg)
        for label in self.labels:
            pipe.add_label(label)  # type: ignore[attr-defined]
        return nlp

    @classmethod
    def from_pipeline(
        cls,
        pipeline: str | Path | Language,
        task: TaskKind | str,
        labels: Sequence[str],
        *,
        component: str | None = None,
        config: LearnerConfig | None = None,
        gpu: int | None = None,
        **overrides: Any,
    ) -> Learner:
        """A Learner that fine-tunes a component of your own spaCy pipeline (see ``annobridge.al.pipeline``).

        ``pipeline``: an installed package name, a pipeline folder (``spacy train``'s ``model-best``) or
        a loaded ``Language``. ``learner.notes`` says what was found, switched or added.
        """
        config = _with_overrides(config or LearnerConfig(), overrides)
        select_device(gpu)  # before the pipeline is loaded, so its weights land on the device
        nlp = pipeline if isinstance(pipeline, Language) else load_pipeline(pipeline)
        prepared = prepare_pipeline(nlp, task, labels, component=component, config=config)
        learner = cls(task, prepared.labels, nlp=prepared.nlp, component=prepared.component, config=config, gpu=gpu,
                      _added=prepared.added)
        learner.base_pipeline = None if isinstance(pipeline, Language) else str(pipeline)
        learner.notes = prepared.notes
        # A trained target can score the pool before any fit: no random cold start.
        learner.fitted = prepared.trained
        if prepared.trained:
            learner._snapshot = learner.nlp.to_bytes()  # what ``retrain`` goes back to
        return learner

    def _check_component(self) -> None:
        if self.component not in self.nlp.pipe_names:
            raise UsageError(f"The pipeline has no component {self.component!r} (it has {self.nlp.pipe_names}).")
        pipe = self.pipe
        if self.task == TaskKind.NER and int(getattr(pipe, "cfg", {}).get("beam_width", 1)) < 2:
            raise UsageError(
                f"Component {self.component!r} is a greedy NER: it gives no entity probabilities. "
                "Use a beam_ner component (factory 'beam_ner') or task 'spans' with spancat."
            )
        if self.task == TaskKind.SPANS and not hasattr(pipe, "suggester"):
            raise UsageError(f"Component {self.component!r} is not a spancat component.")
        if self.task in (TaskKind.TEXTCAT, TaskKind.TEXTCAT_MULTILABEL):
            exclusive = getattr(pipe, "cfg", {}).get("exclusive_classes", getattr(pipe, "exclusive", None))
            if exclusive is not None and bool(exclusive) != (self.task == TaskKind.TEXTCAT):
                raise UsageError(f"Component {self.component!r} does not match task {self.task.value}.")
        # Upstream components (a shared tok2vec, a tagger a textcat reads) run before the target.
        names = self.nlp.pipe_names
        before = [] if self._added else self.nlp.pipeline[: names.index(self.component)]
        self._upstream = list(before)
        # Trained with the target: a component it listens to (a shared tok2vec, a transformer).
        listened = {n for n, p in before if self.component in getattr(p, "listener_map", {})}
        self._trainable = {self.component} | listened | ({"tok2vec"} & {n for n, _ in before})

    @property
    def pipe(self) -> Any:
        return self.nlp.get_pipe(self.component)

    @property
    def ops(self) -> Any:
        return self.pipe.model.ops

    @property
    def name(self) -> str:
        return f"annobridge-al-{self.task.value}"

    # -- training ---------------------------------------------------------------

    def examples(self, docs: Iterable[Doc]) -> list[Example]:
        """Training examples: the gold doc's text re-tokenized by this pipeline, its annotations aligned."""
        return [Example(self.nlp.make_doc(d.text), self._own_vocab(d)) for d in docs if len(d)]

    def _own_vocab(self, doc: Doc) -> Doc:
        """The gold doc in this pipeline's vocab: components initialise from the reference docs, and a
        pipeline's static vectors live in its vocab (a doc made elsewhere would show none)."""
        if doc.vocab is self.nlp.vocab or self.nlp.vocab.vectors.shape[0] == 0:
            return doc
        return Doc(self.nlp.vocab).from_bytes(doc.to_bytes())

    def fit(self, docs: Sequence[Doc] | Sequence[Example], *, mode: str | None = None) -> FitReport:
        """Train on all labelled docs so far (gold ``Doc`` objects, or ``Example`` objects).

        ``warm`` continues from the current weights (a fresh model the first time); ``retrain``
        starts from fresh weights every time. Both see every labelled doc each pass.
        """
        mode = mode or self.config.fit_mode
        if mode not in FIT_MODES:
            raise UsageError(f"fit mode must be one of {', '.join(FIT_MODES)}, not {mode!r}")
        gold = [d.reference if isinstance(d, Example) else d for d in docs]
        if not any(len(d) for d in gold):
            raise UsageError("Nothing to learn from: no labelled documents with text.")
        t0 = time.perf_counter()
        warm = mode == "warm" and self.fitted
        if not warm:
            fix_random_seed(self.config.seed)
            if not self._user_nlp:
                # A fresh pipeline (and vocab) before the examples are made against it.
                self.nlp = self._build()
                self._check_component()
            elif self._snapshot is not None or self.fitted:
                self.nlp.from_bytes(self._snapshot if self._snapshot is not None else self._base_snapshot())
        examples = self.examples(gold)
        # A warm fit without an optimizer is the first fit of a pretrained component (from_pipeline).
        if not warm or self.optimizer is None:
            if not self._user_nlp:
                self.optimizer = self.nlp.initialize(lambda: examples)
            elif self._snapshot is not None and not warm:
                # a new optimizer: resume_training() would hand back the old one, moments and all
                self.optimizer = self.nlp.resume_training(sgd=self.nlp.create_optimizer())
            else:
                self.optimizer = self._initialize_fresh(examples)  # trained components keep their weights
                if self._snapshot is None:
                    self._snapshot = self.nlp.to_bytes()
        if not warm:
            # Dropout draws from the global RNG: restart it so a retrain repeats exactly.
            fix_random_seed(self.config.seed)
        c = self.config
        n_batches = math.ceil(len(examples) / c.batch_size)
        epochs = c.warm_epochs if warm else c.epochs
        epochs = max(epochs, math.ceil((c.warm_min_steps if warm else c.min_steps) / n_batches))
        # A retrain on the same docs repeats itself exactly; warm starts vary the order.
        rng = random.Random(c.seed * 1000 + (self.fits if warm else len(examples)))
        exclude = [n for n in self.nlp.pipe_names if n not in self._trainable]
        losses: dict[str, float] = {}
        steps = 0
        order = list(examples)
        for _ in range(epochs):
            rng.shuffle(order)
            for batch in minibatch(order, size=c.batch_size):
                self.nlp.update(batch, sgd=self.optimizer, drop=c.dropout, losses=losses, exclude=exclude)
                steps += 1
        self.fitted = True
        self.fits += 1
        return FitReport(
            mode="warm" if warm else "retrain",
            examples=len(examples),
            epochs=epochs,
            steps=steps,
            seconds=time.perf_counter() - t0,
            loss=float(losses.get(self.component, 0.0)),
        )

    def _initialize_fresh(self, examples: list[Example]) -> Any:
        """Initialise the user pipeline's components that have no weights; keep the trained ones.

        ``nlp.initialize`` would re-initialise every component, a pretrained one included (spaCy's own
        ``spacy train`` leaves frozen and sourced components out of it the same way).
        """
        fresh = [(n, p) for n, p in self.nlp.pipeline if not is_initialized(p)]
        if len(fresh) == len(self.nlp.pipeline):
            return self.nlp.initialize(lambda: examples)
        for _, proc in fresh:
            proc.initialize(lambda: examples, nlp=self.nlp)  # type: ignore[attr-defined]
        self.nlp._link_components()  # listeners find their upstream model, as initialize() would do
        return self.nlp.resume_training(sgd=self.nlp.create_optimizer())

    def _base_snapshot(self) -> bytes:
        """The weights ``retrain`` returns to after a resume: the base pipeline as from_pipeline made it."""
        if self.base_pipeline is None:
            return self.nlp.to_bytes()  # a pipeline handed in as an object: the current weights
        prepared = prepare_pipeline(load_pipeline(self.base_pipeline), self.task, self.labels,
                                    component=self.component, config=self.config)
        if prepared.added:
            return self.nlp.to_bytes()  # the component was new: there are no base weights to go back to
        self._snapshot = prepared.nlp.to_bytes()
        return self._snapshot

    # -- evaluation ---------------------------------------------------------------

    @property
    def score_key(self) -> str:
        if self.task == TaskKind.NER:
            return "ents_f"
        if self.task == TaskKind.SPANS:
            return f"spans_{self.config.spans_key}_f"
        return "cats_score"

    def evaluate(self, docs: Sequence[Doc], batch_size: int = 256) -> dict[str, float]:
        """Score on gold docs. ``score`` is the task's main figure (ents_f, spans_sc_f, cats_score)."""
        examples = self.examples(docs)
        if not examples:
            raise UsageError("The dev set is empty.")
        if not self.fitted:
            return {"score": 0.0}
        raw = self.nlp.evaluate(examples, batch_size=batch_size)
        out = {k: float(v) for k, v in raw.items() if isinstance(v, (int, float)) and not k.startswith("speed")}
        out["score"] = float(raw.get(self.score_key) or 0.0)
        return out

    # -- prediction ---------------------------------------------------------------

    def batches(self, documents: Iterable[Document], *, batch_size: int = 256) -> Iterator[BatchOutput]:
        """Stream ``documents`` in batches through the model; nothing outlives its batch but what you keep."""
        if not self.fitted:
            raise UsageError("The Learner has not been fit yet: nothing to predict with.")
        it = iter(documents)
        while True:
            chunk = list(islice(it, batch_size))
            if not chunk:
                return
            yield self._predict_batch(chunk)

    def _predict_batch(self, documents: list[Document]) -> BatchOutput:
        docs = [self.nlp.make_doc(d.text) for d in documents]
        for _, proc in self._upstream:
            docs = list(proc.pipe(docs, batch_size=len(docs)))  # type: ignore[attr-defined]
        pipe = self.pipe
        ops = self.ops
        n = len(docs)
        if self.task in (TaskKind.TEXTCAT, TaskKind.TEXTCAT_MULTILABEL):
            scores = pipe.predict(docs)
            kind = "exclusive" if self.task == TaskKind.TEXTCAT else "independent"
            return BatchOutput(self, documents, docs, ProbBatch(kind, scores, n))  # type: ignore[arg-type]
        if self.task == TaskKind.NER:
            width = int(pipe.cfg.get("beam_width", self.config.beam_width))
            table = numpy.zeros((n, max(2, width)), dtype="float32")
            parses: list[list[tuple[float, list[tuple[int, int, str]]]]] = [[] for _ in range(n)]
            if any(len(d) for d in docs):
                beams = pipe.predict(docs)
                for i, beam in enumerate(beams):
                    found = pipe.moves.get_beam_parses(beam)
                    total = sum(p for p, _ in found) or 1.0
                    parses[i] = sorted(((p / total, ents) for p, ents in found), key=lambda t: -t[0])
                    for j, (p, _) in enumerate(parses[i][: table.shape[1]]):
                        table[i, j] = p
            for i, d in enumerate(docs):
                if not len(d):
                    table[i, 0] = 1.0  # an empty document is certain: nothing to find
            return BatchOutput(self, documents, docs, ProbBatch("exclusive", ops.asarray2f(table), n), parses=parses)
        indices, scores = pipe.predict(docs)
        lengths = numpy.asarray(to_host(ops, indices.lengths), dtype="int32")
        offsets = numpy.concatenate([[0], numpy.cumsum(lengths)]).astype("int64")
        if scores.size == 0:
            scores = ops.alloc2f(0, len(self.labels))
        return BatchOutput(
            self,
            documents,
            docs,
            ProbBatch("independent", scores, n, lengths=lengths, agg="max"),
            span_indices=numpy.asarray(to_host(ops, indices.dataXd)),
            span_offsets=offsets,
        )

    def _prediction(self, out: BatchOutput, i: int, model_version: str, score: float | None) -> Prediction:
        doc = out.docs[i]
        pred = Prediction(model_version=model_version, score=score)
        if self.task in (TaskKind.TEXTCAT, TaskKind.TEXTCAT_MULTILABEL):
            row = out.host_probs()[i]
            labels = list(self.pipe.labels)
            pred.categories = {label: round(float(row[j]), 6) for j, label in enumerate(labels)}
        elif self.task == TaskKind.NER:
            parses = out.parses[i]
            if parses:
                marginal: dict[tuple[int, int, str], float] = {}
                for p, ents in parses:
                    for key in ents:
                        marginal[key] = marginal.get(key, 0.0) + p
                for start, end, label in parses[0][1]:
                    sp = doc[start:end]
                    prob = round(marginal[(start, end, label)], 6)
                    pred.spans.append(Span(sp.start_char, sp.end_char, label, score=prob, text=sp.text))
        else:
            assert out.span_indices is not None and out.span_offsets is not None
            lo, hi = int(out.span_offsets[i]), int(out.span_offsets[i + 1])
            rows = out.host_probs()[lo:hi] if hi > lo else numpy.zeros((0, len(self.labels)))
            threshold = float(self.pipe.cfg.get("threshold", 0.5))
            labels = list(self.pipe.labels)
            for r, (start, end) in enumerate(out.span_indices[lo:hi]):
                for j, label in enumerate(labels):
                    if rows[r, j] >= threshold:
                        sp = doc[int(start) : int(end)]
                        pred.spans.append(
                            Span(sp.start_char, sp.end_char, label, score=round(float(rows[r, j]), 6), text=sp.text)
                        )
        return pred

    def doc_vectors(self, documents: Sequence[Document], *, batch_size: int = 256, dim: int = 256) -> numpy.ndarray:
        """One unit-length vector per document, from the model itself (host array, ``(n, width)``).

        ner / spans (and any component with a ``tok2vec`` sub-model, or a listener on a ``tok2vec``
        component): the tok2vec output mean-pooled over the document's tokens. The BOW ``textcat``
        models have no tok2vec: their own hashed n-gram features (``extract_ngrams``, the keys the
        sparse linear layer reads) are folded into ``dim`` buckets, count-weighted (``log1p``).
        Meant for a bounded candidate set, not a whole pool.
        """
        if not self.fitted:
            raise UsageError("The Learner has not been fit yet: it has no document vectors.")
        out: list[numpy.ndarray] = []
        for start in range(0, len(documents), batch_size):
            chunk = documents[start : start + batch_size]
            docs = [self.nlp.make_doc(d.text) for d in chunk]
            for _, proc in self._upstream:
                docs = list(proc.pipe(docs, batch_size=len(docs)))  # type: ignore[attr-defined]
            out.append(self._vectors(docs, dim))
        if not out:
            return numpy.zeros((0, dim), dtype="float32")
        vectors = numpy.concatenate(out, axis=0).astype("float32")
        norms = numpy.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / numpy.where(norms > 0, norms, 1.0)

    def _tok2vec_model(self) -> Any:
        model = self.pipe.model
        if "tok2vec" not in model.ref_names:
            return None
        t2v = model.get_ref("tok2vec")
        if t2v.name.startswith("with_getitem"):  # spancat: with_getitem(0, tok2vec) over (docs, spans)
            t2v = t2v.layers[0]
        if "listener" in t2v.name and "tok2vec" in self.nlp.pipe_names:
            t2v = self.nlp.get_pipe("tok2vec").model  # type: ignore[attr-defined]
        return t2v

    def _vectors(self, docs: list[Doc], dim: int) -> numpy.ndarray:
        ops = self.ops
        lengths = numpy.asarray([len(d) for d in docs], dtype="int64")
        t2v = self._tok2vec_model()
        if t2v is not None:
            width = None
            if any(lengths):
                found = t2v.predict(docs)
                if isinstance(found, list):
                    rows = [ops.xp.asarray(a).mean(axis=0) if len(a) else None for a in found]
                    width = next(int(r.shape[0]) for r in rows if r is not None)
                    pooled = ops.xp.stack([r if r is not None else ops.xp.zeros((width,), "float32") for r in rows])
                    return numpy.asarray(to_host(ops, pooled), dtype="float32")
                flat = found.dataXd if hasattr(found, "dataXd") else found  # a Ragged, or all tokens stacked
                width = int(flat.shape[1])
                ends = numpy.cumsum(lengths)
                cum = ops.xp.concatenate([ops.xp.zeros((1, width), dtype="float32"), ops.xp.cumsum(flat, axis=0)])
                sums = cum[ops.xp.asarray(ends)] - cum[ops.xp.asarray(ends - lengths)]
                pooled = sums / ops.xp.asarray(numpy.maximum(lengths, 1)[:, None], dtype="float32")
                return numpy.asarray(to_host(ops, pooled), dtype="float32")
            return numpy.zeros((len(docs), int(t2v.get_dim("nO") or dim)), dtype="float32")
        extractor = self._ngram_extractor()
        table = numpy.zeros((len(docs), dim), dtype="float32")
        if extractor is None:  # no features of its own to read: hashed lower-cased words
            for i, doc in enumerate(docs):
                for token in doc:
                    table[i, token.lower % dim] += 1.0
        else:
            keys, values, key_lengths = extractor.predict(docs)
            keys = numpy.asarray(to_host(ops, keys)).astype("uint64")
            values = numpy.asarray(to_host(ops, values), dtype="float32")
            owner = numpy.repeat(numpy.arange(len(docs)), numpy.asarray(to_host(ops, key_lengths), dtype="int64"))
            numpy.add.at(table, (owner, (keys % numpy.uint64(dim)).astype("int64")), values)
        return numpy.log1p(table)

    def _ngram_extractor(self) -> Any:
        for node in self.pipe.model.walk():
            if node.name == "extract_ngrams":
                return node
        return None

    def predict(
        self, documents: Iterable[Document], *, batch_size: int = 256, model_version: str | None = None
    ) -> Iterator[tuple[Document, Prediction]]:
        """Per-document predictions with probabilities (categories, or spans with scores)."""
        version = model_version or self.name
        for out in self.batches(documents, batch_size=batch_size):
            for i, document in enumerate(out.documents):
                yield document, out.prediction(i, version)

    def score_pool(
        self,
        documents: Iterable[Document] | str | os.PathLike[str],
        strategy: str,
        *,
        keep: int,
        batch_size: int = 256,
        exclude_ids: Iterable[str] = (),
        model_version: str | None = None,
        with_predictions: bool = True,
        seed: int | None = None,
        engine: str = "local",
        ray_address: str | None = None,
        workers: int | None = None,
    ) -> PoolScores:
        """Score every pool document and keep the ``keep`` most uncertain, best first.

        ``documents``: Document objects, or a pool file (path or URL) read by :mod:`annobridge.readers`.
        Cold start: before the first fit there is no model to be unsure, so the scores are
        random (``cold_start=True``); the batch step still removes near-duplicates.
        ``random`` without ``with_predictions`` skips the model entirely.

        ``engine="ray"`` scores on Ray Data (:mod:`annobridge.al.ray_engine`): on the cluster at
        ``ray_address`` (``ray://host:10001``, ``auto``), else on a local Ray with ``workers`` CPUs.
        The selection is the same as the local engine's for a fitted model; random scores (cold
        start, ``random``) are a function of ``(seed, document id)`` there.
        """
        strategy = check_strategy(strategy)
        if keep < 1:
            raise UsageError("keep must be at least 1")
        check_engine(engine, workers)
        version = model_version or self.name
        if engine == "ray":
            from .ray_engine import score_pool_ray

            return score_pool_ray(
                self,
                documents,
                strategy,
                keep=keep,
                batch_size=batch_size,
                exclude_ids=exclude_ids,
                model_version=version,
                with_predictions=with_predictions,
                seed=self.config.seed if seed is None else seed,
                address=ray_address,
                workers=workers,
            )
        if isinstance(documents, (str, os.PathLike)):
            documents = read_pool(documents)
        cold = not self.fitted
        effective = "random" if cold else strategy
        rng = numpy.random.default_rng(seed) if seed is not None else self._pool_rng
        excluded = set(exclude_ids)
        top = TopCandidates(keep)
        skipped = 0
        index = 0
        t0 = time.perf_counter()

        def fresh(stream: Iterable[Document]) -> Iterator[Document]:
            nonlocal skipped
            for document in stream:
                if document.id in excluded or not document.text.strip():
                    skipped += 1
                    continue
                yield document

        if effective == "random" and (cold or not with_predictions):
            it = fresh(documents)
            while True:
                chunk = list(islice(it, batch_size))
                if not chunk:
                    break
                values = rng.random(len(chunk))
                for j, document in enumerate(chunk):
                    score = float(values[j])
                    top.offer(score, index + j, partial(Candidate, score, index + j, document))
                index += len(chunk)
        else:
            for out in self.batches(fresh(documents), batch_size=batch_size):
                values = to_host(self.ops, uncertainty(out.probs, effective, self.ops, rng=rng))
                floor = top.threshold
                # Only documents that can enter the heap are looked at in Python.
                entering = numpy.flatnonzero(values > floor) if floor != float("-inf") else numpy.arange(len(values))
                for j in entering.tolist():
                    score = float(values[j])
                    top.offer(score, index + j, partial(_candidate, out, j, index + j, score, version))
                index += len(out.documents)
        return PoolScores(
            candidates=top.ranked(),
            strategy=effective,
            scored=index,
            skipped=skipped,
            seconds=time.perf_counter() - t0,
            cold_start=cold,
        )

    # -- persistence ---------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the learner to ``path`` atomically: a crash mid-save leaves the previous model."""
        from ..atomic import replace_dir, staging_dir

        path = Path(path)
        staged = staging_dir(path)
        try:
            self._save_into(staged)
            replace_dir(staged, path)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return path

    def _save_into(self, path: Path) -> None:
        self.nlp.to_disk(path / "pipeline")
        meta = {
            "task": self.task.value,
            "labels": self.labels,
            "component": self.component,
            "config": self.config.to_dict(),
            "fitted": self.fitted,
            "fits": self.fits,
            "user_pipeline": self._user_nlp,
            "added_component": self._added,
            "base_pipeline": self.base_pipeline,
        }
        (path / "learner.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, gpu: int | None = None) -> Learner:
        path = Path(path)
        meta = json.loads((path / "learner.json").read_text(encoding="utf-8"))
        select_device(gpu)  # before spacy.load, so the weights land on the device
        nlp = spacy.load(path / "pipeline")
        learner = cls(
            meta["task"],
            meta["labels"],
            nlp=nlp,
            component=meta["component"],
            config=LearnerConfig.from_dict(meta["config"]),
            gpu=gpu,
            _added=bool(meta.get("added_component", False)),
        )
        learner.base_pipeline = meta.get("base_pipeline")
        learner._user_nlp = bool(meta.get("user_pipeline", False))
        learner.fitted = bool(meta["fitted"])
        learner.fits = int(meta.get("fits", 0))
        if learner.fitted:
            learner.optimizer = learner.nlp.resume_training()
        return learner
