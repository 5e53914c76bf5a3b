"""Inter-annotator agreement over any adapter's pull.

:func:`agreement` reads records (one per document, every annotator's :class:`~annobridge.model.Annotation`)
and reports how far the annotators agree, per label and overall, per annotator pair and per annotator,
with bootstrap confidence intervals over documents. The statistics are computed here with numpy.

Votes follow :mod:`annobridge.merge`: **one vote per annotator per question, their latest answer**
(by timestamp, then list position: :func:`annobridge.merge.latest_votes`). A manual annotation answers
one question, the whole document; a binary one answers one question each (this span? this label?).
``ignore`` and ``skip`` answers are not votes (a later one still withdraws an earlier vote), a rejected
manual annotation is not a vote (it says nothing usable), a rejected binary answer is a "no" vote.
Ground-truth annotations (a reviewer's decisions, e.g. Prodigy's ``review`` output) are their own voter,
named ``"<annotator> (ground truth)"``; they are **left out by default** (the reviewer saw the
annotators' versions, so their agreement is not independent) and counted under ``excluded``;
``include_ground_truth=True`` makes them take part.

Figures (names as in :attr:`AgreementReport.overall` and friends):

``observed``
    share of agreeing pairs: of all pairs of votes given to the same unit by two different voters, the
    share that are equal. No chance correction.
``cohen_kappa`` (pairs, and each voter against the consensus)
    Cohen's kappa over the units both voters answered.
``fleiss_kappa``
    Fleiss' kappa; units with any number (>= 2) of votes, chance agreement from the pooled marginals.
``alpha``
    Krippendorff's alpha, nominal, missing data allowed (units with fewer than two votes do not count).
``f1_exact``, ``f1_overlap`` (span tasks)
    span F1 between voters over the documents both annotated, micro-averaged (counts summed over
    documents, then F1). Exact: same start, end and label. Overlap: a span counts as found when a span
    of the same label overlaps it by at least one character; precision is the share of A's spans found
    by B, recall the share of B's found by A. Summed over every pair of voters for the overall figure.
    Documents where neither voter marked a span add nothing to F1.
``token_alpha``, ``token_observed`` (span tasks)
    Krippendorff's alpha (and observed agreement) over token tags. Texts are tokenised with a blank
    spaCy tokenizer (``spacy.blank(lang)``, ``en`` by default); a token's tag is the label of the span
    that overlaps it, ``"O"`` when none does (manual annotations are complete). ``ner``: one nominal tag
    per token (where spans overlap, the first by start wins). ``spans``: one yes/no unit per token and
    label, pooled over labels for the overall figure. Per label, always yes/no per token.

Units: ``textcat`` manual annotations give one unit per document whose value is the chosen label
(labels with a score >= 0.5, joined by ``+`` when several, ``(none)`` when none); per label, and for
binary category answers, one yes/no unit per (document, label). ``textcat_multilabel``: one yes/no unit
per (document, label), pooled for the overall figures. Binary span answers (``ner.teach``) give one
yes/no unit per (document, span).

Per annotator: documents with a vote, answers given (every answer, superseded ones and ignores
included: it is work done), answers per hour, the main figure against each other voter and against the
consensus of the others. The consensus on a unit is the value a strict majority (more than half) of the
*other* voters gave it (no consensus, no unit); for spans, the spans more than half of the other voters
who annotated the document marked. **Answers per hour** = 3600 / the median of the positive gaps between
the voter's consecutive answer timestamps (sorted); the median ignores breaks between sessions. None
with fewer than two distinct timestamps.

Confidence intervals: a percentile bootstrap over documents (the unit annotators are given): ``bootstrap``
resamples of the compared documents, drawn with a seeded numpy generator, every figure computed on the
same resamples. An interval is None when fewer than 90% of the resamples define the figure.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import DataError, UsageError
from .merge import latest_votes
from .model import Annotation, Answer, Record, TaskKind, content_id

__all__ = [
    "FIGURE_NAMES",
    "AgreementReport",
    "AnnotatorAgreement",
    "Estimate",
    "NotEnoughAnnotatorsError",
    "PairAgreement",
    "agreement",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
]

#: what each figure is, for tables and plots
FIGURE_NAMES = {
    "observed": "observed agreement",
    "cohen_kappa": "Cohen's kappa",
    "fleiss_kappa": "Fleiss' kappa",
    "alpha": "Krippendorff's alpha",
    "f1_exact": "span F1 (exact)",
    "f1_overlap": "span F1 (overlap)",
    "token_alpha": "token alpha",
    "token_observed": "token observed agreement",
}

#: the value of an exclusive textcat vote that chose no label
NO_LABEL = "(none)"
#: ... that chose only labels outside ``labels``
OTHER_LABEL = "(other)"
#: a token outside every span
OUTSIDE = "O"
GROUND_TRUTH_SUFFIX = " (ground truth)"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_DEFINED = 0.9
FloatArray = NDArray[np.float64]


class NotEnoughAnnotatorsError(DataError):
    """Agreement needs two voters on one document at least; the data has fewer."""


# --------------------------------------------------------------------------- statistics
# Each statistic is a function of sums of per-document sufficient statistics, vectorised over
# leading axes: the point estimate applies it to the sum over documents, the bootstrap to many
# resampled sums at once.


def _div(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def _alpha_from_coincidence(o: FloatArray) -> FloatArray:
    """Krippendorff's nominal alpha from coincidence matrices ``(..., k, k)``."""
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    agree = np.trace(o, axis1=-2, axis2=-1)
    expected = n * n - (n_c * n_c).sum(axis=-1)
    return 1.0 - _div((n - 1.0) * (n - agree), expected)


