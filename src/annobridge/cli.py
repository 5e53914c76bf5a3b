"""``annobridge`` command line. Exit codes: 0 ok, 1 data errors (see the report), 2 usage."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .errors import AnnobridgeError, UsageError
from .model import Answer, TaskKind

app = typer.Typer(
    name="annobridge",
    help=(
        "Move annotations between Label Studio, Argilla, Doccano and Prodigy, and turn them into "
        "spaCy training data.\n\n"
        "Sources and destinations are URL-like strings: jsonl:records.jsonl, "
        "prodigy:annotations.jsonl, prodigy:prodigy.db?dataset=news, "
        "labelstudio://127.0.0.1:8080/projects/3, doccano://127.0.0.1:8000/projects/1, "
        "argilla://127.0.0.1:6900/WORKSPACE/DATASET. Run 'annobridge adapters' to see what is installed."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=True)
out_console = Console()


def _version(value: bool) -> None:
    if value:
        out_console.print(f"annobridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    pass


def _fail(exc: AnnobridgeError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(exc.exit_code)


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; silent otherwise (logs, CI)."""
    if not console.is_terminal:
        yield lambda n: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task_id = progress.add_task(description, total=total)
        pending = 0

        def advance(n: int) -> None:
            nonlocal pending
            pending += n
            if pending >= 200:  # redrawing per record costs more than converting it
                progress.advance(task_id, pending)
                pending = 0

        yield advance


def _answers(values: list[str] | None) -> list[Answer] | None:
    if not values:
        return None
    try:
        return [Answer(v) for v in values]
    except ValueError:
        raise UsageError(f"--answer takes {', '.join(a.value for a in Answer)}") from None


TaskOpt = Annotated[
    TaskKind,
    typer.Option(
        "--task",
        "-t",
        help="ner (doc.ents), spans (overlapping, doc.spans), textcat (exclusive) or textcat_multilabel.",
        case_sensitive=False,
    ),
]


