"""Every user-facing string printed through rich keeps its square brackets (issue #9, item 7).

rich reads ``[name]`` as markup and drops it: ``pip install 'annobridge[prodigy]'`` used to print
as ``pip install 'annobridge'``. Each message goes through the CLI's own printing code into a
recording console, and the brackets must come out as they went in.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
import typer
from rich.console import Console

from annobridge import cli
from annobridge.errors import (
    AdapterError,
    DataError,
    MissingDependencyError,
    ServerUnreachableError,
    UsageError,
)
from annobridge.export import ExportReport


@pytest.fixture
def screens(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, io.StringIO]:
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=err, width=60, soft_wrap=True, color_system=None))
    monkeypatch.setattr(cli, "out_console", Console(file=out, width=60, color_system=None))
    return err, out


MESSAGES = [
    (MissingDependencyError("prodigy", "psycopg", "annobridge-prodigy[postgres]"),
     "pip install 'annobridge-prodigy[postgres]'"),
    (UsageError("no url in the [labelstudio] section of config.toml"), "[labelstudio]"),
    (DataError("out[final]/report.json: invalid JSON"), "out[final]/report.json"),
    (AdapterError("server said: [Errno 111] [bold]refused[/bold]"), "[Errno 111] [bold]refused[/bold]"),
    (ServerUnreachableError("cannot reach [::1]:8080 (connection refused): is the server running?"), "[::1]:8080"),
]


@pytest.mark.parametrize(("error", "expected"), MESSAGES)
def test_errors_keep_their_brackets(screens: tuple[io.StringIO, io.StringIO], error: Exception, expected: str) -> None:
    err, _ = screens
    exit_ = cli._fail(error)  # type: ignore[arg-type]
    assert isinstance(exit_, typer.Exit) and exit_.exit_code == error.exit_code  # type: ignore[attr-defined]
    assert expected in err.getvalue()
    assert err.getvalue().count("\n") == 1  # one line, never hard-wrapped


def test_report_tables_keep_their_brackets(screens: tuple[io.StringIO, io.StringIO]) -> None:
    _, out = screens
    report = ExportReport(task="ner", out_dir="out[final]", format="spacy")
    report.records_read = report.records_exported = 3
    report.docs_per_split.update({"train": 2, "dev": 1})
    report.labels = ["[ORG]"]
    report.labels_per_split = {"train": Counter({"[ORG]": 2})}
    report.records_skipped = Counter()
    report.spans_dropped = Counter({"label '[X]' not in the label set": 1})
    report.span_examples = {"dropped: label '[X]' not in the label set": ["doc[7]"]}
    report.warnings = ["the [test] split is empty"]
    report.files = {"train": ["train/train-0000.spacy"], "dev": ["dev/dev-0000.spacy"]}
    cli._print_report(report)
    text = out.getvalue()
    for expected in ("[ORG]", "label '[X]' not in the label set", "doc[7]", "the [test] split is empty"):
        assert expected in text, text


def test_next_step_is_printed_whole_and_quoted(
    screens: tuple[io.StringIO, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    out = "runs/out[final] v2"
    report = ExportReport(task="ner", out_dir=out, format="spacy", config=f"{out}/config.cfg")
    report.files = {"train": ["train/train-0000.spacy"], "dev": ["dev/dev-0000.spacy"]}
    cli._print_report(report)
    printed = capsys.readouterr().out.splitlines()
    (line,) = [x for x in printed if x.startswith("Next: ")]
    import shlex

    words = shlex.split(line.removeprefix("Next: "))
    assert words[1:4] == ["-m", "spacy", "train"]
    assert words[4] == "runs/out[final] v2/config.cfg"
    assert words[words.index("--paths.train") + 1] == str(Path("runs/out[final] v2/train"))
    assert words[words.index("--output") + 1] == str(Path("runs/out[final] v2-model"))
