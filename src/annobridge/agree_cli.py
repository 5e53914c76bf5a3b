"""``annobridge agree``: inter-annotator agreement from the shell (a thin layer over :func:`annobridge.agreement`).

Registered in the main CLI as ``app.command("agree")(agree_cmd)``. Everything printed through rich is
escaped; the source is printed through :func:`annobridge.adapter.redact`. With ``--no-text`` no document
or span text reaches any output (ids and content hashes only).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .adapter import redact
from .agreement import FIGURE_NAMES, AgreementReport, Estimate, agreement
from .atomic import atomic_write_bytes
from .errors import AnnobridgeError, MissingDependencyError, UsageError
from .model import TaskKind

__all__ = ["agree_cmd", "print_report", "write_heatmap"]

console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)

#: what to install for --plot
PLOT_REQUIREMENT = "annobridge[plot]"


def _fail(exc: AnnobridgeError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(estimate: Estimate | None) -> str:
    if estimate is None or estimate.value is None:
        return "-"
    if estimate.ci is None:
        return _fmt(estimate.value)
    low, high = estimate.ci
    return f"{estimate.value:.3f} [dim]({low:.3f}–{high:.3f})[/]"


def _figure_order(report: AgreementReport, figures: list[dict[str, Estimate]]) -> list[str]:
    seen = {name for f in figures for name in f}
    main = [report.metric] if report.metric in seen else []
    return main + [name for name in FIGURE_NAMES if name in seen and name != report.metric]


def print_report(report: AgreementReport, source: str, console: Console = out_console) -> None:
    """The report as rich tables: overall, per label, annotator x annotator, per annotator, examples."""
    c = console
    main = FIGURE_NAMES.get(report.metric, report.metric)
    c.print(
        f"{escape(redact(source))}: [bold]{report.records}[/] records, [bold]{report.documents_compared}[/] "
        f"documents with two or more annotators; {len(report.annotators)} annotators; task {report.task}"
    )
    ci = f"{report.confidence:.0%} bootstrap interval over documents, {report.bootstrap} resamples, seed {report.seed}"
    c.print(f"[dim]value ({ci if report.bootstrap else 'no intervals: --bootstrap 0'})[/]")

    overall = Table(title="Overall", title_justify="left", show_edge=False)
    overall.add_column("figure", overflow="fold")
    overall.add_column("value", justify="right")
    overall.add_column("n", justify="right")
    for name in _figure_order(report, [report.overall]):
        estimate = report.overall[name]
        overall.add_row(escape(FIGURE_NAMES.get(name, name)), _cell(estimate), str(estimate.n))
    c.print(overall)

    if report.per_label:
        order = _figure_order(report, list(report.per_label.values()))
        per_label = Table(title="Per label", title_justify="left", show_edge=False)
        per_label.add_column("label", overflow="fold")
        for name in order:
            per_label.add_column(escape(FIGURE_NAMES.get(name, name)), justify="right")
        for label, figures in report.per_label.items():
            per_label.add_row(escape(label), *(_cell(figures.get(name)) for name in order))
        c.print(per_label)

    matrix = Table(title=f"Annotator x annotator: {escape(main)}", title_justify="left", show_edge=False)
    matrix.add_column("", overflow="fold")
    for name in report.annotators:
        matrix.add_column(escape(name), justify="right", overflow="fold")
    for name, row in zip(report.annotators, report.matrix(), strict=True):
        matrix.add_row(escape(name), *(_fmt(v) for v in row))
    c.print(matrix)

    people = Table(title="Per annotator", title_justify="left", show_edge=False)
    for column in ("annotator", "documents", "answers", "answers/hour", f"{main} vs consensus"):
        people.add_column(escape(column), justify="left" if column == "annotator" else "right", overflow="fold")
    for person in report.per_annotator:
        rate = "-" if person.answers_per_hour is None else f"{person.answers_per_hour:.0f}"
        people.add_row(
            escape(person.name), str(person.documents), str(person.answers), rate,
            _cell(person.consensus.get(report.metric)),
        )
    c.print(people)

    if report.excluded:
        left_out = ", ".join(f"{n} {reason}" for reason, n in report.excluded.most_common())
        c.print(f"Not votes: {escape(left_out)}")
    if report.superseded:
        c.print(f"{report.superseded} earlier answers superseded by the same annotator's later one (one vote each)")
    for warning in report.warnings:
        c.print(f"[yellow]warning:[/] {escape(warning)}")
    if report.examples:
        c.print("[bold]Disagreements[/] (first documents where the annotators differ):")
    for example in report.examples:
        head = f"  {example['id']} {example['text_hash']}"
        if "text" in example:
            head += f": {example['text']!r}"
        c.print(escape(head), soft_wrap=True)
        for voter, vote in example["votes"].items():
            c.print(f"    {escape(voter)}: {escape(_vote_text(vote))}", soft_wrap=True)


def _vote_text(vote: Any) -> str:
    if isinstance(vote, list) and all(isinstance(v, dict) for v in vote):
        parts = []
        for span in vote:
            where = f"{span['label']} {span['start']}-{span['end']}"
            parts.append(f"{where} {span['text']!r}" if "text" in span else where)
        return "; ".join(parts) or "(no spans)"
    if isinstance(vote, list):
        return ", ".join(vote) or "(no label)"
    if isinstance(vote, dict):
        return "; ".join(f"{q}: {a}" for q, a in vote.items())
    return str(vote)


def write_heatmap(report: AgreementReport, path: Path, metric: str | None = None) -> Path:
    """Write the annotator x annotator matrix of ``metric`` (default: the main figure) as a PNG, atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        err = MissingDependencyError("plot", "matplotlib", PLOT_REQUIREMENT)
        err.args = (f"--plot needs matplotlib: {err.install_hint}",)
        raise err from None
    import numpy as np

    name = metric or report.metric
    values = np.array([[np.nan if v is None else v for v in row] for row in report.matrix(name)], dtype=float)
    size = len(report.annotators)
    side = min(12.0, 2.5 + 0.9 * size)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    try:
        cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=min(0.0, np.nanmin(values)), vmax=1.0)
        ax.set_xticks(range(size), labels=report.annotators, rotation=35, ha="right")
        ax.set_yticks(range(size), labels=report.annotators)
        for i in range(size):
            for j in range(size):
                text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}"
                dark = not np.isnan(values[i, j]) and values[i, j] < 0.6
                ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(f"{FIGURE_NAMES.get(name, name)}, {report.task}: {report.documents_compared} documents")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _labels(value: str | None) -> list[str] | None:
    if not value:
        return None
    labels = [v.strip() for v in value.split(",") if v.strip()]
    return labels or None


