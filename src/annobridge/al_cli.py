"""``annobridge al``: the active-learning loop and its simulation from the shell.

Mounted in the main CLI as ``app.add_typer(al_app, name="al")``; runnable on its own too
(``python -m annobridge.al_cli``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .atomic import atomic_write_text
from .errors import AnnobridgeError, UsageError

if TYPE_CHECKING:
    from .al.stopping import StoppingRule

app = typer.Typer(
    name="al",
    help="Active learning: ask annotators about the documents the model is least sure of.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

TASK_HELP = "ner (beam_ner), spans (spancat), textcat or textcat_multilabel"


def _labels(value: str | None) -> list[str] | None:
    if not value:
        return None
    labels = [v.strip() for v in value.split(",") if v.strip()]
    return labels or None


def _no_nan(value: object) -> object:
    """JSON has no NaN: "never reached" becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


STOP_WHEN = ("never", "stable")

DiversityOpt = Annotated[
    str,
    typer.Option(
        "--diversity",
        help="Batch selection: none (top-k), kcenter (k-center greedy) or badge (k-means++ over "
        "uncertainty-weighted vectors), over the --diversity-pool x batch most uncertain documents",
    ),
]
DiversityPoolOpt = Annotated[
    int, typer.Option("--diversity-pool", min=1, help="Candidates for a diverse batch, as a multiple of the batch")
]
StopWhenOpt = Annotated[
    str, typer.Option("--stop-when", help="never, or stable: stop once predictions on the stop set stop changing")
]
StopThresholdOpt = Annotated[float, typer.Option("--stop-threshold", help="Stable means the metric >= this")]
StopRoundsOpt = Annotated[int, typer.Option("--stop-rounds", min=1, help="... in this many consecutive rounds")]
StopMetricOpt = Annotated[str, typer.Option("--stop-metric", help="kappa (chance-corrected) or agreement")]
StopMaxSlopeOpt = Annotated[
    float | None,
    typer.Option("--stop-max-slope", help="... and the dev score gains at most this per 100 labels (mean over them)"),
]
EngineOpt = Annotated[
    str, typer.Option("--engine", help="Score the pool here (local) or on Ray Data (ray; the 'ray' extra)")
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster for --engine ray: ray://host:10001 or auto (default: local)"),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="Scoring actors for --engine ray (default: one per CPU)")
]
PipelineOpt = Annotated[
    str | None,
    typer.Option(
        "--pipeline",
        help="Start from your spaCy pipeline (a package name or a model-best folder): its component for --task "
        "is fine-tuned, or one is added",
    ),
]
ComponentOpt = Annotated[
    str | None, typer.Option("--component", help="With --pipeline: the component to fine-tune (a new name adds one)")
]
StopSampleOpt = Annotated[
    int, typer.Option("--stop-sample", min=0, help="Pool documents in the fixed stop set (0: no stopping signal)")
]


def _stop_rule(
    when: str, threshold: float, rounds: int, metric: str, max_slope: float | None = None
) -> StoppingRule | None:
    from .al.stopping import StoppingRule

    if when not in STOP_WHEN:
        raise UsageError(f"--stop-when must be one of {', '.join(STOP_WHEN)}, not {when!r}")
    if when != "stable":
        return None
    return StoppingRule(threshold=threshold, rounds=rounds, metric=metric, max_slope=max_slope)


def _check_engine(engine: str, address: str | None, workers: int | None) -> None:
    from .al.learner import ENGINES

    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine != "ray" and (address is not None or workers is not None):
        raise UsageError("--address and --workers are for --engine ray")


def _shutdown_ray(engine: str) -> None:
    """Stop the local Ray this command started (a cluster it connected to keeps running)."""
    if engine == "ray":
        from .al import ray_engine

        ray_engine.shutdown()


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(getattr(exc, "exit_code", 1))


