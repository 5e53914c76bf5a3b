"""``annobridge`` command line.

Exit codes: 0 ok, 1 data errors (see the report), 2 usage errors, 3 server unreachable,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

Everything printed through rich is escaped (:func:`rich.markup.escape`): paths, ids, labels,
install hints like ``pip install 'annobridge[prodigy]'`` and server messages reach the
terminal as they are. Commands meant to be copied are printed without rich, unwrapped.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .adapter import redact
from .errors import AnnobridgeError, UsageError
from .model import Answer, TaskKind

#: exit codes beyond AnnobridgeError.exit_code (0 ok, 1 data, 2 usage, 3 unreachable)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    # typer prints "<bool>" beside every flag (--config, --json): noise that reads like a value
    # to type. A flag takes no value, so its type column stays empty.
    if self.is_flag:
        return None
    if self.metavar is not None:
        return self.metavar
    value_display = self.display_type(ctx)
    if self.nargs != 1 and value_display is not None:
        return str(value_display) + "..."
    return value_display


typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

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
console = Console(stderr=True, soft_wrap=True)  # one message, one line: no hard wraps
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
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _command_line(*words: str | Path) -> str:
    """A shell command that runs when copied as is (each word quoted as the shell needs)."""
    return " ".join(shlex.quote(str(word)) for word in words)


def _label_list(labels: str | None) -> list[str] | None:
    """``--labels A,B``: the labels, blanks left out; None when the option is not given."""
    return [label.strip() for label in labels.split(",") if label.strip()] if labels else None


def _cursor_text(cursor: Any) -> str:
    """A cursor as ``--since`` takes it back (a PullCursor's or a datetime's ``isoformat``)."""
    return cursor.isoformat() if hasattr(cursor, "isoformat") else str(cursor)


def _say_command(prefix: str, command: str) -> None:
    # no rich here: rich would wrap a long command onto two lines and read [brackets] as markup
    out_console.file.flush()
    sys.stdout.write(f"{prefix}{command}\n")
    sys.stdout.flush()


class _RetryLines(logging.Handler):
    """One line on stderr per retry of the HTTP layer (``annobridge.http`` logs them)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.print(f"[yellow]{escape(self.format(record))}[/]")
        except Exception:
            self.handleError(record)


def _attach_retry_lines() -> None:
    logger = logging.getLogger("annobridge.http")
    if not any(isinstance(h, _RetryLines) for h in logger.handlers):
        logger.addHandler(_RetryLines(logging.WARNING))
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)


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
    out: Annotated[
        str, typer.Option("--out", "-o", help="Output directory, or a URL: s3://bucket/corpus (docs/remote.md).")
    ],
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
                "latest, majority, unanimous, prefer:NAME, dawid-skene (categories, weighs annotators by "
                "estimated reliability). For ner/spans, majority and unanimous decide per span: agreed "
                "entities are kept, disputed regions become missing."
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
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace --out even when it is a non-empty folder that is not an export."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
    adjudicated: Annotated[
        str | None,
        typer.Option(
            help="Where an adjudicator reviewed these documents (see `annobridge review`): their decisions "
            "join as ground truth; use with --merge ground_truth."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local, or ray: convert to DocBin shards in parallel Ray tasks (the ray extra, --format spacy); "
            "the same docs per split."
        ),
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="--engine ray: the Ray cluster to connect to (default: start a local Ray).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="--engine ray: conversion tasks at a time (default: the cluster's CPUs).")
    ] = None,
) -> None:
    """Convert annotations to spaCy training data: train/dev/test, a manifest and a report.

    The output folder is replaced whole, and only once the export is complete: afterwards it
    holds exactly this export; an interrupted or failed run leaves the previous one as it was.

    Example: annobridge export prodigy:fashion.jsonl --task ner --out corpus --config
    """
    from .export import NothingExportedError, export

    try:
        label_list = _label_list(labels)
        with _source_with_decisions(source, adjudicated) as adapter, _progress(
            "Exporting", adapter.count()
        ) as advance:
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
                force=force,
                progress=advance,
                engine=engine,
                ray_address=address,
                workers=workers,
            )
    except NothingExportedError as exc:
        if as_json:
            out_console.print_json(json.dumps(exc.report.to_dict(), ensure_ascii=False))
        else:
            _print_report(exc.report, written=False)
        raise _fail(exc) from None
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


def _source_with_decisions(source: str, adjudicated: str | None) -> Any:
    """The source to export: as it is, or with an adjudication tool's decisions as ground truth."""
    from .plugins import open_adapter
    from .review import Adjudicated

    adapter = open_adapter(source)
    if adjudicated is None:
        return adapter
    try:
        return Adjudicated(adapter, open_adapter(adjudicated))
    except BaseException:
        adapter.close()
        raise