def agree_cmd(
    source: Annotated[str, typer.Argument(help="Where the annotations are, e.g. prodigy:reviewed.jsonl.")],
    task: Annotated[
        TaskKind,
        typer.Option(
            "--task", "-t", case_sensitive=False,
            help="What to compare: ner or spans (span F1, token alpha), textcat or textcat_multilabel (kappa, alpha).",
        ),
    ],
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated labels to compare; others are left out. Default: all found.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout instead of tables.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also write the annotator x annotator heatmap to this PNG (needs matplotlib).")
    ] = None,
    no_text: Annotated[
        bool, typer.Option("--no-text", help="Keep document and span texts out of every output: ids and hashes only.")
    ] = False,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples of the documents for the intervals; 0: no intervals.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap: the same seed gives the same intervals.")] = 0,
    ground_truth: Annotated[
        bool,
        typer.Option(
            "--ground-truth",
            help="Count reviewers' ground-truth decisions as an annotator of their own (left out by default).",
        ),
    ] = False,
    examples: Annotated[int, typer.Option(help="How many disagreeing documents to show.")] = 5,
) -> None:
    """How far do the annotators agree? Figures per label and overall, per pair and per annotator.

    One vote per annotator per document: their latest answer (ignored and skipped answers are no votes).

    Span tasks: span F1, exact and overlap, and Krippendorff's alpha over token tags.
    Category tasks: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha.
    Intervals: a bootstrap over documents. What each figure means, and when to trust it: docs/agreement.md.

    Example: annobridge agree prodigy:reviewed.jsonl --task ner --plot agreement.png
    """
    from .plugins import open_adapter

    try:
        if examples < 0:
            raise UsageError(f"--examples must be 0 or more, not {examples}")
        with open_adapter(source) as adapter:
            report = agreement(
                adapter.pull(),
                task,
                _labels(labels),
                include_ground_truth=ground_truth,
                bootstrap=bootstrap,
                seed=seed,
                include_text=not no_text,
                examples=examples,
            )
        if plot is not None:
            write_heatmap(report, plot)
    except AnnobridgeError as exc:
        raise _fail(exc) from None
    except FileNotFoundError as exc:
        raise _fail(UsageError(str(exc))) from None
    if as_json:
        out_console.file.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        print_report(report, source)
    if plot is not None:
        console.print(f"Heatmap: {escape(str(plot))}")
