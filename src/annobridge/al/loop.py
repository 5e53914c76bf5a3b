"""The active-learning loop over any adapter, one stage at a time, resumable.

A round is six stages::

    score -> push -> wait -> pull -> train -> evaluate

``score`` streams the pool through the model and keeps the ``batch`` most uncertain documents
(near-duplicates removed); ``push`` sends them to the tool as pre-annotated tasks carrying their
uncertainty as the prediction score; ``wait`` polls until they are labelled; ``pull`` reads every
labelled record back and converts it with :class:`annobridge.convert.DocConverter`; ``train`` fits
the Learner; ``evaluate`` scores it on the fixed dev set.

After every stage the state is written to ``state_dir/state.json`` (and the model to
``state_dir/model``), so a notebook restart or a crash goes on where it stopped: build the loop
again with the same ``state_dir`` and call :meth:`ActiveLearningLoop.step` or
:meth:`ActiveLearningLoop.run`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spacy.tokens import Doc

from ..adapter import Adapter, ImportResult
from ..atomic import atomic_write_text
from ..convert import DocConverter
from ..errors import AdapterError, UsageError
from ..model import Document, LabelSchema, Prediction, Record
from .diversity import parse_strategy, select_diverse, strategy_name
from .learner import Learner
from .stopping import StabilityPoint, StoppingRule, dev_slope, prediction_items, stability
from .strategies import Candidate, select_batch

__all__ = ["STAGES", "ActiveLearningLoop", "RoundReport", "StageResult"]

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("score", "push", "wait", "pull", "train", "evaluate")
STATE_VERSION = 1

PoolSource = str | os.PathLike[str] | Sequence[Document] | Callable[[], Iterable[Document]]


@dataclass
class RoundReport:
    round: int
    strategy: str
    cold_start: bool
    selected: int
    labels: int
    new_labels: int
    dev_score: float | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    unusable: int = 0
    pool_docs_per_second: float | None = None
    #: the stopping signal: this round's predictions on the stop set against the previous round's
    kappa: float | None = None
    agreement: float | None = None
    stop_items: int | None = None
    #: dev score gained per 100 labels since the previous round
    dev_slope: float | None = None

    def stability(self) -> StabilityPoint:
        return StabilityPoint(self.round, self.kappa, self.agreement, self.stop_items or 0, self.dev_slope)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundReport:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def summary(self) -> str:
        secs = ", ".join(f"{k} {v:.1f}s" for k, v in self.stage_seconds.items())
        dev = "n/a" if self.dev_score is None else f"{self.dev_score:.3f}"
        signal = ""
        if self.kappa is not None:
            signal = f", kappa {self.kappa:.3f} (agreement {self.agreement:.3f})"
        elif self.stop_items:
            signal = ", kappa n/a (first model)"
        if self.dev_slope is not None:
            signal += f", dev slope {self.dev_slope:+.3f}/100 labels"
        return (
            f"round {self.round}: {self.labels} labels (+{self.new_labels}), dev {dev}{signal}, "
            f"{self.strategy}{' (cold start)' if self.cold_start else ''}; {secs}"
        )


@dataclass
class StageResult:
    stage: str
    done: bool
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


class ActiveLearningLoop:
    """Uncertainty sampling against an annotation tool, step by step or in one call.

    >>> loop = ActiveLearningLoop("labelstudio://127.0.0.1:8080/projects/3", learner,
    ...                           pool="pool.jsonl", dev=dev_records, state_dir="al-state")
    >>> loop.step()            # runs the next stage, returns a StageResult
    >>> loop.run(rounds=5)     # or whole rounds; stops (state saved) while labels are missing
    """

    def __init__(
        self,
        adapter: Adapter | str,
        learner: Learner,
        pool: PoolSource,
        dev: Sequence[Doc] | Sequence[Record] | str | os.PathLike[str] | None,
        *,
        state_dir: str | os.PathLike[str],
        strategy: str = "entropy",
        batch: int = 50,
        oversample: int = 4,
        dedup_threshold: float = 0.8,
        poll_interval: float = 5.0,
        wait_timeout: float | None = None,
        min_labelled: float = 1.0,
        score_batch_size: int = 256,
        align: str = "expand",
        resume: bool = True,
        diversity: str | None = None,
        diversity_pool: int = 10,
        stability_sample: int = 500,
        stop: StoppingRule | None = None,
        seed: int = 0,
        engine: str = "local",
        ray_address: str | None = None,
        workers: int | None = None,
    ) -> None:
        if isinstance(adapter, str):
            from ..plugins import open_adapter

            adapter = open_adapter(adapter)
        adapter.require("import_documents", "pull", to="run an active-learning loop")
        if batch < 1:
            raise UsageError("batch must be at least 1")
        if not 0.0 < min_labelled <= 1.0:
            raise UsageError("min_labelled is a share of the pushed batch, in (0, 1]")
        if diversity_pool < 1:
            raise UsageError("diversity_pool must be at least 1")
        if stop is not None and stability_sample < 1:
            raise UsageError("a stopping rule needs a stop set: stability_sample must be at least 1")
        from .learner import check_engine

        check_engine(engine, workers)
        if engine == "ray":
            from .ray_engine import import_ray

            import_ray()  # the install hint at construction, not at the first score stage
        self.adapter = adapter
        self.learner = learner
        self.pool = pool
        self.strategy, self.diversity = parse_strategy(strategy, diversity)
        self.diversity_pool = diversity_pool
        self.stability_sample = stability_sample
        self.stop = stop
        self.seed = seed
        #: where the score stage runs (``ray``: Ray Data, see annobridge.al.ray_engine)
        self.engine = engine
        self.ray_address = ray_address
        self.workers = workers
        self.batch = batch
        self.oversample = max(1, oversample)
        self.dedup_threshold = dedup_threshold
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.min_labelled = min_labelled
        self.score_batch_size = score_batch_size
        self.align = align
        self.schema = LabelSchema(learner.task, list(learner.labels), spans_key=learner.config.spans_key)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = self._fresh_state()
        if resume and self.state_path.exists():
            self._load_state()
        self._dev_source = dev
        self._dev_docs: list[Doc] | None = None
        #: what the wait stage has seen labelled so far, and the cursor to poll on from there
        self._labelled: set[str] = set()
        self._label_cursor: Any = None

    # -- state -----------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def model_dir(self) -> Path:
        return self.state_dir / "model"

    @property
    def labelled_path(self) -> Path:
        return self.state_dir / "labelled.jsonl"

    @property
    def stop_set_path(self) -> Path:
        """The fixed stop set: ``stability_sample`` pool documents drawn in round 0."""
        return self.state_dir / "stop_set.jsonl"

    @property
    def stop_predictions_path(self) -> Path:
        return self.state_dir / "stop_predictions.json"

    @property
    def method(self) -> str:
        """The strategy with its diversity method, e.g. ``entropy+kcenter``."""
        return strategy_name(self.strategy, self.diversity)

    @property
    def stopped(self) -> dict[str, Any] | None:
        """Where the stopping rule fired (round, labels, rule), or ``None``."""
        return self.state.get("stopped")

    def _fresh_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "task": self.learner.task.value,
            "labels": list(self.learner.labels),
            "strategy": self.strategy,
            "diversity": self.diversity,
            "batch": self.batch,
            "round": 0,
            "done": [],
            "stage_seconds": {},
            "selected": [],
            "pushed": [],
            "seen": [],
            "labels_so_far": 0,
            "new_labels": 0,
            "unusable": 0,
            "cold_start": False,
            "pool_docs_per_second": None,
            "history": [],
            "stopped": None,
        }

    def _load_state(self) -> None:
        data = json.loads(self.state_path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise UsageError(f"{self.state_path}: state version {data.get('version')} is not {STATE_VERSION}")
        if data["task"] != self.learner.task.value or data["labels"] != list(self.learner.labels):
            raise UsageError(
                f"{self.state_path} belongs to a {data['task']} loop with labels {data['labels']}; "
                "use another state_dir or the same task and labels."
            )
        self.state = data
        if (self.model_dir / "learner.json").exists():
            gpu = self.learner.device.gpu_id if self.learner.device.is_gpu else None
            self.learner = Learner.load(self.model_dir, gpu=gpu)
        log.info("Resuming at round %d after stages %s", data["round"], data["done"])

    def save(self) -> None:
        atomic_write_text(self.state_path, json.dumps(self.state, ensure_ascii=False, indent=1))

    @property
    def round(self) -> int:
        return int(self.state["round"])

    @property
    def next_stage(self) -> str:
        done = self.state["done"]
        return STAGES[len(done)] if len(done) < len(STAGES) else STAGES[0]

    @property
    def history(self) -> list[RoundReport]:
        return [RoundReport.from_dict(r) for r in self.state["history"]]

    @property
    def selected(self) -> list[dict[str, Any]]:
        """This round's selection: id, text, score, rank and the prediction pushed."""
        return list(self.state["selected"])

    def _finish(self, stage: str, seconds: float) -> None:
        self.state["done"].append(stage)
        self.state["stage_seconds"][stage] = round(self.state["stage_seconds"].get(stage, 0.0) + seconds, 4)
        self.save()

    def _expect(self, stage: str) -> None:
        if self.next_stage != stage:
            raise UsageError(
                f"Stage {stage!r} comes later: the next stage of round {self.round} is {self.next_stage!r}."
            )

    # -- inputs ------------------------------------------------------------------

    def _pool_documents(self) -> Iterable[Document]:
        pool = self.pool
        if callable(pool):
            return pool()
        if isinstance(pool, (str, os.PathLike)):
            from .learner import read_pool

            return read_pool(pool)  # a path or a URL (s3://bucket/pool.jsonl.gz)
        return pool

    def _converter(self) -> DocConverter:
        return DocConverter(self.learner.nlp, self.schema, align=self.align)

    def dev_docs(self) -> list[Doc]:
        if self._dev_docs is None:
            source = self._dev_source
            if source is None:
                self._dev_docs = []
            elif isinstance(source, (str, os.PathLike)):
                from .simulate import load_records

                self._dev_docs = self._convert(load_records(source))[0]
            elif source and isinstance(source[0], Record):
                self._dev_docs = self._convert(list(source))[0]  # type: ignore[arg-type]
            else:
                self._dev_docs = list(source)  # type: ignore[arg-type]
        return self._dev_docs

    def _convert(self, records: Sequence[Record]) -> tuple[list[Doc], list[tuple[str, str]]]:
        converter = self._converter()
        docs: list[Doc] = []
        failed: list[tuple[str, str]] = []
        for record in records:
            result = converter.convert(record)
            if result.doc is None:
                failed.append((record.id, result.reason or "not convertible"))
            else:
                docs.append(result.doc)
        return docs, failed

    # -- stages ---------------------------------------------------------------

    def score(self) -> StageResult:
        """Score the pool (streaming) and pick this round's batch."""
        self._expect("score")
        t0 = time.perf_counter()
        exclude = set(self.state["seen"])
        diverse = self.diversity != "none"
        documents = self._pool_documents()
        stream: Iterable[Document] | str | os.PathLike[str] = documents
        sample: list[Document] | None = None
        draw = self.stability_sample > 0 and not self.stop_set_path.exists()
        if self.engine == "ray" and isinstance(self.pool, (str, os.PathLike)):
            # Ray reads a pool file on its workers; the stop set is then drawn in a pass of its
            # own here (once per loop, in round 0), the same documents as the local engine draws.
            if draw:
                sample = []
                for _ in self._sampling(documents, sample):
                    pass
            stream = self.pool
        elif draw:
            # The stop set is drawn during this pass over the pool: no extra read of a large pool.
            sample = []
            stream = self._sampling(documents, sample)
        scores = self.learner.score_pool(
            stream,
            self.strategy,
            keep=self.batch * (self.diversity_pool if diverse else self.oversample),
            batch_size=self.score_batch_size,
            exclude_ids=exclude,
            model_version=self.model_version,
            engine=self.engine,
            ray_address=self.ray_address,
            workers=self.workers,
        )
        if sample is not None:
            lines = [json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in sample]
            atomic_write_text(self.stop_set_path, "".join(lines))
        if not scores.candidates:
            raise UsageError(
                f"The pool has no documents left to ask about ({scores.skipped} skipped as already selected or empty)."
            )
        if diverse and not scores.cold_start:
            vectors = self.learner.doc_vectors([c.document for c in scores.candidates])
            taken, dupes = select_diverse(
                scores.candidates,
                self.batch,
                vectors,
                diversity=self.diversity,
                threshold=self.dedup_threshold,
                seed=self.seed * 1000 + self.round,
            )
        else:
            taken, dupes = select_batch(scores.candidates, self.batch, threshold=self.dedup_threshold)
        self.state["selected"] = [self._candidate_to_json(c, rank) for rank, c in enumerate(taken)]
        self.state["cold_start"] = scores.cold_start
        self.state["pool_docs_per_second"] = round(scores.docs_per_second, 1) if scores.scored else None
        seconds = time.perf_counter() - t0
        self._finish("score", seconds)
        return StageResult(
            "score",
            True,
            seconds,
            {
                "scored": scores.scored,
                "selected": len(taken),
                "near_duplicates_skipped": len(dupes),
                "strategy": scores.strategy,
                "diversity": "none" if scores.cold_start else self.diversity,
                "candidates": len(scores.candidates),
                "cold_start": scores.cold_start,
                "docs_per_second": scores.docs_per_second,
            },
        )

    def _sampling(self, stream: Iterable[Document], sample: list[Document]) -> Iterable[Document]:
        """Pass ``stream`` through while filling ``sample`` with a seeded reservoir sample of it."""
        import random

        rng = random.Random(self.seed * 7919 + 20172)
        n = self.stability_sample
        i = 0
        for document in stream:
            if document.text.strip():
                if i < n:
                    sample.append(document)
                else:
                    j = rng.randint(0, i)
                    if j < n:
                        sample[j] = document
                i += 1
            yield document

    def stop_set(self) -> list[Document]:
        if not self.stop_set_path.exists():
            return []
        with self.stop_set_path.open(encoding="utf-8") as fh:
            return [Document.from_dict(json.loads(line)) for line in fh if line.strip()]

    def _stability(self, dev_score: float | None) -> StabilityPoint | None:
        """This round's predictions on the stop set against the previous round's (resumable)."""
        history = self.history
        slope = dev_slope(
            [r.labels for r in history] + [int(self.state["labels_so_far"])],
            [r.dev_score for r in history] + [dev_score],
        )
        stop_set = self.stop_set() if self.stability_sample > 0 else []
        if not stop_set or not self.learner.fitted:
            return StabilityPoint(self.round, None, None, 0, slope)
        current = prediction_items(self.learner, stop_set, batch_size=self.score_batch_size)
        previous: list[str] | None = None
        if self.stop_predictions_path.exists():
            saved = json.loads(self.stop_predictions_path.read_text(encoding="utf-8"))
            if saved.get("round") == self.round - 1:
                previous = saved["items"]
            elif saved.get("round") == self.round:  # evaluate ran before and was interrupted
                previous = saved.get("previous")
        if previous is not None and len(previous) != len(current):
            log.warning("The stop set's predictions changed shape (%d -> %d items)", len(previous), len(current))
            previous = None
        point = stability(previous, current, self.round, slope)
        atomic_write_text(
            self.stop_predictions_path, json.dumps({"round": self.round, "items": current, "previous": previous})
        )
        return point

    @property
    def model_version(self) -> str:
        return f"{self.learner.name}-round{self.round}"

    def _candidate_to_json(self, cand: Candidate, rank: int) -> dict[str, Any]:
        return {
            "id": cand.document.id,
            "text": cand.document.text,
            "meta": cand.document.meta,
            "score": round(cand.score, 6),
            "rank": rank,
            "prediction": cand.prediction.to_dict() if cand.prediction is not None else None,
        }

    def push(self) -> StageResult:
        """Send the selection to the tool: pre-annotated tasks carrying their uncertainty score."""
        self._expect("push")
        t0 = time.perf_counter()
        try:
            self.adapter.ensure_project(self.schema)
        except UsageError:
            pass  # tools that cannot create projects: the project must exist already
        documents: list[Document] = []
        predictions: list[Prediction] = []
        for item in self.state["selected"]:
            meta = dict(item.get("meta") or {})
            meta["al"] = {"round": self.round, "rank": item["rank"], "strategy": self.method, "score": item["score"]}
            documents.append(Document(id=item["id"], text=item["text"], meta=meta))
            if item.get("prediction") is not None:
                predictions.append(Prediction.from_dict(item["prediction"]))
        result = ImportResult()
        if documents:
            if len(predictions) == len(documents):
                result = self.adapter.push_predictions(list(zip(documents, predictions, strict=True)))
            else:
                # Cold start: nothing to pre-annotate with yet.
                result = self.adapter.import_documents(documents, schema=self.schema)
        if result.failed:
            raise AdapterError(
                f"{len(result.failed)} of {len(documents)} tasks were not pushed "
                f"(first: {result.failed[0][0]}: {result.failed[0][1]}); run the push stage again."
            )
        self.state["pushed"] = [d.id for d in documents]
        self.state["seen"] = sorted(set(self.state["seen"]) | set(self.state["pushed"]))
        seconds = time.perf_counter() - t0
        self._finish("push", seconds)
        return StageResult("push", True, seconds, {"created": result.created, "existing": result.existing})

    def labelled_ids(self) -> set[str]:
        """Ids of records in the tool that have at least one annotation.

        Polls incrementally where the adapter can: the first call pulls everything, later ones only
        what changed since the previous call's cursor, so a wait over a large project stays cheap.
        """
        if not self.adapter.capabilities.pull_since:
            return {r.id for r in self.adapter.pull() if r.annotations}
        self._labelled.update(r.id for r in self.adapter.pull(since=self._label_cursor) if r.annotations)
        if self.adapter.cursor is not None:
            self._label_cursor = self.adapter.cursor
        return set(self._labelled)

    def wait(self, timeout: float | None = None, poll_interval: float | None = None) -> StageResult:
        """Poll until ``min_labelled`` of the pushed batch is labelled, or ``timeout`` seconds pass
        (``None``: the loop's ``wait_timeout``; both ``None``: wait as long as it takes; 0: look once).
        Returns ``done=False`` on timeout; call it again later."""
        self._expect("wait")
        timeout = self.wait_timeout if timeout is None else timeout
        interval = self.poll_interval if poll_interval is None else poll_interval
        pushed = set(self.state["pushed"])
        needed = math.ceil(self.min_labelled * len(pushed))
        t0 = time.perf_counter()
        while True:
            have = len(pushed & self.labelled_ids())
            if have >= needed:
                seconds = time.perf_counter() - t0
                self._finish("wait", seconds)
                return StageResult("wait", True, seconds, {"labelled": have, "pushed": len(pushed)})
            elapsed = time.perf_counter() - t0
            if timeout is not None and elapsed + interval > timeout:
                self.state["stage_seconds"]["wait"] = round(self.state["stage_seconds"].get("wait", 0.0) + elapsed, 4)
                self.save()
                return StageResult("wait", False, elapsed, {"labelled": have, "pushed": len(pushed), "needed": needed})
            time.sleep(interval)

    def pull(self) -> StageResult:
        """Read every labelled record from the tool and keep the ones that convert."""
        self._expect("pull")
        t0 = time.perf_counter()
        self.adapter.skipped.clear()
        records = [r for r in self.adapter.pull() if r.annotations]
        docs, failed = self._convert(records)
        usable = {r.id for r in records} - {doc_id for doc_id, _ in failed}
        lines = [json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records if r.id in usable]
        atomic_write_text(self.labelled_path, "".join(lines))
        previous = int(self.state["labels_so_far"])
        self.state["labels_so_far"] = len(docs)
        self.state["new_labels"] = len(docs) - previous
        self.state["unusable"] = len(failed) + len(self.adapter.skipped)
        for doc_id, reason in failed[:20]:
            log.warning("record %s not used for training: %s", doc_id, reason)
        seconds = time.perf_counter() - t0
        self._finish("pull", seconds)
        return StageResult(
            "pull",
            True,
            seconds,
            {"labels": len(docs), "unusable": failed, "adapter_skipped": list(self.adapter.skipped)},
        )

    def _labelled_docs(self) -> list[Doc]:
        if not self.labelled_path.exists():
            return []
        with self.labelled_path.open(encoding="utf-8") as fh:
            records = [Record.from_dict(json.loads(line)) for line in fh if line.strip()]
        return self._convert(records)[0]

    def train(self) -> StageResult:
        self._expect("train")
        t0 = time.perf_counter()
        docs = self._labelled_docs()
        if not docs:
            # Back to waiting, so the next step polls the tool again instead of failing forever.
            self.state["done"] = self.state["done"][:2]
            self.save()
            raise UsageError("No usable labelled records yet: label some tasks in the tool, then step again.")
        report = self.learner.fit(docs)
        self.learner.save(self.model_dir)
        seconds = time.perf_counter() - t0
        self._finish("train", seconds)
        return StageResult("train", True, seconds, asdict(report))

    def evaluate(self) -> StageResult:
        self._expect("evaluate")
        t0 = time.perf_counter()
        dev = self.dev_docs()
        scores = self.learner.evaluate(dev) if dev else {}
        signal = self._stability(scores.get("score"))
        seconds = time.perf_counter() - t0
        self.state["stage_seconds"]["evaluate"] = round(seconds, 4)
        report = RoundReport(
            round=self.round,
            strategy="random" if self.state["cold_start"] else self.method,
            cold_start=bool(self.state["cold_start"]),
            selected=len(self.state["selected"]),
            labels=int(self.state["labels_so_far"]),
            new_labels=int(self.state["new_labels"]),
            dev_score=scores.get("score"),
            stage_seconds=dict(self.state["stage_seconds"]),
            unusable=int(self.state["unusable"]),
            pool_docs_per_second=self.state["pool_docs_per_second"],
            kappa=signal.kappa if signal else None,
            agreement=signal.agreement if signal else None,
            stop_items=signal.items if signal and signal.items else None,
            dev_slope=None if signal is None or signal.dev_slope is None else round(signal.dev_slope, 6),
        )
        self.state["history"].append(report.to_dict())
        # The round is complete: start the next one.
        self.state.update(round=self.round + 1, done=[], stage_seconds={}, selected=[], pushed=[])
        self.save()
        return StageResult("evaluate", True, seconds, {"report": report})

    # -- driving ---------------------------------------------------------------

    def step(self, **kwargs: Any) -> StageResult:
        """Run the next stage (``wait`` takes ``timeout`` / ``poll_interval``)."""
        stage = self.next_stage
        method: Callable[..., StageResult] = getattr(self, stage)
        return method(**kwargs) if stage == "wait" else method()

    def run_round(self, *, timeout: float | None = None) -> RoundReport | None:
        """Finish the current round; ``None`` when it stopped waiting for labels (state saved)."""
        start_round = self.round
        while self.round == start_round:
            result = self.step(timeout=timeout) if self.next_stage == "wait" else self.step()
            if not result.done:
                log.info(
                    "Waiting for labels: %s of %s pushed", result.detail.get("labelled"), result.detail.get("pushed")
                )
                return None
        return self.history[-1]

    def run(
        self, rounds: int, *, timeout: float | None = None, on_round: Callable[[RoundReport], None] | None = None
    ) -> list[RoundReport]:
        """Run until ``rounds`` rounds are complete in total (resuming counts the ones already done),
        or until the loop's stopping rule fires (then :attr:`stopped` says where)."""
        reports: list[RoundReport] = []
        while self.round < rounds:
            if self._check_stop(rounds):
                break
            report = self.run_round(timeout=timeout)
            if report is None:
                break
            reports.append(report)
            if on_round is not None:
                on_round(report)
        return reports

    def _check_stop(self, rounds: int) -> bool:
        """Whether the stopping rule fires on the history so far; records it in the state."""
        if self.stop is None:
            return False
        history = self.history
        if not history or not self.stop.fires([r.stability() for r in history]):
            return False
        last = history[-1]
        budget = rounds * self.batch
        self.state["stopped"] = {
            "round": last.round,
            "labels": last.labels,
            "rule": self.stop.describe(),
            "budget_labels": budget,
            "saved": round(max(0.0, 1.0 - last.labels / budget), 6) if budget else 0.0,
        }
        self.save()
        return True