def _kappa_from_table(t: FloatArray) -> FloatArray:
    """Cohen's kappa from contingency tables ``(..., k, k)`` (rows: one rater, columns: the other)."""
    total = t.sum(axis=(-2, -1))
    po = _div(np.trace(t, axis1=-2, axis2=-1), total)
    pe = _div((t.sum(axis=-1) * t.sum(axis=-2)).sum(axis=-1), total * total)
    return _div(po - pe, 1.0 - pe)


def _observed_from_table(t: FloatArray) -> FloatArray:
    return _div(np.trace(t, axis1=-2, axis2=-1), t.sum(axis=(-2, -1)))


def _fleiss_from_sums(s: FloatArray) -> FloatArray:
    """Fleiss' kappa from ``(..., 2 + k)``: sum of per-unit agreement P_i, units, then votes per category."""
    p_bar = _div(s[..., 0], s[..., 1])
    cats = s[..., 2:]
    p = _div(cats, cats.sum(axis=-1, keepdims=True))
    pe = (p * p).sum(axis=-1)
    return _div(p_bar - pe, 1.0 - pe)


def _ratio(s: FloatArray) -> FloatArray:
    return _div(s[..., 0], s[..., 1])


def _f1(s: FloatArray) -> FloatArray:
    """F1 from ``(..., 4)``: A's spans found by B, B's found by A, A's spans, B's spans.

    F1 = 2PR/(P+R) with P = found_a/n_a and R = found_b/n_b; 0 when there are spans and none is
    found, undefined (NaN) when neither voter marked a span.
    """
    found_a, found_b, n_a, n_b = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
    num = 2.0 * found_a * found_b
    den = found_a * n_b + found_b * n_a
    f1 = _div(num, den)
    return np.where(den > 0, f1, np.where(n_a + n_b > 0, 0.0, np.nan))


def krippendorff_alpha(data: ArrayLike) -> float:
    """Krippendorff's alpha (nominal) of reliability data: coders x units, NaN or None where missing.

    Values may be any hashable (numbers or strings); units with fewer than two values do not count.
    """
    rows = [list(row) for row in np.asarray(data, dtype=object)]
    values = sorted({v for row in rows for v in row if not _missing(v)}, key=repr)
    index = {v: i for i, v in enumerate(values)}
    n_units = len(rows[0]) if rows else 0
    codes = np.full((n_units, len(rows)), -1, dtype=np.int64)
    for c, row in enumerate(rows):
        for u, v in enumerate(row):
            if not _missing(v):
                codes[u, c] = index[v]
    return _float(_alpha_from_coincidence(_coincidence(codes, len(values)).sum(axis=0)))


def fleiss_kappa(counts: ArrayLike) -> float:
    """Fleiss' kappa from a units x categories table of how many raters chose each category."""
    table = np.asarray(counts, dtype=np.float64)
    return _float(_fleiss_from_sums(_fleiss_rows(table).sum(axis=0)))


def cohen_kappa(table: ArrayLike) -> float:
    """Cohen's kappa from a k x k contingency table (rows: rater A's category, columns: rater B's)."""
    return _float(_kappa_from_table(np.asarray(table, dtype=np.float64)))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _float(value: Any) -> float:
    return float(np.asarray(value))


def _counts(codes: NDArray[np.int64], k: int) -> FloatArray:
    """Votes per category per unit, ``(units, k)``, from codes ``(units, voters)`` (-1: no vote)."""
    out = np.zeros((codes.shape[0], k), dtype=np.float64)
    for column in codes.T:
        has = column >= 0
        np.add.at(out, (np.nonzero(has)[0], column[has]), 1.0)
    return out


def _coincidence(codes: NDArray[np.int64], k: int) -> FloatArray:
    """Per-unit coincidence matrices ``(units, k, k)``: (n n^T - diag n) / (m - 1), 0 for m < 2."""
    n = _counts(codes, k)
    m = n.sum(axis=1)
    scale = np.where(m > 1, 1.0 / np.where(m > 1, m - 1.0, 1.0), 0.0)
    o = n[:, :, None] * n[:, None, :]
    idx = np.arange(k)
    o[:, idx, idx] -= n
    return np.asarray(o * scale[:, None, None], dtype=np.float64)


def _fleiss_rows(n: FloatArray) -> FloatArray:
    """Per-unit Fleiss terms ``(units, 2 + k)`` from vote counts; units with fewer than two votes are zero."""
    m = n.sum(axis=1)
    ok = m > 1
    p_i = np.where(ok, _div((n * n).sum(axis=1) - m, m * (m - 1.0)), 0.0)
    return np.concatenate([p_i[:, None], ok[:, None].astype(np.float64), n * ok[:, None]], axis=1)


def _per_doc(doc: NDArray[np.int64], rows: FloatArray, n_docs: int) -> FloatArray:
    out = np.zeros((n_docs, rows.shape[1]), dtype=np.float64)
    np.add.at(out, doc, rows)
    return out


# --------------------------------------------------------------------------- report


@dataclass
class Estimate:
    """One figure: its value (None when undefined), a bootstrap interval, and what it rests on."""

    value: float | None
    ci: tuple[float, float] | None = None
    #: units compared (spans for F1)
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "n": self.n}