def _counter_table(title: str, counter: Counter[str], key_name: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column(key_name)
    table.add_column("count", justify="right")
    for key, n in counter.most_common():
        table.add_row(escape(str(key)), str(n))
    return table


def _print_report(report: Any, *, written: bool = True) -> None:
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
        splits.add_column(escape(label), justify="right")
    for name in ("train", "dev", "test"):
        if name in report.docs_per_split:
            per_label = report.labels_per_split.get(name, Counter())
            splits.add_row(name, str(report.docs_per_split[name]), *(str(per_label.get(lb, 0)) for lb in report.labels))
    if report.docs_per_split:
        c.print(splits)
    if report.records_skipped:
        c.print(_counter_table("Skipped records", report.records_skipped, "reason"))
    if report.spans_adjusted:
        c.print(_counter_table("Spans adjusted", report.spans_adjusted, "how"))
    if report.spans_dropped:
        c.print(_counter_table("Spans dropped", report.spans_dropped, "reason"))
    if report.conflicts:
        c.print(_counter_table("Annotator conflicts", report.conflicts, "resolution"))
    if report.offset_units_decided:
        c.print(_counter_table("Offset units of spans without decisive text", report.offset_units_decided, "decided"))
    if report.docs_with_disputes:
        disputed = ", ".join(f"{label} {n}" for label, n in report.disputed_spans.most_common())
        missing = f" ({report.missing_tokens} tokens missing)" if report.missing_tokens else ""
        c.print(
            f"{report.docs_with_disputes} docs exported with disputed regions{missing}; "
            f"disputed spans: {escape(disputed) or 'none'}",
            soft_wrap=True,
        )
    if report.dawid_skene:
        fitted = report.dawid_skene
        people = ", ".join(
            f"{name} {info['accuracy']:.2f} ({info['answers']} answers)" for name, info in fitted["annotators"].items()
        )
        state = "" if fitted.get("converged") else " [yellow](did not converge)[/]"
        c.print(f"dawid-skene estimated accuracy: {escape(people)}{state}", soft_wrap=True)
    if report.answers_superseded:
        c.print(
            f"{report.answers_superseded} earlier answers were superseded by the same annotator's later one "
            "(one vote per annotator)"
        )
    examples = {**report.examples, **report.span_examples}
    for reason, where in list(examples.items())[:8]:
        c.print(f"  e.g. {escape(reason)}: {escape(', '.join(where))}", soft_wrap=True)
    for warning in report.warnings:
        c.print(f"[yellow]warning:[/] {escape(warning)}")
    if not written:
        return
    from .remote import MANIFEST_NAME, basename, is_remote

    if is_remote(report.out_dir):  # the next steps run on a local copy, fetched as the manifest says
        out = Path(basename(report.out_dir))
        c.print(f"Published: {escape(report.out_dir + '/' + MANIFEST_NAME)} names this export's files")
        where = f"{json.dumps(report.out_dir)}, {json.dumps(str(out))}"
        fetch = f"from annobridge.remote import download_export; download_export({where})"
        _say_command("Download: ", _command_line(sys.executable, "-c", fetch))
    else:
        out = Path(report.out_dir)
        c.print(f"Report: {escape(str(out / 'report.json'))}   manifest: {escape(str(out / 'manifest.jsonl'))}")
    if report.format == "spacy" and "train" in report.files:
        if "dev" not in report.files:
            c.print("[yellow]No dev split: give --split a dev ratio before training.[/]")
            return
        cfg = Path(report.config) if report.config else out.parent / "config.cfg"
        if report.config is None:
            pipe = {"ner": "ner", "spans": "spancat"}.get(report.task, report.task)
            _say_command(
                "Next: ", _command_line(sys.executable, "-m", "spacy", "init", "config", cfg, "--pipeline", pipe)
            )
        model_dir = out.parent / f"{out.name}-model"
        _say_command(
            "Next: " if report.config else "Then: ",
            _command_line(
                sys.executable, "-m", "spacy", "train", cfg,
                "--paths.train", out / "train", "--paths.dev", out / "dev", "--output", model_dir,
            ),
        )


@app.command("import")
def import_cmd(
    file: Annotated[
        str,
        typer.Argument(
            help="Corpus: .jsonl(.gz), .json, .csv, .tsv, .txt (one text a line), .conll/.iob/.bio or .spacy; "
            "a path or a URL (s3://bucket/corpus.jsonl.gz).",
        ),
    ],
    dest: Annotated[str, typer.Argument(help="Where to import, e.g. labelstudio://127.0.0.1:8080/projects/3.")],
    task: Annotated[
        TaskKind | None, typer.Option("--task", "-t", help="Create/check the project for this task.")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels for the project.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Pre-annotate with this installed spaCy pipeline (needs --task).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Documents per model batch when pre-annotating.")] = 256,
    annotators_per_doc: Annotated[
        int | None,
        typer.Option(
            min=1, help="Have each document labelled by N annotators, with the tool's own overlap setting."
        ),
    ] = None,
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
            adapter.require("import_documents", to="import documents")
            if schema is not None and adapter.capabilities.create_project:
                adapter.ensure_project(schema)
            # before any document is sent: a tool without the setting refuses here, with nothing half done
            overlap = adapter.set_annotators_per_doc(annotators_per_doc) if annotators_per_doc else None
            documents = list(read_documents(file, on_skip=lambda where, why: skipped.append((where, why))))
            predictions = None
            if model:
                import spacy

                from .export import missing_model_message
                from .predict import predict_documents

                try:
                    nlp = spacy.load(model)
                except OSError as exc:
                    raise UsageError(missing_model_message(model, exc)) from None
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
    if overlap:
        out_console.print(escape(overlap))
    if left_out:
        labels_left = ", ".join(f"{label} ({n})" for label, n in left_out.most_common())
        out_console.print(f"Predicted labels not in --labels, left out: {escape(labels_left)}")
    for where, why in skipped[:10]:
        out_console.print(f"  unreadable {escape(where)}: {escape(why)}")
    for doc_id, why in result.failed[:10]:
        out_console.print(f"  failed {escape(doc_id)}: {escape(why)}")
    if skipped or result.failed:
        raise typer.Exit(1)


@app.command("pull")
def pull_cmd(
    source: Annotated[str, typer.Argument(help="Where the annotations are.")],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Records JSONL to write (annobridge's lossless format): a path or s3://... URL."
        ),
    ],
    answer: Annotated[list[str] | None, typer.Option(help="Only annotations with this answer (repeatable).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only what changed after this cursor (printed by the previous pull).")
    ] = None,
    cursor_file: Annotated[
        Path | None,
        typer.Option(
            help="Keep the whole cursor in this file: read as --since when it exists, rewritten after the pull. "
            "Exact for Label Studio and Argilla (deletions named), where a printed --since is only a timestamp."
        ),
    ] = None,
) -> None:
    """Pull every record with its annotations (per annotator) into annobridge JSONL.

    Example: annobridge pull prodigy:prodigy.db?dataset=news -o news.jsonl --cursor-file news.cursor
    """
    from .atomic import atomic_open, atomic_write_text
    from .plugins import open_adapter

    try:
        if since is None and cursor_file is not None and cursor_file.exists():
            since = cursor_file.read_text(encoding="utf-8").strip() or None
        with open_adapter(source) as adapter, _progress("Pulling", adapter.count()) as advance:
            count = annotations = 0
            with atomic_open(output, "w") as fh:  # an interrupted pull leaves the previous file
                for record in adapter.pull(answers=_answers(answer), since=since):
                    fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                    count += 1
                    annotations += len(record.annotations)
                    advance(1)
            skipped, cursor = list(adapter.skipped), adapter.cursor
        if cursor_file is not None and cursor is not None:
            # only after the records are written: a failed pull leaves the old cursor, so nothing is missed
            whole = json.dumps(cursor, ensure_ascii=False) if isinstance(cursor, dict) else _cursor_text(cursor)
            atomic_write_text(cursor_file, whole + "\n")
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(UsageError(f"cursor file: {exc}")) from None
    out_console.print(f"{count} records ({annotations} annotations) written to {escape(str(output))}")
    for where, why in skipped[:10]:
        out_console.print(f"  skipped {escape(where)}: {escape(why)}")
    if cursor is not None:
        if cursor_file is not None:
            tail: list[str | Path] = ["--cursor-file", cursor_file]
        else:
            tail = ["--since", _cursor_text(cursor)]
        _say_command(
            "Next incremental pull: ",
            _command_line("annobridge", "pull", redact(source), "-o", output, *tail),
        )
    if skipped:
        out_console.print(f"[red]{len(skipped)} inputs could not be read[/]")
        raise typer.Exit(1)


@app.command("review")
def review_cmd(
    source: Annotated[str, typer.Argument(help="Where the annotators' work is.")],
    dest: Annotated[str, typer.Argument(help="Where the adjudicator works, e.g. labelstudio://127.0.0.1:8080/projects/new?title=Review.")],
    task: TaskOpt,
    only: Annotated[
        str, typer.Option(help="conflicts: documents whose annotators disagree; all: every annotated one.")
    ] = "conflicts",
    sample: Annotated[
        int | None, typer.Option(help="Send about N of them, the same N on every run (seeded by --seed).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels for DEST's project.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Send documents to an adjudicator with every annotator's version, then export their decisions.

    Label Studio shows one prediction per annotator, Prodigy's review recipe the versions side by side.
    Run it again to send only what is new. When the reviewer is done, export with --adjudicated.

    Example: annobridge review prodigy:prodigy.db?dataset=news prodigy:prodigy.db?dataset=news_review --task ner
    """
    from .plugins import open_adapter
    from .review import Only, review

    try:
        if only not in ("conflicts", "all"):
            raise UsageError(f"--only must be conflicts or all, not {only!r}")
        which: Only = "all" if only == "all" else "conflicts"
        label_list = _label_list(labels)
        with open_adapter(source) as src, open_adapter(dest) as out:
            report = review(src, out, task=task, labels=label_list, only=which, sample=sample, seed=seed)
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    if as_json:
        out_console.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        sent = report.sent
        out_console.print(
            f"{report.records} documents read, {report.conflicts} with disagreeing annotators: "
            f"[green]{sent.created} sent for review[/], {sent.existing} already there, {len(sent.failed)} failed"
        )
        for reason, n in sorted(report.not_sent.items()):
            out_console.print(f"  not sent, {escape(reason)}: {n}")
        for doc_id, why in sent.failed[:10]:
            out_console.print(f"  failed {escape(doc_id)}: {escape(why)}")
        for where, why in report.unreadable[:10]:
            out_console.print(f"  unreadable {escape(where)}: {escape(why)}")
        if report.reviewer_command:
            _say_command("The reviewer starts with: ", redact(report.reviewer_command))
        if report.decisions_at:
            _say_command(
                "When the review is done: ",
                _command_line(
                    "annobridge", "export", redact(source), "--adjudicated", redact(report.decisions_at), "--merge",
                    "ground_truth", "--task", task.value, "--out", "corpus",
                ),
            )
    if report.sent.failed or report.unreadable:
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


def _capability_summary(caps: Any) -> str:
    """``all``, ``all but pull_since``, or the list: short enough for an 80-column table."""
    missing = caps.missing()
    if not missing:
        return "all"
    if len(missing) <= 2:
        return "all but " + ", ".join(missing)
    return ", ".join(caps.enabled()) or "none"


@app.command("adapters")
def adapters_cmd(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="Source URLs to connect to: shows the server's own version (needs its credentials)."),
    ] = None,
) -> None:
    """List installed adapters, their versions and what they can do.

    With SOURCE URLs, also connect to each and show the server's version:
    annobridge adapters labelstudio://127.0.0.1:8080/projects/1
    """
    from .errors import MissingDependencyError
    from .plugins import get_registry, open_adapter

    registry = get_registry()
    table = Table(show_edge=False)
    for column in ("scheme", "package", "status", "capabilities", "example"):
        table.add_column(column)
    for info in registry.adapters().values():
        try:
            info.adapter.check_dependencies()
            status = "[green]ready[/]"
        except MissingDependencyError as exc:
            status = f"[yellow]{escape(exc.install_hint)}[/]"
        package = f"{info.distribution or info.plugin} {info.version or ''}".strip()
        table.add_row(
            escape(info.scheme),
            escape(package),
            status,
            escape(_capability_summary(info.adapter.capabilities)),
            escape(info.adapter.url_example),
        )
    out_console.print(table)
    for error in registry.errors:
        out_console.print(f"[red]plugin failed to load[/] {escape(str(error.entry_point))}: {escape(str(error.error))}")
    worst = 0
    for source in sources or []:
        try:
            with open_adapter(source) as adapter:
                version = adapter.server_version()
        except AnnobridgeError as exc:
            console.print(f"[bold red]error:[/] {escape(redact(source))}: {escape(str(exc))}", soft_wrap=True)
            worst = max(worst, exc.exit_code)
            continue
        said = version or "the server does not report a version"
        out_console.print(f"{escape(redact(source))}: {escape(said)}", soft_wrap=True)
    if worst:
        raise typer.Exit(worst)


def _mount_subcommands() -> None:
    from .agree_cli import agree_cmd
    from .copy_cli import copy_cmd

    app.command("agree")(agree_cmd)
    app.command("copy")(copy_cmd)
    try:
        from .al_cli import app as al_app
    except ImportError:  # the active-learning commands need no extra to be listed, only to run
        return
    app.add_typer(al_app, name="al", help="Active learning: score a pool, label the least certain, retrain.")


_mount_subcommands()


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM while a command runs.

    Raised from the signal handler so that every ``finally`` runs (staging folders and temp files
    are removed; outputs keep their previous content). A BaseException of our own rather than
    KeyboardInterrupt, so that click does not turn it into "Aborted!" with exit 1, the data-error code.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def main() -> None:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    _attach_retry_lines()
    try:
        app()
    except AnnobridgeError as exc:  # raised outside a command's own handler
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        terminated = exc.signum == signal.SIGTERM
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C now ends at once
        console.print(
            f"[bold red]{'terminated' if terminated else 'interrupted'}:[/] stopped before finishing; "
            "nothing was half-written (outputs keep their previous content)"
        )
        sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