@app.command("run")
def run_command(
    source: Annotated[
        str, typer.Argument(help="The tool to send tasks to, e.g. labelstudio://127.0.0.1:8080/projects/3")
    ],
    pool: Annotated[
        str, typer.Option("--pool", help="Unlabelled documents (JSONL/CSV/TXT/...), streamed; a path or s3://... URL")
    ],
    task: Annotated[str, typer.Option("--task", help=TASK_HELP)],
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated labels (default: from --dev)")] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", help="entropy, margin, least_confidence or random")
    ] = "entropy",
    batch: Annotated[int, typer.Option("--batch", min=1, help="Documents pushed per round")] = 50,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Stop after this many rounds in total")] = 1,
    dev: Annotated[
        Path | None, typer.Option("--dev", help="Gold records (annobridge JSONL) to score every round")
    ] = None,
    state: Annotated[Path, typer.Option("--state", help="State folder: rerun with the same one to resume")] = Path(
        "al-state"
    ),
    wait: Annotated[
        float | None, typer.Option("--wait", help="Seconds to wait for labels per round (default: until labelled)")
    ] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between checks for new labels")] = 10.0,
    min_labelled: Annotated[float, typer.Option("--min-labelled", help="Share of a batch that must be labelled")] = 1.0,
    fit_mode: Annotated[str, typer.Option("--fit-mode", help="warm (continue training) or retrain")] = "warm",
    gpu: Annotated[int, typer.Option("--gpu", help="GPU id (CuPy); -1 = CPU")] = -1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    diversity: DiversityOpt = "none",
    diversity_pool: DiversityPoolOpt = 10,
    stop_when: StopWhenOpt = "never",
    stop_threshold: StopThresholdOpt = 0.99,
    stop_rounds: StopRoundsOpt = 3,
    stop_metric: StopMetricOpt = "kappa",
    stop_max_slope: StopMaxSlopeOpt = None,
    stop_sample: StopSampleOpt = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stop set and of badge sampling")] = 0,
    pipeline: PipelineOpt = None,
    component: ComponentOpt = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Run the loop: push the least certain pool documents to SOURCE, wait, pull, retrain, evaluate.

    Each round scores POOL, pushes the --batch least certain documents with their scores, waits for labels,
    pulls them, retrains and scores --dev. State is saved after every stage: the same command resumes.
    Every round prints the stopping signal (kappa between this and the last model's predictions on a fixed
    sample of the pool); --stop-when stable ends the loop once it stays above --stop-threshold.
    --engine ray scores the pool on Ray Data (a local Ray, or the cluster at --address): the same batches
    as --engine local once a model is fitted (the cold-start batch is drawn by document id).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    try:
        _check_engine(engine, address, workers)
        from .al.learner import Learner
        from .al.loop import ActiveLearningLoop
        from .al.simulate import load_records
        from .model import LabelSchema

        label_list = _labels(labels)
        if label_list is None:
            if dev is None:
                raise UsageError("Give --labels, or --dev records to read the labels from.")
            label_list = LabelSchema.infer(task, load_records(str(dev))).labels
        rule = _stop_rule(stop_when, stop_threshold, stop_rounds, stop_metric, stop_max_slope)
        if pipeline is None:
            learner = Learner(task, label_list, gpu=gpu, fit_mode=fit_mode)
        else:
            learner = Learner.from_pipeline(pipeline, task, label_list, component=component, gpu=gpu,
                                            fit_mode=fit_mode)
        console.print(escape(f"Device: {learner.device.describe()}"))
        for note in learner.notes:
            console.print(escape(f"Pipeline {pipeline}: {note}"))
        loop = ActiveLearningLoop(
            source,
            learner,
            pool,
            str(dev) if dev else None,
            state_dir=state,
            strategy=strategy,
            batch=batch,
            poll_interval=poll,
            wait_timeout=wait,
            min_labelled=min_labelled,
            diversity=diversity,
            diversity_pool=diversity_pool,
            stability_sample=stop_sample,
            stop=rule,
            seed=seed,
            engine=engine,
            ray_address=address,
            workers=workers,
        )
        if loop.round or loop.state["done"]:
            console.print(escape(f"Resuming round {loop.round} at stage {loop.next_stage!r} ({state})"))
        reports = loop.run(rounds, on_round=lambda r: console.print(escape(r.summary())))
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    finally:
        _shutdown_ray(engine)
    stopped = loop.stopped
    if stopped is not None:
        console.print(
            escape(
                f"Stopped after round {stopped['round']}: predictions stable ({stopped['rule']}); "
                f"{stopped['labels']} labels of a {stopped['budget_labels']}-label budget "
                f"({stopped['saved']:.1%} not needed)"
            )
        )
    elif loop.round < rounds:
        pushed = len(loop.state["pushed"])
        console.print(
            f"Waiting for labels on round {loop.round} ({pushed} tasks pushed). "
            "Label them in the tool and run the same command again to go on."
        )
    table = Table("round", "labels", "dev score", "kappa", "dev slope/100", "strategy", "seconds per stage")
    for r in loop.history:
        table.add_row(
            str(r.round),
            str(r.labels),
            "n/a" if r.dev_score is None else f"{r.dev_score:.3f}",
            "n/a" if r.kappa is None else f"{r.kappa:.3f}",
            "n/a" if r.dev_slope is None else f"{r.dev_slope:+.3f}",
            r.strategy + (" (cold start)" if r.cold_start else ""),
            ", ".join(f"{k} {v:.1f}" for k, v in r.stage_seconds.items()),
        )
    Console().print(table)
    if not reports and loop.round < rounds and stopped is None:
        raise typer.Exit(3)


