"""``annobridge agree``: tables, --json, --plot, --no-text, and the messages for what cannot be compared."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annobridge.adapters.jsonl import write_records
from annobridge.cli import app
from annobridge.model import Annotation, Document, Record, Span

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "prodigy" / "restaurant_reviews_review_every15.jsonl"
SOURCE = f"prodigy:{DATA}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _texts() -> tuple[list[str], list[str]]:
    """Every document text and every span text of the test file."""
    docs, spans = [], []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        task = json.loads(line)
        docs.append(task["text"])
        for version in task["versions"]:
            spans.extend(task["text"][s["start"] : s["end"]] for s in version["spans"])
    return docs, spans


def test_table_shows_matrix_labels_and_annotators() -> None:
    result = runner.invoke(app, ["agree", SOURCE, "--task", "ner", "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Annotator x annotator: span F1 (exact)" in out
    assert "ner_model" in out and "original_annotations" in out
    assert "Per label" in out and "Cuisine" in out and "Per annotator" in out
    assert "102 records" in out and "ground truth" in out  # the reviewer's decisions, left out and said so


def test_json_matches_the_library_and_is_pure_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["agree", SOURCE, "-t", "ner", "--json", "--bootstrap", "100", "--seed", "3"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    import annobridge

    with annobridge.open_adapter(SOURCE) as source:
        report = annobridge.agreement(source.pull(), "ner", bootstrap=100, seed=3)
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["metric"] == "f1_exact" and data["annotators"] == ["ner_model", "original_annotations"]
    assert data["overall"]["f1_exact"]["ci"] is not None and data["bootstrap"] == 100


def test_plot_writes_a_png(tmp_path: Path) -> None:
    target = tmp_path / "out" / "heat.png"
    args = ["agree", SOURCE, "-t", "ner", "--bootstrap", "0", "--ground-truth", "--plot", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    blob = target.read_bytes()
    assert blob.startswith(PNG_MAGIC) and len(blob) > 2000
    import matplotlib.pyplot as plt

    image = plt.imread(target)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert not [p for p in target.parent.iterdir() if p.name != "heat.png"]  # no temporary left behind


def test_plot_without_matplotlib_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(app, ["agree", SOURCE, "-t", "ner", "--bootstrap", "0", "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 2
    assert "pip install 'annobridge[plot]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "h.png").exists()


def test_no_text_keeps_every_text_out_of_every_output() -> None:
    docs, spans = _texts()
    long_spans = sorted({s for s in spans if len(s) >= 6})
    with_text = runner.invoke(app, ["agree", SOURCE, "-t", "ner", "--bootstrap", "0", "--examples", "40"])
    assert with_text.exit_code == 0
    # the check below can fail: without --no-text the examples do show texts
    assert any(d in with_text.output for d in docs) and any(s in with_text.output for s in long_spans)
    for extra in ([], ["--json"]):
        result = runner.invoke(
            app, ["agree", SOURCE, "-t", "ner", "--bootstrap", "0", "--examples", "40", "--no-text", *extra]
        )
        assert result.exit_code == 0, result.output
        output = result.output  # stdout and stderr
        assert "sha1:" in output  # the examples are there, as ids and content hashes
        leaked = [d for d in docs if d in output] + [s for s in long_spans if s in output]
        assert leaked == []


def test_one_annotator_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "solo.jsonl"
    write_records(
        path, [Record(Document(f"d{i}", "Maria"), [Annotation("solo", spans=[Span(0, 5, "PER")])]) for i in range(4)]
    )
    result = runner.invoke(app, ["agree", f"jsonl:{path}", "-t", "ner"])
    assert result.exit_code == 1
    assert "only one annotator (solo) in 4 records" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_source_path_with_square_brackets_survives_rich(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]data [v2]"
    folder.mkdir()
    target = folder / "[red]review.jsonl"
    shutil.copy(DATA, target)
    result = runner.invoke(app, ["agree", f"prodigy:{target}", "-t", "ner", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert f"prodigy:{target}" in result.stdout.replace("\n", "")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    wrong_task = runner.invoke(app, ["agree", SOURCE, "-t", "textcat", "--bootstrap", "0"])
    assert wrong_task.exit_code == 2 and "none of the 102 records has a category" in wrong_task.output
    missing = runner.invoke(app, ["agree", f"jsonl:{tmp_path}/none.jsonl", "-t", "ner"])
    assert missing.exit_code == 2
    negative = runner.invoke(app, ["agree", SOURCE, "-t", "ner", "--bootstrap", "-5"])
    assert negative.exit_code == 2 and "--bootstrap" in negative.output
    assert runner.invoke(app, ["agree", SOURCE]).exit_code == 2  # no --task


def test_help_is_short_and_names_the_figures() -> None:
    result = runner.invoke(app, ["agree", "--help"])
    assert result.exit_code == 0
    for word in ("span F1", "Cohen's kappa", "Krippendorff", "--no-text", "--plot", "docs/agreement.md"):
        assert word in result.output
    assert "agree" in runner.invoke(app, ["--help"]).output


def test_textcat_table_with_three_annotators_and_markup_in_names(tmp_path: Path) -> None:
    path = tmp_path / "cats.jsonl"
    records = []
    for i in range(12):
        label = "pos" if i % 2 else "neg"
        anns = [
            Annotation("[bold]ann[/bold]", categories={label: 1.0}),
            Annotation("bob", categories={label: 1.0}),
            Annotation("cy", categories={("neg" if i % 3 else label): 1.0}),
        ]
        records.append(Record(Document(f"d{i}", f"review {i}"), anns))
    write_records(path, records)
    result = runner.invoke(app, ["agree", f"jsonl:{path}", "-t", "textcat", "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "Annotator x annotator: Cohen's kappa" in result.stdout
    assert "[bold]ann[/bold]" in result.stdout  # printed as it is, not read as markup
    assert "Fleiss' kappa" in result.stdout and "Krippendorff's alpha" in result.stdout
    data = json.loads(runner.invoke(app, ["agree", f"jsonl:{path}", "-t", "textcat", "--json"]).stdout)
    assert data["matrix"][0][1] == pytest.approx(1.0)  # [bold]ann[/bold] and bob always agree