@app.command("export")
def export_cmd(
    source: Annotated[str, typer.Argument(help="Where the annotations are, e.g. prodigy:news.jsonl.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    task: TaskOpt,
    split: Annotated[
        str, typer.Option(help="train,dev[,test] ratios. A document's split depends only on its id and the seed.")
    ] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed of the split hash.")] = 0,
    merge: Annotated[
        str,
        typer.Option(
            "--merge",
            help=(
                "How to settle disagreeing annotators: ground_truth (ground truth, else latest), "
                "latest, majority, unanimous, prefer:NAME."
            ),
        ),
    ] = "ground_truth",
    lang: Annotated[str, typer.Option(help="Language of the blank tokenizer (spacy.blank).")] = "en",
    model: Annotated[str | None, typer.Option(help="Tokenize with this installed pipeline instead of --lang.")] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="spacy (DocBin shards), fasttext, conll (IOB for spacy convert) or jsonl."),
    ] = "spacy",
    labels: Annotated[
        str | None,
        typer.Option(help="Comma-separated label set; others are dropped and reported. Default: the labels found."),
    ] = None,
    align: Annotated[
        str, typer.Option(help="Spans not on token boundaries: strict (drop), contract or expand (snap).")
    ] = "expand",
    stratify: Annotated[
        bool,
        typer.Option(
            help="Balance category labels across splits (textcat). A doc at a cut may move when the corpus grows."
        ),
    ] = False,
    group_by: Annotated[
        str | None, typer.Option(help="Meta key whose documents must share a split (e.g. source file).")
    ] = None,
    answer: Annotated[list[str] | None, typer.Option(help="Only annotations with this answer (repeatable).")] = None,
    shard_size: Annotated[int, typer.Option(help="Docs per .spacy shard; keeps memory flat.")] = 10_000,
    config: Annotated[bool, typer.Option("--config", help="Also write a starter config.cfg for the task.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
) -> None:
    """Convert annotations to spaCy training data: train/dev/test, a manifest and a report.

    Example: annobridge export prodigy:fashion.jsonl --task ner --out corpus --config
    """
    from .export import export
    from .plugins import open_adapter

    try:
        label_list = [label.strip() for label in labels.split(",") if label.strip()] if labels else None
        with open_adapter(source) as adapter, _progress("Exporting", adapter.count()) as advance:
            report = export(
                adapter,
                out,
                task=task,
                labels=label_list,
                split=split,
                seed=seed,
                policy=merge,
                lang=lang,
                model=model,
                format=fmt,
                align=align,
                stratify=stratify,
                group_by=group_by,
                shard_size=shard_size,
                answers=_answers(answer),
                write_config=config,
                progress=advance,
            )
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    except FileNotFoundError as exc:
        raise _fail(UsageError(str(exc))) from None
    if as_json:
        out_console.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_report(report)
    if report.data_errors:
        raise typer.Exit(1)


def _counter_table(title: str, counter: Counter[str], key_name: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column(key_name)
    table.add_column("count", justify="right")
    for key, n in counter.most_common():
        table.add_row(key, str(n))
    return table


def _print_report(report: Any) -> None:
    c = out_console
    skipped = sum(report.records_skipped.values())
    c.print(
        f"[bold]{report.records_read}[/] records read: [green]{report.records_exported} exported[/], "
        f"{skipped} skipped" + (f" ([red]{report.data_errors} data errors[/])" if report.data_errors else "")
    )
    splits = Table(title="Splits", title_justify="left", show_edge=False)
    splits.add_column("split")
    splits.add_column("docs", justify="right")
    for label in report.labels:
        splits.add_column(label, justify="right")
    for name in ("train", "dev", "test"):
        if name in report.docs_per_split:
            per_label = report.labels_per_split.get(name, Counter())
            splits.add_row(name, str(report.docs_per_split[name]), *(str(per_label.get(lb, 0)) for lb in report.labels))
    c.print(splits)
    if report.records_skipped:
        c.print(_counter_table("Skipped records", report.records_skipped, "reason"))
    if report.spans_adjusted:
        c.print(_counter_table("Spans adjusted", report.spans_adjusted, "how"))
    if report.spans_dropped:
        c.print(_counter_table("Spans dropped", report.spans_dropped, "reason"))
    if report.conflicts:
        c.print(_counter_table("Annotator conflicts", report.conflicts, "resolution"))
    c.print(f"Report: {Path(report.out_dir) / 'report.json'}   manifest: {Path(report.out_dir) / 'manifest.jsonl'}")
    if report.format == "spacy" and "train" in report.files:
        cfg = report.config or "config.cfg"
        dev = f" --paths.dev {Path(report.out_dir) / 'dev'}" if "dev" in report.files else ""
        if not dev:
            c.print("[yellow]No dev split: give --split a dev ratio before training.[/]")
        if report.config is None:
            pipe = {"ner": "ner", "spans": "spancat"}.get(report.task, report.task)
            c.print(f"Next: python -m spacy init config config.cfg --pipeline {pipe}   (or re-run with --config)")
        c.print(f"Next: python -m spacy train {cfg} --paths.train {Path(report.out_dir) / 'train'}{dev}")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="Corpus: .jsonl, .json, .csv, .tsv, .txt (one text a line) or .spacy.")],
    dest: Annotated[str, typer.Argument(help="Where to import, e.g. labelstudio://127.0.0.1:8080/projects/3.")],
    task: Annotated[
        TaskKind | None, typer.Option("--task", "-t", help="Create/check the project for this task.")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels for the project.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Pre-annotate with this installed spaCy pipeline (needs --task).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Documents per model batch when pre-annotating.")] = 256,
) -> None:
    """Import documents into a tool's project (idempotent: documents already there are not added again).

    Example: annobridge import texts.jsonl labelstudio://127.0.0.1:8080/projects/3 --task ner --labels PERSON,ORG
    """
    from .model import LabelSchema
    from .plugins import open_adapter
    from .readers import read_documents

    skipped: list[tuple[str, str]] = []
    left_out: Counter[str] = Counter()
    try:
        if model and task is None:
            raise UsageError("--model needs --task to know what to predict")
        schema = None
        if task is not None:
            schema = LabelSchema(task, [x.strip() for x in labels.split(",")] if labels else [])
        with open_adapter(dest) as adapter:
            if schema is not None and adapter.capabilities.create_project:
                adapter.ensure_project(schema)
            documents = list(read_documents(file, on_skip=lambda where, why: skipped.append((where, why))))
            predictions = None
            if model:
                import spacy

                from .predict import predict_documents

                try:
                    nlp = spacy.load(model)
                except OSError as exc:
                    raise UsageError(f"Cannot load spaCy pipeline {model!r}: {exc}") from None
                wanted = set(schema.labels) if schema is not None and schema.labels else None
                with _progress("Pre-annotating", len(documents)) as advance:
                    predictions = {}
                    for doc, pred in predict_documents(nlp, documents, task or TaskKind.NER, batch_size=batch_size):
                        if wanted is not None:  # the project asks for --labels only; say what the model had beyond
                            kept = [s for s in pred.spans if s.label in wanted]
                            left_out.update(s.label for s in pred.spans if s.label not in wanted)
                            pred.spans = kept
                            left_out.update(label for label in pred.categories if label not in wanted)
                            pred.categories = {k: v for k, v in pred.categories.items() if k in wanted}
                        predictions[doc.id] = pred
                        advance(1)
            result = adapter.import_documents(documents, schema=schema, predictions=predictions)
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    out_console.print(
        f"{len(documents) + len(skipped)} lines read: [green]{result.created} imported[/], "
        f"{result.existing} already there, {len(result.failed)} failed, {len(skipped)} unreadable"
    )
    if left_out:
        labels_left = ", ".join(f"{label} ({n})" for label, n in left_out.most_common())
        out_console.print(f"Predicted labels not in --labels, left out: {labels_left}")
    for where, why in skipped[:10]:
        out_console.print(f"  unreadable {where}: {why}")
    for doc_id, why in result.failed[:10]:
        out_console.print(f"  failed {doc_id}: {why}")
    if skipped or result.failed:
        raise typer.Exit(1)


@app.command("pull")
def pull_cmd(
    source: Annotated[str, typer.Argument(help="Where the annotations are.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Records JSONL to write (annobridge's lossless format).")
    ],
    answer: Annotated[list[str] | None, typer.Option(help="Only annotations with this answer (repeatable).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only what changed after this cursor (printed by the previous pull).")
    ] = None,
) -> None:
    """Pull every record with its annotations (per annotator) into annobridge JSONL.

    Example: annobridge pull prodigy:prodigy.db?dataset=news -o news.jsonl
    """
    from .plugins import open_adapter

    try:
        with open_adapter(source) as adapter, _progress("Pulling", adapter.count()) as advance:
            count = annotations = 0
            with output.open("w", encoding="utf-8") as fh:
                for record in adapter.pull(answers=_answers(answer), since=since):
                    fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                    count += 1
                    annotations += len(record.annotations)
                    advance(1)
            skipped, cursor = list(adapter.skipped), adapter.cursor
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    out_console.print(f"{count} records ({annotations} annotations) written to {output}")
    for where, why in skipped[:10]:
        out_console.print(f"  skipped {where}: {why}")
    if cursor is not None:
        value = cursor.isoformat() if hasattr(cursor, "isoformat") else str(cursor)
        out_console.print(f"Next incremental pull: --since {value}")
    if skipped:
        out_console.print(f"[red]{len(skipped)} inputs could not be read[/]")
        raise typer.Exit(1)


@app.command("stats")
def stats_cmd(
    source: Annotated[str, typer.Argument(help="Where the annotations are.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Count records, annotations per answer, per annotator and per label."""
    from .plugins import open_adapter

    per_answer: Counter[str] = Counter()
    per_annotator: Counter[str] = Counter()
    per_label: Counter[str] = Counter()
    records = 0
    try:
        with open_adapter(source) as adapter:
            for record in adapter.pull():
                records += 1
                for ann in record.annotations:
                    per_answer[ann.answer.value] += 1
                    per_annotator[ann.annotator] += 1
                    if ann.answer == Answer.ACCEPT:
                        per_label.update(s.label for s in ann.spans)
                        per_label.update(label for label, v in ann.categories.items() if v == 1.0)
            skipped = list(adapter.skipped)
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    data = {
        "records": records,
        "unreadable": len(skipped),
        "answers": dict(per_answer.most_common()),
        "annotators": dict(per_annotator.most_common()),
        "labels": dict(per_label.most_common()),
    }
    if as_json:
        out_console.print_json(json.dumps(data, ensure_ascii=False))
        return
    out_console.print(
        f"[bold]{records}[/] records, {sum(per_answer.values())} annotations, {len(skipped)} unreadable inputs"
    )
    out_console.print(_counter_table("Answers", per_answer, "answer"))
    out_console.print(_counter_table("Annotators", per_annotator, "annotator"))
    out_console.print(_counter_table("Labels (accepted)", per_label, "label"))


@app.command("adapters")
def adapters_cmd() -> None:
    """List installed adapters, their versions and what they can do."""
    from .errors import MissingDependencyError
    from .plugins import get_registry

    registry = get_registry()
    table = Table(show_edge=False)
    for column in ("scheme", "package", "status", "capabilities", "example"):
        table.add_column(column)
    for info in registry.adapters().values():
        try:
            info.adapter.check_dependencies()
            status = "[green]ready[/]"
        except MissingDependencyError as exc:
            status = f"[yellow]pip install 'annobridge[{exc.extra}]'[/]"
        package = f"{info.distribution or info.plugin} {info.version or ''}".strip()
        table.add_row(
            info.scheme, package, status, ", ".join(info.adapter.capabilities.enabled()), info.adapter.url_example
        )
    out_console.print(table)
    for error in registry.errors:
        out_console.print(f"[red]plugin failed to load[/] {error.entry_point}: {error.error}")


def _mount_subcommands() -> None:
    try:
        from .al_cli import app as al_app
    except ImportError:  # the active-learning commands need no extra to be listed, only to run
        return
    app.add_typer(al_app, name="al", help="Active learning: score a pool, label the least certain, retrain.")


_mount_subcommands()


def main() -> None:
    try:
        app()
    except AnnobridgeError as exc:  # raised outside a command's own handler
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
