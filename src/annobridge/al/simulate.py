"""Simulated active learning: gold labels answer every question, so a strategy's value can be measured.

For each strategy and seed: a cold-start batch (random, near-duplicates removed), then ``rounds``
rounds of score -> select ``batch`` -> add their gold docs -> fit -> evaluate on a fixed dev set.
The learning curve (dev score against labels) is summarised by

* **AUC**: the area under the curve divided by its width, i.e. the mean dev score over the budget
  (1.0 = perfect from the first batch on);
* **share to 95%**: the share of the pool that had to be labelled before the dev score first reached
  95% of the *full-data* score (the same Learner fit on the whole pool); ``nan`` when it never did.
"""

from __future__ import annotations

import csv
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from spacy.tokens import Doc

from ..convert import DocConverter
from ..errors import UsageError
from ..model import LabelSchema, Record, TaskKind
from .learner import Learner, LearnerConfig
from .strategies import check_strategy, select_batch

__all__ = ["CurvePoint", "SimulationResult", "StrategySummary", "area_under_curve", "load_records", "simulate"]


@dataclass
class CurvePoint:
    strategy: str
    seed: int
    round: int
    labels: int
    share: float
    score: float
    fit_seconds: float
    score_seconds: float


@dataclass
class StrategySummary:
    strategy: str
    seeds: int
    auc_mean: float
    auc_std: float
    share95_mean: float
    share95_std: float
    reached95: int
    final_mean: float
    final_std: float


@dataclass
class SimulationResult:
    task: str
    pool_size: int
    dev_size: int
    batch: int
    rounds: int
    full_score: float
    points: list[CurvePoint] = field(default_factory=list)
    seconds: float = 0.0

    def curve(self, strategy: str, seed: int) -> list[CurvePoint]:
        return [p for p in self.points if p.strategy == strategy and p.seed == seed]

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(p.strategy for p in self.points))

    @property
    def seeds(self) -> list[int]:
        return sorted({p.seed for p in self.points})

    def share_to(self, curve: Sequence[CurvePoint], fraction: float = 0.95) -> float:
        target = fraction * self.full_score
        for point in curve:
            if point.score >= target:
                return point.share
        return math.nan

    def summaries(self) -> list[StrategySummary]:
        out = []
        for strategy in self.strategies:
            curves = [self.curve(strategy, seed) for seed in self.seeds]
            curves = [c for c in curves if c]
            aucs = [area_under_curve([p.labels for p in c], [p.score for p in c]) for c in curves]
            shares = [self.share_to(c) for c in curves]
            reached = [s for s in shares if not math.isnan(s)]
            finals = [c[-1].score for c in curves]
            out.append(
                StrategySummary(
                    strategy=strategy,
                    seeds=len(curves),
                    auc_mean=statistics.fmean(aucs),
                    auc_std=statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
                    share95_mean=statistics.fmean(reached) if reached else math.nan,
                    share95_std=statistics.stdev(reached) if len(reached) > 1 else 0.0,
                    reached95=len(reached),
                    final_mean=statistics.fmean(finals),
                    final_std=statistics.stdev(finals) if len(finals) > 1 else 0.0,
                )
            )
        return out

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(CurvePoint.__dataclass_fields__))
            writer.writeheader()
            for point in self.points:
                writer.writerow(asdict(point))
        return path

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Mean curve per strategy with its min-max band over seeds (needs matplotlib: the ``al`` extra)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise UsageError("Plotting needs matplotlib: pip install 'annobridge[al]'") from None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        summaries = {s.strategy: s for s in self.summaries()}
        for strategy in self.strategies:
            curves = [self.curve(strategy, seed) for seed in self.seeds]
            curves = [c for c in curves if c]
            n = min(len(c) for c in curves)
            xs = [curves[0][i].labels for i in range(n)]
            cols = [[c[i].score for c in curves] for i in range(n)]
            mean = [statistics.fmean(col) for col in cols]
            s = summaries[strategy]
            line = ax.plot(xs, mean, marker="o", ms=3, label=f"{strategy} (AUC {s.auc_mean:.3f} ± {s.auc_std:.3f})")[0]
            ax.fill_between(
                xs, [min(col) for col in cols], [max(col) for col in cols], color=line.get_color(), alpha=0.15
            )
        ax.axhline(
            self.full_score, color="grey", lw=1, ls="--", label=f"full data ({self.pool_size}): {self.full_score:.3f}"
        )
        ax.axhline(0.95 * self.full_score, color="grey", lw=0.8, ls=":", label="95% of full data")
        ax.set_xlabel("labelled documents")
        ax.set_ylabel("dev score")
        ax.set_title(f"{self.task}: {len(self.seeds)} seed(s), batch {self.batch}")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def to_markdown(self) -> str:
        rows = [
            "| strategy | seeds | AUC (mean ± sd) | share of pool to 95% of full (mean ± sd) | final score |",
            "|---|---|---|---|---|",
        ]
        for s in self.summaries():
            share = "not reached" if math.isnan(s.share95_mean) else f"{s.share95_mean:.1%} ± {s.share95_std:.1%}"
            if 0 < s.reached95 < s.seeds:
                share += f" ({s.reached95}/{s.seeds} seeds reached it)"
            rows.append(
                f"| {s.strategy} | {s.seeds} | {s.auc_mean:.3f} ± {s.auc_std:.3f} | {share} | "
                f"{s.final_mean:.3f} ± {s.final_std:.3f} |"
            )
        return "\n".join(rows)