@dataclass
class PairAgreement:
    """Two voters over the documents both annotated."""

    a: str
    b: str
    documents: int
    figures: dict[str, Estimate] = field(default_factory=dict)
    per_label: dict[str, dict[str, Estimate]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "documents": self.documents,
            "figures": _figures_dict(self.figures),
            "per_label": {label: _figures_dict(f) for label, f in self.per_label.items()},
        }


@dataclass
class AnnotatorAgreement:
    """One voter: how much they did, how fast, and how they agree with the others."""

    name: str
    ground_truth: bool
    #: documents where this voter has a vote
    documents: int
    #: every answer they gave (superseded, ignored and skipped ones included)
    answers: int
    answers_per_hour: float | None
    #: the main figure against each other voter (None when they share no document)
    agreement: dict[str, float | None] = field(default_factory=dict)
    #: figures against the consensus (strict majority) of the other voters
    consensus: dict[str, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ground_truth": self.ground_truth,
            "documents": self.documents,
            "answers": self.answers,
            "answers_per_hour": self.answers_per_hour,
            "agreement": dict(self.agreement),
            "consensus": _figures_dict(self.consensus),
        }


def _figures_dict(figures: dict[str, Estimate]) -> dict[str, Any]:
    return {name: estimate.to_dict() for name, estimate in figures.items()}


@dataclass
class AgreementReport:
    """What :func:`agreement` found. ``to_dict()`` is JSON-ready (no NaN: undefined is None)."""

    task: str
    #: the figure of the annotator x annotator matrix: f1_exact (span tasks) or cohen_kappa
    metric: str
    labels: list[str]
    annotators: list[str]
    records: int
    #: documents with votes from two voters or more (the bootstrap resamples these)
    documents_compared: int
    overall: dict[str, Estimate] = field(default_factory=dict)
    per_label: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    pairs: list[PairAgreement] = field(default_factory=list)
    per_annotator: list[AnnotatorAgreement] = field(default_factory=list)
    #: answers and spans that are not votes, by reason
    excluded: Counter[str] = field(default_factory=Counter)
    #: answers superseded by the same voter's later answer to the same question
    superseded: int = 0
    bootstrap: int = 0
    seed: int = 0
    confidence: float = 0.95
    tokenizer: str | None = None
    include_ground_truth: bool = False
    include_text: bool = True
    #: a few documents where the voters disagree (texts only when include_text)
    examples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def pair(self, a: str, b: str) -> PairAgreement | None:
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        return None

    def matrix(self, metric: str | None = None) -> list[list[float | None]]:
        """Annotator x annotator values of ``metric`` (default: the main one), 1.0 on the diagonal."""
        name = metric or self.metric
        index = {a: i for i, a in enumerate(self.annotators)}
        size = len(self.annotators)
        out: list[list[float | None]] = [[1.0 if i == j else None for j in range(size)] for i in range(size)]
        for p in self.pairs:
            estimate = p.figures.get(name)
            value = estimate.value if estimate else None
            out[index[p.a]][index[p.b]] = out[index[p.b]][index[p.a]] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "labels": list(self.labels),
            "annotators": list(self.annotators),
            "records": self.records,
            "documents_compared": self.documents_compared,
            "overall": _figures_dict(self.overall),
            "per_label": {label: _figures_dict(f) for label, f in self.per_label.items()},
            "pairs": [p.to_dict() for p in self.pairs],
            "matrix": self.matrix(),
            "per_annotator": [a.to_dict() for a in self.per_annotator],
            "excluded": dict(self.excluded.most_common()),
            "superseded": self.superseded,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence": self.confidence,
            "tokenizer": self.tokenizer,
            "include_ground_truth": self.include_ground_truth,
            "include_text": self.include_text,
            "examples": self.examples,
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- bootstrap


