"""``annobridge copy SRC DEST``: a thin command over :func:`annobridge.copy.copy_project`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .errors import AnnobridgeError
from .model import TaskKind


def copy_cmd(
    source: Annotated[str, typer.Argument(help="The project to copy, e.g. prodigy:prodigy.db?dataset=news.")],
    dest: Annotated[str, typer.Argument(help="Where to, e.g. labelstudio://127.0.0.1:8080/projects/new?title=News.")],
    task: Annotated[
        TaskKind, typer.Option("--task", "-t", help="ner, spans, textcat or textcat_multilabel.", case_sensitive=False)
    ],
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels for DEST's project.")] = None,
    annotators: Annotated[
        Path | None,
        typer.Option(help="CSV of 'source name,destination user' lines; names not in it are kept as they are."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Copy only what changed after this cursor (printed by the previous copy).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy a project to another tool: documents, predictions, and each annotator's annotations as them.

    Idempotent: what DEST already holds is counted, not written again. What DEST cannot hold is
    refused with the reason (exit code 1).

    Example: annobridge copy prodigy:prodigy.db?dataset=news labelstudio://127.0.0.1:8080/projects/7 --task ner
    """
    from .adapter import redact
    from .cli import _command_line, _cursor_text, _fail, _label_list, _say_command, out_console
    from .copy import copy_project, read_annotator_map
    from .plugins import open_adapter

    try:
        mapping = read_annotator_map(annotators) if annotators else None
        label_list = _label_list(labels)
        with open_adapter(source) as src, open_adapter(dest) as out:
            report = copy_project(src, out, task=task, labels=label_list, annotators=mapping, since=since)
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    except FileNotFoundError as exc:
        from .errors import UsageError

        raise _fail(UsageError(str(exc))) from None
    if as_json:
        out_console.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        table = Table(title=f"{report.records} records read", title_justify="left", show_edge=False)
        for column in ("", "copied", "already there", "refused"):
            table.add_column(column, justify="left" if not column else "right")
        for name, part in (("documents", report.documents), ("predictions", report.predictions),
                           ("annotations", report.annotations)):
            table.add_row(name, str(part.created), str(part.existing), str(len(part.failed)))
        out_console.print(table)
        if report.renamed:
            out_console.print(f"{report.renamed} annotations renamed by {escape(str(annotators))}")
        reasons = report.to_dict()
        for name in ("documents", "predictions", "annotations"):
            for why, n in reasons[name]["refused_by_reason"].items():
                out_console.print(f"  {name} refused, {escape(why)}: {n}")
        for where, why in report.unreadable[:10]:
            out_console.print(f"  unreadable {escape(where)}: {escape(why)}")
    if report.cursor is not None:
        value = _cursor_text(report.cursor)
        words: list[str | Path] = ["annobridge", "copy", redact(source), redact(dest), "--task", task.value]
        if annotators:
            words += ["--annotators", annotators]
        _say_command("Next incremental copy: ", _command_line(*words, "--since", value))
    if report.refused or report.unreadable:
        raise typer.Exit(1)
