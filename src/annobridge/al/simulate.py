"""Simulated active learning: gold labels answer every question, so a strategy's value can be measured.

For each strategy and seed: a cold-start batch (random, near-duplicates removed), then ``rounds``
rounds of score -> select ``batch`` -> add their gold docs -> fit -> evaluate on a fixed dev set.
The learning curve (dev score against labels) is summarised by

* **AUC**: the area under the curve divided by its width, i.e. the mean dev score over the budget
  (1.0 = perfect from the first batch on);
* **share to 95%**: the share of the pool that had to be labelled before the dev score first reached
  95% of the *full-data* score (the same Learner fit on the whole pool); ``nan`` when it never did.

A strategy may carry a diversity method (``entropy+kcenter``, ``margin+badge``; see
:mod:`annobridge.al.diversity`). With ``stability_sample`` > 0 every point also records the
stopping signal (:mod:`annobridge.al.stopping`); with a ``stop`` rule a run ends when it fires, and
the result says how many labels of the budget that saved.
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
from .diversity import parse_strategy, select_diverse, strategy_name
from .learner import Learner, LearnerConfig
from .stopping import StabilityPoint, StoppingRule, dev_slope, prediction_items, reservoir_sample, stability
from .strategies import select_batch

__all__ = [
    "CurvePoint",
    "SimulationResult",
    "StopReport",
    "StrategySummary",
    "area_under_curve",
    "load_records",
    "simulate",
]


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
    #: the stopping signal against the previous round (None: first round, or not measured)
    kappa: float | None = None
    agreement: float | None = None
    #: dev score gained per 100 labels since the previous round
    dev_slope: float | None = None


@dataclass
class StopReport:
    """Where a stopping rule fired in one run, and what it saved against the full budget."""

    strategy: str
    seed: int
    round: int
    labels: int
    budget: int
    saved: float
    score: float
    rule: str


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
    stops: list[StopReport] = field(default_factory=list)

    @property
    def budget(self) -> int:
        """Labels a run uses when nothing stops it: the cold-start batch and ``rounds`` more."""
        return self.batch * (self.rounds + 1)

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
        if self.stops:
            rows += ["", "| strategy | seed | stopped after round | labels | of budget | labels saved | score |"]
            rows.append("|---|---|---|---|---|---|---|")
            for st in self.stops:
                rows.append(
                    f"| {st.strategy} | {st.seed} | {st.round} | {st.labels} | {st.budget} | {st.saved:.1%} | "
                    f"{st.score:.3f} |"
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
    diversity: str | None = None,
    diversity_pool: int = 10,
    stability_sample: int | None = None,
    stop: StoppingRule | None = None,
    pipeline: str | os.PathLike[str] | None = None,
    component: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> SimulationResult:
    """Run simulated active learning; see the module docstring. Returns every curve point.

    ``diversity`` applies to every strategy without one of its own (``entropy`` vs ``entropy+kcenter``);
    a diverse batch is chosen among the ``batch × diversity_pool`` most uncertain documents.
    ``stability_sample``: pool documents in the fixed stop set (default 500 with a ``stop`` rule,
    else 0 = not measured). ``engine="ray"`` scores the pool on Ray Data every round (``ray_address``:
    a cluster; else a local Ray with ``workers`` CPUs); cold-start batches are then drawn by
    ``(seed, document id)`` instead of the local engine's generator.
    """
    t_start = time.perf_counter()
    task = TaskKind(task)
    if isinstance(records, (str, os.PathLike)):
        records = load_records(records)
    if isinstance(dev, (str, os.PathLike)):
        dev = load_records(dev)
    specs = [parse_strategy(s, diversity) for s in strategies]
    if diversity_pool < 1:
        raise UsageError("diversity_pool must be at least 1")
    n_stop = (500 if stop is not None else 0) if stability_sample is None else stability_sample
    if stop is not None and n_stop < 1:
        raise UsageError("a stopping rule needs a stop set: stability_sample must be at least 1")
    if rounds < 0 or batch < 1:
        raise UsageError("rounds must be >= 0 and batch >= 1")
    from .learner import ENGINES

    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # the install hint now, not after the full-data fit
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

    def new_learner(seed: int) -> Learner:
        settings = replace(config, seed=seed)
        if pipeline is None:
            return Learner(task, labels, config=settings, gpu=gpu)
        return Learner.from_pipeline(str(pipeline), task, labels, component=component, config=settings, gpu=gpu)

    if full_score is None:
        learner = new_learner(seeds[0] if seeds else 0)
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
    # The stop set: fixed across strategies and seeds, drawn from the (unlabelled) pool.
    stop_set = reservoir_sample(documents, n_stop, seed=20172)
    for strategy, div in specs:
        name = strategy_name(strategy, div)
        for seed in seeds:
            learner = new_learner(seed)
            labelled: list[str] = []
            previous: list[str] | None = None
            signal: list[StabilityPoint] = []
            curve: list[CurvePoint] = []
            for rnd in range(rounds + 1):
                t0 = time.perf_counter()
                scored = learner.score_pool(
                    documents,
                    strategy,
                    keep=batch * (diversity_pool if div != "none" else oversample),
                    batch_size=score_batch_size,
                    exclude_ids=labelled,
                    with_predictions=False,
                    seed=seed * 1000 + rnd,
                    engine=engine,
                    ray_address=ray_address,
                    workers=workers,
                )
                if div != "none" and not scored.cold_start:
                    vectors = learner.doc_vectors([c.document for c in scored.candidates])
                    taken, _ = select_diverse(
                        scored.candidates, batch, vectors, diversity=div, threshold=dedup_threshold,
                        seed=seed * 1000 + rnd,
                    )  # fmt: skip
                else:
                    taken, _ = select_batch(scored.candidates, batch, threshold=dedup_threshold)
                labelled.extend(c.document.id for c in taken)
                t1 = time.perf_counter()
                learner.fit([gold_by_id[i] for i in labelled])
                t2 = time.perf_counter()
                score = learner.evaluate(dev_gold)["score"]
                slope = dev_slope([p.labels for p in curve] + [len(labelled)], [p.score for p in curve] + [score])
                sig: StabilityPoint | None = None
                if stop_set:
                    current = prediction_items(learner, stop_set, batch_size=score_batch_size)
                    sig = stability(previous, current, rnd, slope)
                    previous = current
                    signal.append(sig)
                point = CurvePoint(
                    strategy=name,
                    seed=seed,
                    round=rnd,
                    labels=len(labelled),
                    share=round(len(labelled) / len(pool), 6),
                    score=round(float(score), 6),
                    fit_seconds=round(t2 - t1, 3),
                    score_seconds=round(t1 - t0, 3),
                    kappa=sig.kappa if sig else None,
                    agreement=sig.agreement if sig else None,
                    dev_slope=None if slope is None else round(slope, 6),
                )
                result.points.append(point)
                curve.append(point)
                if progress is not None:
                    progress(point)
                if stop is not None and stop.fires(signal):
                    result.stops.append(
                        StopReport(
                            strategy=name,
                            seed=seed,
                            round=rnd,
                            labels=len(labelled),
                            budget=result.budget,
                            saved=round(1.0 - len(labelled) / result.budget, 6),
                            score=round(float(score), 6),
                            rule=stop.describe(),
                        )
                    )
                    break
    result.seconds = time.perf_counter() - t_start
    return result


def summary_dict(result: SimulationResult) -> dict[str, Any]:
    return {
        "task": result.task,
        "pool_size": result.pool_size,
        "dev_size": result.dev_size,
        "full_score": result.full_score,
        "summaries": [asdict(s) for s in result.summaries()],
        "budget": result.budget,
        "stops": [asdict(s) for s in result.stops],
    }
