import json
from pathlib import Path

from core_data import synthetic_records
from typer.testing import CliRunner

from annobridge.adapters.jsonl import write_records
from annobridge.cli import app

runner = CliRunner()


def test_export_clean_data_exits_0_and_prints_next_step(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(80))
    result = runner.invoke(app, ["export", f"jsonl:{src}", "--task", "ner", "--out", str(tmp_path / "o"), "--config"])
    assert result.exit_code == 0, result.output
    assert "80 records read: 80 exported" in result.output
    assert "spacy train" in result.output and (tmp_path / "o" / "config.cfg").exists()


def test_export_with_data_errors_exits_1_and_says_why(records_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", f"jsonl:{records_file}", "-t", "ner", "-o", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["data_errors"] == 3 and report["records_read"] == 304


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["export", "jsonl:x.jsonl", "-o", str(tmp_path)]).exit_code == 2  # no --task
    bad_scheme = runner.invoke(app, ["export", "nosuchtool://h/p", "-t", "ner", "-o", str(tmp_path)])
    assert bad_scheme.exit_code == 2 and "No adapter for 'nosuchtool:'" in bad_scheme.output
    bad_split = runner.invoke(
        app, ["export", f"jsonl:{tmp_path}/none.jsonl", "-t", "ner", "-o", str(tmp_path), "--split", "a,b"]
    )
    assert bad_split.exit_code == 2
    missing = runner.invoke(app, ["export", f"jsonl:{tmp_path}/none.jsonl", "-t", "ner", "-o", str(tmp_path)])
    assert missing.exit_code == 2 and "No such file" in missing.output


def test_import_pull_stats_round_trip(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.csv"
    corpus.write_text('id,text,source\n1,"Maria moved to Oslo",web\n2,"Acme hires",news\n3,,empty\n', encoding="utf-8")
    dest = f"jsonl:{tmp_path}/store.jsonl"
    first = runner.invoke(app, ["import", str(corpus), dest])
    assert first.exit_code == 1 and "2 imported" in first.output and "1 unreadable" in first.output
    again = runner.invoke(app, ["import", str(corpus), dest])
    assert "0 imported, 2 already there" in again.output
    pulled = runner.invoke(app, ["pull", dest, "-o", str(tmp_path / "out.jsonl")])
    assert pulled.exit_code == 0 and "2 records" in pulled.output
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == ["1", "2"] and lines[0]["meta"] == {"source": "web"}
    stats = runner.invoke(app, ["stats", dest, "--json"])
    assert json.loads(stats.output)["records"] == 2


def test_adapters_lists_builtins() -> None:
    result = runner.invoke(app, ["adapters"])
    assert result.exit_code == 0 and "jsonl" in result.output


def test_help_teaches() -> None:
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--task", "--split", "--merge", "--format", "--align", "--config"):
        assert option in result.output


def test_since_that_is_no_date_or_cursor_is_a_usage_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A mistyped --since is exit 2 with what is accepted, not a traceback with the data-error code."""
    from typer.testing import CliRunner

    from annobridge.adapters.jsonl import write_records
    from annobridge.cli import app
    from annobridge.model import Document, Record

    src = tmp_path / "r.jsonl"
    write_records(src, [Record(Document("a", "x"))])
    for since in ("garbage", "{not json", '{"watermark": "yesterday"}'):
        out = CliRunner().invoke(app, ["pull", f"jsonl:{src}", "-o", str(tmp_path / "o.jsonl"), "--since", since])
        assert out.exit_code == 2, (since, out.output)
        assert "--since" in out.output and "Traceback" not in out.output
    ok = CliRunner().invoke(app, ["pull", f"jsonl:{src}", "-o", str(tmp_path / "o.jsonl"), "--since",
                                  '{"watermark": "2026-01-01T00:00:00Z", "owner": "x"}'])
    assert ok.exit_code == 0, ok.output


def test_pull_keeps_its_cursor_in_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from typer.testing import CliRunner

    from annobridge.adapters.jsonl import write_records
    from annobridge.cli import app
    from annobridge.model import Annotation, Document, Record

    def ann(name: str, day: int) -> Annotation:
        return Annotation(name, updated_at=datetime(2026, 1, day, tzinfo=timezone.utc))

    src, out, cursor = tmp_path / "r.jsonl", tmp_path / "o.jsonl", tmp_path / "state" / "pull.cursor"
    cursor.parent.mkdir()
    write_records(src, [Record(Document("a", "x"), [ann("alice", 1)]), Record(Document("b", "y"), [ann("bob", 2)])])
    args = ["pull", f"jsonl:{src}", "-o", str(out), "--cursor-file", str(cursor)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0 and "2 records" in first.output
    assert cursor.read_text(encoding="utf-8").startswith("2026-01-02")
    assert f"--cursor-file {cursor}" in first.output
    write_records(src, [Record(Document("a", "x"), [ann("alice", 1)]), Record(Document("b", "y"), [ann("bob", 3)])])
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "1 records" in second.output, second.output
    assert cursor.read_text(encoding="utf-8").startswith("2026-01-03")