def area_under_curve(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid area divided by the x range: the mean y over the curve (y itself for one point)."""
    if not xs:
        return math.nan
    if len(xs) == 1 or xs[-1] == xs[0]:
        return float(ys[0])
    area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
    return area / (xs[-1] - xs[0])


def load_records(source: str | os.PathLike[str]) -> list[Record]:
    """Records from annobridge JSONL (``.jsonl`` or ``.jsonl.gz``) or any adapter URL.

    A JSONL line that is not a record (bad bytes, bad JSON, a lone surrogate) is logged and left
    out; the rest of the file is read (:mod:`annobridge.jsonio`).
    """
    text = os.fspath(source)
    if text.endswith(".jsonl.gz"):
        import logging

        from ..adapter import AdapterURL
        from ..adapters.jsonl import JsonlAdapter

        jsonl = JsonlAdapter(AdapterURL(scheme="jsonl", raw=text, path=text))
        records = list(jsonl.pull())
        for where, reason in jsonl.skipped:
            logging.getLogger(__name__).warning("%s skipped: %s", where, reason)
        return records
    from ..plugins import open_adapter

    with open_adapter(text) as adapter:
        return list(adapter.pull())


def _gold(records: Iterable[Record], schema: LabelSchema, lang: str) -> list[tuple[Record, Doc]]:
    import spacy

    converter = DocConverter(spacy.blank(lang), schema)
    out = []
    for record in records:
        if not record.annotations:
            continue
        result = converter.convert(record)
        if result.doc is not None and len(result.doc):
            out.append((record, result.doc))
    return out


def simulate(
    records: Sequence[Record] | str | os.PathLike[str],
    *,
    task: TaskKind | str,
    labels: Sequence[str] | None = None,
    strategies: Sequence[str] = ("entropy", "random"),
    rounds: int = 5,
    batch: int = 50,
    seeds: Sequence[int] = (0,),
    dev: Sequence[Record] | str | os.PathLike[str] | None = None,
    dev_size: float | int = 0.2,
    pool_size: int | None = None,
    config: LearnerConfig | None = None,
    gpu: int | None = None,
    full_score: float | None = None,
    dedup_threshold: float = 0.8,
    oversample: int = 4,
    score_batch_size: int = 256,
    progress: Callable[[CurvePoint], None] | None = None,
) -> SimulationResult:
    """Run simulated active learning; see the module docstring. Returns every curve point."""
    t_start = time.perf_counter()
    task = TaskKind(task)
    if isinstance(records, (str, os.PathLike)):
        records = load_records(records)
    if isinstance(dev, (str, os.PathLike)):
        dev = load_records(dev)
    strategies = [check_strategy(s) for s in strategies]
    if rounds < 0 or batch < 1:
        raise UsageError("rounds must be >= 0 and batch >= 1")
    all_records = list(records) + list(dev or [])
    if labels is None:
        labels = LabelSchema.infer(task, all_records).labels
    config = config or LearnerConfig()
    schema = LabelSchema(task, list(labels), spans_key=config.spans_key)
    gold = _gold(records, schema, config.lang)
    if not gold:
        raise UsageError("No record converts to a gold document: check --task and the labels.")
    # A fixed split: the dev set is the same for every strategy and seed.
    if dev is not None:
        dev_gold = [d for _, d in _gold(dev, schema, config.lang)]
        pool = gold
    else:
        shuffled = list(gold)
        random.Random(20170).shuffle(shuffled)
        n_dev = int(dev_size * len(shuffled)) if isinstance(dev_size, float) else int(dev_size)
        if not 0 < n_dev < len(shuffled):
            raise UsageError(f"dev_size {dev_size} leaves no dev set or no pool out of {len(shuffled)} records")
        dev_gold = [d for _, d in shuffled[:n_dev]]
        pool = shuffled[n_dev:]
    if pool_size is not None:
        pool = random.Random(20171).sample(pool, min(pool_size, len(pool)))
    if not dev_gold:
        raise UsageError("The dev set is empty.")
    needed = batch * (rounds + 1)
    if needed > len(pool):
        raise UsageError(f"{rounds} rounds of {batch} need {needed} pool documents; the pool has {len(pool)}")

    if full_score is None:
        learner = Learner(task, labels, config=replace(config, seed=seeds[0] if seeds else 0), gpu=gpu)
        learner.fit([d for _, d in pool], mode="retrain")
        full_score = learner.evaluate(dev_gold)["score"]

    result = SimulationResult(
        task=task.value,
        pool_size=len(pool),
        dev_size=len(dev_gold),
        batch=batch,
        rounds=rounds,
        full_score=float(full_score),
    )
    gold_by_id = {r.id: d for r, d in pool}
    documents = [r.document for r, _ in pool]
    for strategy in strategies:
        for seed in seeds:
            learner = Learner(task, labels, config=replace(config, seed=seed), gpu=gpu)
            labelled: list[str] = []
            for rnd in range(rounds + 1):
                t0 = time.perf_counter()
                scored = learner.score_pool(
                    documents,
                    strategy,
                    keep=batch * oversample,
                    batch_size=score_batch_size,
                    exclude_ids=labelled,
                    with_predictions=False,
                    seed=seed * 1000 + rnd,
                )
                taken, _ = select_batch(scored.candidates, batch, threshold=dedup_threshold)
                labelled.extend(c.document.id for c in taken)
                t1 = time.perf_counter()
                learner.fit([gold_by_id[i] for i in labelled])
                t2 = time.perf_counter()
                score = learner.evaluate(dev_gold)["score"]
                point = CurvePoint(
                    strategy=strategy,
                    seed=seed,
                    round=rnd,
                    labels=len(labelled),
                    share=round(len(labelled) / len(pool), 6),
                    score=round(float(score), 6),
                    fit_seconds=round(t2 - t1, 3),
                    score_seconds=round(t1 - t0, 3),
                )
                result.points.append(point)
                if progress is not None:
                    progress(point)
    result.seconds = time.perf_counter() - t_start
    return result


def summary_dict(result: SimulationResult) -> dict[str, Any]:
    return {
        "task": result.task,
        "pool_size": result.pool_size,
        "dev_size": result.dev_size,
        "full_score": result.full_score,
        "summaries": [asdict(s) for s in result.summaries()],
    }