class _Stats:
    """Figures to estimate, each a function of summed per-document statistics, bootstrapped together."""

    def __init__(self, n_docs: int) -> None:
        self.n_docs = n_docs
        self.blocks: list[FloatArray] = []
        self.items: list[tuple[slice, Callable[[FloatArray], FloatArray], tuple[int, ...], Estimate]] = []
        self.width = 0

    def add(self, per_doc: FloatArray, fn: Callable[[FloatArray], FloatArray], n: int) -> Estimate:
        """``per_doc``: ``(docs, *shape)``; ``fn`` takes ``(..., *shape)``."""
        shape = per_doc.shape[1:]
        flat = per_doc.reshape(self.n_docs, -1)
        value = _float(fn(flat.sum(axis=0).reshape(shape)))
        estimate = Estimate(None if math.isnan(value) else value, None, n)
        self.blocks.append(flat)
        self.items.append((slice(self.width, self.width + flat.shape[1]), fn, shape, estimate))
        self.width += flat.shape[1]
        return estimate

    def run(self, resamples: int, seed: int, confidence: float) -> None:
        if resamples <= 0 or not self.items or self.n_docs == 0:
            return
        data = np.concatenate(self.blocks, axis=1)
        rng = np.random.default_rng(seed)
        chunk = max(1, min(resamples, 2_000_000 // max(self.n_docs, 1)))
        replicates: list[list[FloatArray]] = [[] for _ in self.items]
        done = 0
        while done < resamples:
            b = min(chunk, resamples - done)
            picks = rng.integers(0, self.n_docs, size=(b, self.n_docs))
            flat = (picks + (np.arange(b) * self.n_docs)[:, None]).ravel()
            weights = np.bincount(flat, minlength=b * self.n_docs).reshape(b, self.n_docs).astype(np.float64)
            sums = weights @ data
            for i, (cols, fn, shape, _) in enumerate(self.items):
                replicates[i].append(fn(sums[:, cols].reshape(b, *shape)))
            done += b
        tail = (1.0 - confidence) / 2.0 * 100.0
        for (_, _, _, estimate), reps in zip(self.items, replicates, strict=True):
            values = np.concatenate(reps)
            finite = values[np.isfinite(values)]
            if estimate.value is None or finite.size < _MIN_DEFINED * values.size:
                continue
            low, high = np.percentile(finite, [tail, 100.0 - tail])
            estimate.ci = (float(low), float(high))


# --------------------------------------------------------------------------- votes


@dataclass
class _Voter:
    name: str
    ground_truth: bool
    answers: int = 0
    timestamps: list[float] = field(default_factory=list)
    documents: set[int] = field(default_factory=set)


@dataclass
class _Doc:
    record_id: str
    text: str
    #: voter -> the spans of their accepted manual version (start, end, label)
    spans: dict[str, set[tuple[int, int, str]]] = field(default_factory=dict)
    span_texts: dict[tuple[int, int, str], str] = field(default_factory=dict)
    #: voter -> exclusive textcat value
    choice: dict[str, str] = field(default_factory=dict)
    #: voter -> the labels their accepted manual category vote chose, and its time
    manual_chosen: dict[str, tuple[set[str], datetime]] = field(default_factory=dict)
    #: (question, voter) -> yes/no of binary answers: the question is a label or a span key
    binary: dict[tuple[Hashable, str], bool] = field(default_factory=dict)
    binary_ts: dict[tuple[Hashable, str], datetime] = field(default_factory=dict)

    def voters(self) -> set[str]:
        return set(self.spans) | set(self.manual_chosen) | {v for _, v in self.binary}

    def label_votes(self, label: str) -> list[dict[str, bool]]:
        """Yes/no votes per question about ``label``: one per binary question, one for the document.

        A manual category vote answers the document's question for every label; a binary answer to
        the same label by the same voter replaces it when it is at least as recent.
        """
        questions: dict[Hashable, dict[str, bool]] = defaultdict(dict)
        for (question, voter), value in self.binary.items():
            if (question if isinstance(question, str) else question[2]) == label:  # type: ignore[index]
                questions[question][voter] = value
        doc_votes = questions.pop(label, {})
        for voter, (chosen, ts) in self.manual_chosen.items():
            if voter not in doc_votes or self.binary_ts[(label, voter)] < ts:
                doc_votes[voter] = label in chosen
        return [v for v in [doc_votes, *questions.values()] if v]


def _ts(annotation: Annotation) -> datetime:
    ts = annotation.timestamp
    if ts is None:
        return _EPOCH
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _voter_name(annotation: Annotation) -> str:
    return annotation.annotator + (GROUND_TRUTH_SUFFIX if annotation.ground_truth else "")


def _answers_per_hour(timestamps: list[float]) -> float | None:
    ordered = np.sort(np.asarray(timestamps, dtype=np.float64))
    gaps = np.diff(ordered)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return None
    return float(3600.0 / np.median(gaps))


class _Collector:
    def __init__(self, kind: TaskKind, labels: Sequence[str] | None, include_ground_truth: bool) -> None:
        self.kind = kind
        self.wanted = set(labels) if labels is not None else None
        self.include_ground_truth = include_ground_truth
        self.voters: dict[str, _Voter] = {}
        self.docs: list[_Doc] = []
        self.records = 0
        self.excluded: Counter[str] = Counter()
        self.superseded = 0
        self.labels_seen: set[str] = set()
        self.saw_content = False

    def _keep_label(self, label: str) -> bool:
        if self.wanted is not None and label not in self.wanted:
            return False
        self.labels_seen.add(label)
        return True

    def add(self, record: Record) -> None:
        self.records += 1
        annotations: list[Annotation] = []
        for ann in record.annotations:
            if ann.ground_truth and not self.include_ground_truth:
                self.excluded["ground truth (reviewer decision; count it with --ground-truth)"] += 1
                continue
            annotations.append(ann)
        if not annotations:
            return
        doc_index = len(self.docs)
        doc = _Doc(record.id, record.text)
        for ann in annotations:
            voter = self.voters.setdefault(_voter_name(ann), _Voter(_voter_name(ann), ann.ground_truth))
            voter.answers += 1
            if ann.timestamp is not None:
                voter.timestamps.append(_ts(ann).timestamp())
        manual, superseded = latest_votes(("document", a, a) for a in annotations if a.mode != "binary")
        self.superseded += superseded
        binary_items: list[tuple[Hashable, Annotation, bool | None]] = []
        for _, ann, _ in manual:
            name = _voter_name(ann)
            if ann.answer in (Answer.IGNORE, Answer.SKIP):
                self.excluded["ignored or skipped"] += 1
                continue
            if ann.answer == Answer.REJECT:
                self.excluded["rejected manual annotation (not a vote)"] += 1
                continue
            if self.kind.is_span_task:
                keys: set[tuple[int, int, str]] = set()
                for span in ann.spans:
                    if not self._keep_label(span.label):
                        self.excluded["span with a label outside labels"] += 1
                        continue
                    keys.add(span.key)
                    doc.span_texts.setdefault(span.key, record.text[span.start : span.end])
                self.saw_content = self.saw_content or bool(ann.spans)
                doc.spans[name] = keys
            else:
                self.saw_content = self.saw_content or bool(ann.categories)
                picked = sorted(label for label, v in ann.categories.items() if v >= 0.5)
                chosen = {label for label in ann.categories if self._keep_label(label)} & set(picked)
                if self.kind == TaskKind.TEXTCAT:
                    doc.choice[name] = "+".join(sorted(chosen)) or (OTHER_LABEL if picked else NO_LABEL)
                # complete: every label not chosen is a "no" (filled in per label, see _category_value)
                doc.manual_chosen[name] = (chosen, _ts(ann))
        for ann in annotations:
            if ann.mode != "binary":
                continue
            answer: bool | None = None if ann.answer in (Answer.IGNORE, Answer.SKIP) else ann.answer == Answer.ACCEPT
            if self.kind.is_span_task:
                for span in ann.spans:
                    if not self._keep_label(span.label):
                        self.excluded["span with a label outside labels"] += 1
                        continue
                    self.saw_content = True
                    doc.span_texts.setdefault(span.key, record.text[span.start : span.end])
                    binary_items.append((span.key, ann, answer))
            else:
                for label, score in ann.categories.items():
                    if not self._keep_label(label):
                        continue
                    self.saw_content = True
                    binary_items.append((label, ann, None if answer is None else answer and score > 0.0))
        if binary_items:
            votes, superseded = latest_votes(binary_items)
            self.superseded += superseded
            for question, ann, value in votes:
                if value is None:
                    self.excluded["ignored or skipped"] += 1
                    continue
                doc.binary[(question, _voter_name(ann))] = value
                doc.binary_ts[(question, _voter_name(ann))] = _ts(ann)
        for name in doc.voters():
            self.voters[name].documents.add(doc_index)
        self.docs.append(doc)


# --------------------------------------------------------------------------- families of units


@dataclass
class _Family:
    """Units with nominal values: codes ``(units, voters)``, -1 where a voter gave no vote."""

    codes: NDArray[np.int64]
    doc: NDArray[np.int64]
    k: int


def _family(
    rows: Iterable[tuple[int, dict[int, Hashable]]], n_voters: int, values: Sequence[Hashable] | None = None
) -> _Family:
    """``rows``: (document, {voter index: value}) per unit; units with fewer than two votes are dropped."""
    kept = [(d, votes) for d, votes in rows if len(votes) >= 2]
    if values is None:
        values = sorted({v for _, votes in kept for v in votes.values()}, key=repr)
    index = {v: i for i, v in enumerate(values)}
    codes = np.full((len(kept), n_voters), -1, dtype=np.int64)
    doc = np.zeros(len(kept), dtype=np.int64)
    for u, (d, votes) in enumerate(kept):
        doc[u] = d
        for voter, value in votes.items():
            codes[u, voter] = index[value]
    return _Family(codes, doc, max(len(values), 1))


def _stack(families: Sequence[_Family], n_voters: int) -> _Family:
    if not families:
        return _Family(np.zeros((0, n_voters), dtype=np.int64), np.zeros(0, dtype=np.int64), 2)
    k = max(f.k for f in families)
    return _Family(np.concatenate([f.codes for f in families]), np.concatenate([f.doc for f in families]), k)


def _pair_tables(fam: _Family, a: int, b: int, n_docs: int) -> FloatArray:
    ca, cb = fam.codes[:, a], fam.codes[:, b]
    both = (ca >= 0) & (cb >= 0)
    k = fam.k
    flat = fam.doc[both] * k * k + ca[both] * k + cb[both]
    return np.bincount(flat, minlength=n_docs * k * k).reshape(n_docs, k, k).astype(np.float64)


def _consensus_tables(fam: _Family, voter: int, n_docs: int) -> FloatArray:
    """Per document, this voter's value against the strict majority of the others'."""
    k = fam.k
    mine = fam.codes[:, voter]
    others = fam.codes.copy()
    others[:, voter] = -1
    counts = _counts(others, k)
    m = counts.sum(axis=1)
    top = counts.argmax(axis=1)
    top_n = counts.max(axis=1) if counts.size else np.zeros(0)
    ok = (mine >= 0) & (m > 0) & (top_n * 2 > m)
    flat = fam.doc[ok] * k * k + mine[ok] * k + top[ok]
    return np.bincount(flat, minlength=n_docs * k * k).reshape(n_docs, k, k).astype(np.float64)


def _pair_agreement_rows(counts: FloatArray) -> FloatArray:
    m = counts.sum(axis=1)
    return np.stack([(counts * (counts - 1.0)).sum(axis=1), m * (m - 1.0)], axis=1)


def _category_figures(
    stats: _Stats, fam: _Family, *, prefix: str = "", fleiss: bool = True
) -> dict[str, Estimate]:
    n_docs = stats.n_docs
    units = fam.codes.shape[0]
    counts = _counts(fam.codes, fam.k)
    k = fam.k
    out: dict[str, Estimate] = {}
    out[prefix + "observed"] = stats.add(_per_doc(fam.doc, _pair_agreement_rows(counts), n_docs), _ratio, units)
    if fleiss:
        out[prefix + "fleiss_kappa"] = stats.add(_per_doc(fam.doc, _fleiss_rows(counts), n_docs), _fleiss_from_sums,
                                                 units)
    coincidence = _per_doc(fam.doc, _coincidence(fam.codes, k).reshape(units, k * k), n_docs).reshape(n_docs, k, k)
    out[prefix + "alpha"] = stats.add(coincidence, _alpha_from_coincidence, units)
    return out


def _pair_category_figures(stats: _Stats, fam: _Family, a: int, b: int, *, prefix: str = "") -> dict[str, Estimate]:
    tables = _pair_tables(fam, a, b, stats.n_docs)
    units = int(tables.sum())
    out = {
        prefix + "observed": stats.add(tables, _observed_from_table, units),
        prefix + "alpha": stats.add(tables + np.swapaxes(tables, 1, 2), _alpha_from_coincidence, units),
    }
    if not prefix:
        out["cohen_kappa"] = stats.add(tables, _kappa_from_table, units)
    return out


# --------------------------------------------------------------------------- spans


def _overlap_found(mine: set[tuple[int, int, str]], theirs: set[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    return [s for s in mine if any(t[2] == s[2] and s[0] < t[1] and t[0] < s[1] for t in theirs)]


def _span_rows(
    mine: set[tuple[int, int, str]], theirs: set[tuple[int, int, str]], label_index: dict[str, int]
) -> tuple[FloatArray, FloatArray]:
    """Per label: [A found by B, B found by A, |A|, |B|], exact and overlap."""
    exact = np.zeros((len(label_index), 4))
    overlap = np.zeros((len(label_index), 4))
    both = mine & theirs
    for s in both:
        exact[label_index[s[2]], 0] += 1
        exact[label_index[s[2]], 1] += 1
    for s in _overlap_found(mine, theirs):
        overlap[label_index[s[2]], 0] += 1
    for s in _overlap_found(theirs, mine):
        overlap[label_index[s[2]], 1] += 1
    for s in mine:
        exact[label_index[s[2]], 2] += 1
    for s in theirs:
        exact[label_index[s[2]], 3] += 1
    overlap[:, 2:] = exact[:, 2:]
    return exact, overlap


def _consensus_spans(doc: _Doc, voter: str) -> set[tuple[int, int, str]] | None:
    others = [spans for name, spans in doc.spans.items() if name != voter]
    if not others:
        return None
    votes = Counter(key for spans in others for key in spans)
    return {key for key, n in votes.items() if n * 2 > len(others)}


def _token_bounds(texts: Sequence[str], lang: str) -> list[list[tuple[int, int]]]:
    try:
        import spacy
    except ImportError:  # pragma: no cover - spaCy is a core dependency
        raise UsageError("token agreement needs spaCy") from None
    try:
        tokenizer = spacy.blank(lang).tokenizer
    except (ImportError, KeyError) as exc:
        raise UsageError(f"Unknown language code {lang!r} for spacy.blank: {exc}") from None
    return [[(t.idx, t.idx + len(t.text)) for t in tokenizer(text)] for text in texts]


def _token_tags(
    bounds: list[tuple[int, int]], spans: set[tuple[int, int, str]]
) -> list[str]:
    tags = [OUTSIDE] * len(bounds)
    for start, end, label in sorted(spans):
        for i, (t0, t1) in enumerate(bounds):
            if start < t1 and t0 < end and tags[i] == OUTSIDE:
                tags[i] = label
    return tags


def _token_labels(bounds: list[tuple[int, int]], spans: set[tuple[int, int, str]], label: str) -> list[bool]:
    ranges = [(s, e) for s, e, lb in spans if lb == label]
    return [any(s < t1 and t0 < e for s, e in ranges) for t0, t1 in bounds]


# --------------------------------------------------------------------------- the function


def agreement(
    records: Iterable[Record],
    task: TaskKind | str,
    labels: Sequence[str] | None = None,
    *,
    include_ground_truth: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    lang: str = "en",
    include_text: bool = True,
    examples: int = 5,
) -> AgreementReport:
    """Inter-annotator agreement of ``records`` (an iterable of :class:`Record`, e.g. ``adapter.pull()``).

    ``task`` says what to compare: spans (``ner``, ``spans``) or categories (``textcat``,
    ``textcat_multilabel``). ``labels`` restricts the comparison to these labels (default: every label
    seen). ``bootstrap`` resamples (0: no intervals) drawn with ``seed``; ``confidence`` is the
    interval's coverage. ``lang`` is the blank spaCy tokenizer for token agreement. With
    ``include_text=False`` the report holds no document or span text (ids and content hashes only).

    Raises :class:`NotEnoughAnnotatorsError` when no document has votes from two voters, and
    :class:`UsageError` when the records hold nothing for ``task`` or an argument is out of range.
    """
    try:
        kind = TaskKind(task)
    except ValueError:
        raise UsageError(f"task must be one of {', '.join(k.value for k in TaskKind)}, not {task!r}") from None
    if bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 (no intervals) or more, not {bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must be between 0 and 1, not {confidence}")
    collector = _Collector(kind, labels, include_ground_truth)
    for record in records:
        collector.add(record)
    if collector.records and not collector.saw_content:
        what = "span" if kind.is_span_task else "category"
        other = "textcat or textcat_multilabel" if kind.is_span_task else "ner or spans"
        raise UsageError(
            f"--task {kind.value}, but none of the {collector.records} records has a {what} annotation "
            f"(try --task {other})"
        )
    label_list = sorted(labels) if labels is not None else sorted(collector.labels_seen)
    compared = [d for d in collector.docs if len(d.voters()) >= 2]
    voters_all = sorted(collector.voters)
    if not compared:
        with_votes = [name for name in voters_all if collector.voters[name].documents]
        raise NotEnoughAnnotatorsError(_not_enough(collector, with_votes))
    names = sorted({v for d in compared for v in d.voters()})
    vindex = {name: i for i, name in enumerate(names)}
    n_docs = len(compared)
    stats = _Stats(n_docs)
    has_manual_spans = kind.is_span_task and any(d.spans for d in compared)
    metric = "f1_exact" if has_manual_spans else "cohen_kappa"
    report = AgreementReport(
        task=kind.value,
        metric=metric,
        labels=label_list,
        annotators=names,
        records=collector.records,
        documents_compared=n_docs,
        excluded=collector.excluded,
        superseded=collector.superseded,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        tokenizer=f"spacy.blank({lang!r})" if has_manual_spans else None,
        include_ground_truth=include_ground_truth,
        include_text=include_text,
    )
    pairs = {(a, b): PairAgreement(a, b, 0) for a, b in combinations(names, 2)}
    consensus: dict[str, dict[str, Estimate]] = {name: {} for name in names}
    for (a, b), pair in pairs.items():
        pair.documents = sum(1 for d in compared if a in d.voters() and b in d.voters())

    # binary and category units
    label_families: dict[str, _Family] = {}
    for label in label_list:
        rows: list[tuple[int, dict[int, Hashable]]] = [
            (i, {vindex[voter]: value for voter, value in votes.items()})
            for i, d in enumerate(compared)
            for votes in d.label_votes(label)
        ]
        label_families[label] = _family(rows, len(names), values=[False, True])
    choice_family: _Family | None = None
    if kind == TaskKind.TEXTCAT and any(d.choice for d in compared):
        choice_family = _family(
            ((i, {vindex[v]: c for v, c in d.choice.items()}) for i, d in enumerate(compared)), len(names)
        )
    pooled = _stack([f for f in label_families.values() if f.codes.shape[0]], len(names))
    overall_family = choice_family if choice_family is not None else pooled
    if overall_family.codes.shape[0]:
        report.overall.update(_category_figures(stats, overall_family))
        for (a, b), pair in pairs.items():
            pair.figures.update(_pair_category_figures(stats, overall_family, vindex[a], vindex[b]))
        for name in names:
            tables = _consensus_tables(overall_family, vindex[name], n_docs)
            units = int(tables.sum())
            consensus[name]["cohen_kappa"] = stats.add(tables, _kappa_from_table, units)
            consensus[name]["observed"] = stats.add(tables, _observed_from_table, units)
    for label, fam in label_families.items():
        if not fam.codes.shape[0]:
            continue
        report.per_label.setdefault(label, {}).update(_category_figures(stats, fam))
        for (a, b), pair in pairs.items():
            pair.per_label.setdefault(label, {}).update(_pair_category_figures(stats, fam, vindex[a], vindex[b]))

    if has_manual_spans:
        _span_figures(stats, report, compared, names, vindex, label_list, pairs, consensus, lang)

    stats.run(bootstrap, seed, confidence)
    report.pairs = list(pairs.values())
    for name in voters_all:
        voter = collector.voters[name]
        if name not in vindex:
            continue
        agreement_with = {}
        for other in names:
            if other == name:
                continue
            pair = pairs.get((name, other)) or pairs[(other, name)]
            estimate = pair.figures.get(metric)
            agreement_with[other] = estimate.value if estimate else None
        report.per_annotator.append(
            AnnotatorAgreement(
                name=name,
                ground_truth=voter.ground_truth,
                documents=len(voter.documents),
                answers=voter.answers,
                answers_per_hour=_answers_per_hour(voter.timestamps),
                agreement=agreement_with,
                consensus=consensus[name],
            )
        )
    left_out = [n for n in voters_all if n not in vindex]
    if left_out:
        report.warnings.append(f"voters who share no document with another voter: {', '.join(left_out)}")
    report.examples = _examples(compared, kind, examples, include_text)
    return report


def _span_figures(
    stats: _Stats,
    report: AgreementReport,
    compared: list[_Doc],
    names: list[str],
    vindex: dict[str, int],
    label_list: list[str],
    pairs: dict[tuple[str, str], PairAgreement],
    consensus: dict[str, dict[str, Estimate]],
    lang: str,
) -> None:
    n_docs, n_labels = len(compared), len(label_list)
    label_index = {label: i for i, label in enumerate(label_list)}
    total_exact = np.zeros((n_docs, n_labels, 4))
    total_overlap = np.zeros((n_docs, n_labels, 4))
    for (a, b), pair in pairs.items():
        exact = np.zeros((n_docs, n_labels, 4))
        overlap = np.zeros((n_docs, n_labels, 4))
        for i, d in enumerate(compared):
            if a in d.spans and b in d.spans:
                exact[i], overlap[i] = _span_rows(d.spans[a], d.spans[b], label_index)
        total_exact += exact
        total_overlap += overlap
        _add_f1(stats, pair.figures, pair.per_label, exact, overlap, label_list)
    _add_f1(stats, report.overall, report.per_label, total_exact, total_overlap, label_list)
    for name in names:
        exact = np.zeros((n_docs, n_labels, 4))
        overlap = np.zeros((n_docs, n_labels, 4))
        for i, d in enumerate(compared):
            if name not in d.spans:
                continue
            majority = _consensus_spans(d, name)
            if majority is not None:
                exact[i], overlap[i] = _span_rows(d.spans[name], majority, label_index)
        consensus[name]["f1_exact"] = stats.add(exact.sum(axis=1), _f1, int(exact[..., 2:].sum()))
        consensus[name]["f1_overlap"] = stats.add(overlap.sum(axis=1), _f1, int(overlap[..., 2:].sum()))

    # token tags
    manual_docs = [(i, d) for i, d in enumerate(compared) if len(d.spans) >= 2]
    bounds = _token_bounds([d.text for _, d in manual_docs], lang)
    nominal = report.task == TaskKind.NER.value
    tag_rows: list[tuple[int, dict[int, Hashable]]] = []
    label_rows: dict[str, list[tuple[int, dict[int, Hashable]]]] = {label: [] for label in label_list}
    for (i, d), toks in zip(manual_docs, bounds, strict=True):
        voters = [(vindex[v], spans) for v, spans in d.spans.items()]
        if nominal:
            tags = {v: _token_tags(toks, spans) for v, spans in voters}
            tag_rows.extend((i, {v: tags[v][t] for v, _ in voters}) for t in range(len(toks)))
        for label in label_list:
            marks = {v: _token_labels(toks, spans, label) for v, spans in voters}
            label_rows[label].extend((i, {v: marks[v][t] for v, _ in voters}) for t in range(len(toks)))
    label_fams = {label: _family(rows, len(names), values=[False, True]) for label, rows in label_rows.items()}
    token_family = (
        _family(tag_rows, len(names), values=[OUTSIDE, *label_list])
        if nominal
        else _stack(list(label_fams.values()), len(names))
    )
    if token_family.codes.shape[0]:
        report.overall.update(_category_figures(stats, token_family, prefix="token_", fleiss=False))
        for (a, b), pair in pairs.items():
            pair.figures.update(
                _pair_category_figures(stats, token_family, vindex[a], vindex[b], prefix="token_")
            )
    for label, fam in label_fams.items():
        if fam.codes.shape[0]:
            report.per_label.setdefault(label, {}).update(_category_figures(stats, fam, prefix="token_", fleiss=False))


def _add_f1(
    stats: _Stats,
    figures: dict[str, Estimate],
    per_label: dict[str, dict[str, Estimate]],
    exact: FloatArray,
    overlap: FloatArray,
    label_list: list[str],
) -> None:
    figures["f1_exact"] = stats.add(exact.sum(axis=1), _f1, int(exact[..., 2:].sum()))
    figures["f1_overlap"] = stats.add(overlap.sum(axis=1), _f1, int(overlap[..., 2:].sum()))
    for j, label in enumerate(label_list):
        spans = int(exact[:, j, 2:].sum())
        if spans == 0:
            continue
        figures_of = per_label.setdefault(label, {})
        figures_of["f1_exact"] = stats.add(exact[:, j], _f1, spans)
        figures_of["f1_overlap"] = stats.add(overlap[:, j], _f1, spans)


def _not_enough(collector: _Collector, voters: list[str]) -> str:
    if not collector.records:
        return "no records: agreement needs documents annotated by two annotators at least"
    if len(voters) < 2:
        who = f"only one annotator ({voters[0]})" if voters else "no usable votes"
        message = f"{who} in {collector.records} records: agreement needs two annotators at least"
    else:
        message = (
            f"{len(voters)} annotators ({', '.join(voters[:6])}), but no document has votes from two of them: "
            "agreement compares annotators on the same documents"
        )
    reasons = "; ".join(f"{n} {reason}" for reason, n in collector.excluded.most_common())
    return message + (f" (left out: {reasons})" if reasons else "")


def _question_name(question: Hashable) -> str:
    if isinstance(question, tuple):
        start, end, label = question
        return f"{label} {start}-{end}"
    return str(question)


def _examples(compared: list[_Doc], kind: TaskKind, limit: int, include_text: bool) -> list[dict[str, Any]]:
    """The first ``limit`` compared documents where the voters disagree, with each voter's vote."""
    out: list[dict[str, Any]] = []
    for d in compared:
        if len(out) >= limit:
            break
        votes: dict[str, Any] = {}
        if len(d.spans) >= 2 and len({frozenset(s) for s in d.spans.values()}) > 1:
            for voter, spans in sorted(d.spans.items()):
                votes[voter] = [_span_dict(key, d, include_text) for key in sorted(spans)]
        elif len(d.manual_chosen) >= 2 and len({frozenset(c) for c, _ in d.manual_chosen.values()}) > 1:
            votes = {voter: sorted(chosen) for voter, (chosen, _) in sorted(d.manual_chosen.items())}
        else:
            questions: dict[Hashable, dict[str, bool]] = defaultdict(dict)
            for (question, voter), value in d.binary.items():
                questions[question][voter] = value
            for question, answers in questions.items():
                if len(set(answers.values())) > 1:
                    for voter, value in sorted(answers.items()):
                        votes.setdefault(voter, {})[_question_name(question)] = "accept" if value else "reject"
        if not votes:
            continue
        example: dict[str, Any] = {"id": d.record_id, "text_hash": content_id(d.text)}
        if include_text:
            example["text"] = d.text
        example["votes"] = votes
        out.append(example)
    return out


def _span_dict(key: tuple[int, int, str], doc: _Doc, include_text: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"start": key[0], "end": key[1], "label": key[2]}
    if include_text:
        data["text"] = doc.span_texts.get(key, doc.text[key[0] : key[1]])
    return data