@app.command("simulate")
def simulate_command(
    data: Annotated[str, typer.Argument(help="Gold records: annobridge JSONL (.jsonl/.jsonl.gz) or any adapter URL")],
    task: Annotated[str, typer.Option("--task", help=TASK_HELP)],
    strategy: Annotated[str, typer.Option("--strategy", help="The strategy to measure")] = "entropy",
    vs: Annotated[list[str] | None, typer.Option("--vs", help="Strategies to compare against (repeatable)")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=0, help="Rounds after the cold-start batch")] = 5,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Documents labelled per round")] = 50,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Repeat with seeds 0..N-1")] = 1,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated labels (default: all seen)")] = None,
    dev: Annotated[str | None, typer.Option("--dev", help="Gold dev records (default: hold out --dev-size)")] = None,
    dev_size: Annotated[float, typer.Option("--dev-size", help="Share (<1) or number of records held out")] = 0.2,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="Subsample the pool to this size")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for curve.csv, curve.png, summary.json")] = Path("al-sim"),
    width: Annotated[int, typer.Option("--width", help="tok2vec width (ner, spans)")] = 96,
    depth: Annotated[int, typer.Option("--depth", help="tok2vec depth (ner, spans)")] = 4,
    fit_mode: Annotated[str, typer.Option("--fit-mode", help="warm or retrain")] = "warm",
    gpu: Annotated[int, typer.Option("--gpu", help="GPU id (CuPy); -1 = CPU")] = -1,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write curve.png (needs matplotlib)")] = True,
    diversity: DiversityOpt = "none",
    diversity_pool: DiversityPoolOpt = 10,
    stop_when: StopWhenOpt = "never",
    stop_threshold: StopThresholdOpt = 0.99,
    stop_rounds: StopRoundsOpt = 3,
    stop_metric: StopMetricOpt = "kappa",
    stop_max_slope: StopMaxSlopeOpt = None,
    stop_sample: StopSampleOpt = 500,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    pipeline: PipelineOpt = None,
    component: ComponentOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (and Ray's own output)")] = False,
) -> None:
    """Simulate active learning with the gold labels as the annotator; write the learning curves.

    --diversity applies to --strategy (and to any --vs without its own: --vs entropy+kcenter names one).
    --engine ray scores the pool on Ray Data every round; cold-start batches are then drawn by document id.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    try:
        _check_engine(engine, address, workers)
        from .al.learner import LearnerConfig
        from .al.simulate import simulate, summary_dict

        size: float | int = dev_size if dev_size < 1 else int(dev_size)
        config = LearnerConfig(width=width, depth=depth, fit_mode=fit_mode)
        from .al.diversity import parse_strategy, strategy_name
        from .al.simulate import CurvePoint

        rule = _stop_rule(stop_when, stop_threshold, stop_rounds, stop_metric, stop_max_slope)
        main = strategy_name(*parse_strategy(strategy, diversity))
        strategies = list(dict.fromkeys([main, *(strategy_name(*parse_strategy(v)) for v in vs or [])]))

        def progress(p: CurvePoint) -> None:
            signal = ""
            if p.kappa is not None:
                signal = f", kappa {p.kappa:.3f}"
            if p.dev_slope is not None:
                signal += f", slope {p.dev_slope:+.3f}/100"
            console.print(
                f"{p.strategy:>16} seed {p.seed} round {p.round}: {p.labels} labels, score {p.score:.3f}{signal}",
                highlight=False,
            )

        result = simulate(
            data,
            task=task,
            labels=_labels(labels),
            strategies=strategies,
            rounds=rounds,
            batch=batch,
            seeds=list(range(seeds)),
            dev=dev,
            dev_size=size,
            pool_size=pool_size,
            config=config,
            gpu=gpu,
            progress=progress,
            diversity_pool=diversity_pool,
            stability_sample=stop_sample,
            stop=rule,
            engine=engine,
            ray_address=address,
            workers=workers,
            pipeline=pipeline,
            component=component,
        )
        out.mkdir(parents=True, exist_ok=True)
        result.write_csv(out / "curve.csv")
        summary = summary_dict(result)
        atomic_write_text(out / "summary.json", json.dumps(_no_nan(summary), indent=2))
        if plot:
            result.plot(out / "curve.png")
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    finally:
        _shutdown_ray(engine)
    Console().print(f"full-data score {result.full_score:.3f} (pool {result.pool_size}, dev {result.dev_size})")
    Console().print(result.to_markdown())
    for st in result.stops:
        console.print(
            escape(
                f"{st.strategy} seed {st.seed}: stopped after round {st.round} ({st.rule}), "
                f"{st.labels} of {st.budget} labels, {st.saved:.1%} of the budget saved, score {st.score:.3f}"
            ),
            highlight=False,
        )
    console.print(
        escape(f"Wrote {out / 'curve.csv'}" + (f", {out / 'curve.png'}" if plot else "") + f", {out / 'summary.json'}")
    )


def main() -> None:  # pragma: no cover - `python -m annobridge.al_cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
