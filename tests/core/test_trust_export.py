"""Regression tests for issue #9's export defects: atomic output, honest exits, split specs, messages.

Where the defect was in the CLI, the test runs the real CLI process (``python -m annobridge``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from core_data import synthetic_records
from spacy.tokens import DocBin

from annobridge.adapters.jsonl import write_records
from annobridge.errors import UsageError
from annobridge.export import NothingExportedError, export
from annobridge.model import Annotation, Document, Record
from annobridge.split import parse_split

REPO = Path(__file__).resolve().parents[2]
FASHION = REPO / "examples" / "data" / "fashion_brands_training.jsonl"


def cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "annobridge", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


def folder_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def check_consistent(out: Path) -> dict[str, object]:
    """The folder holds exactly what its report says: no stale shard, no missing one, manifest matching."""
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    listed = {f for files in report["files"].values() for f in files}
    extra = {"report.json", "manifest.jsonl"} | ({"config.cfg"} if report.get("config") else set())
    assert folder_files(out) == listed | extra
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(manifest) == report["records_exported"]
    assert {m["file"] for m in manifest} <= listed
    if report["format"] == "spacy":
        docs = sum(len(DocBin().from_disk(out / f)) for f in listed)
        assert docs == report["records_exported"]
    assert report["records_read"] == report["records_exported"] + sum(report["records_skipped"].values())
    return report


def test_re_export_leaves_no_stale_shards(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(900))
    out = tmp_path / "corpus"
    first = export(f"jsonl:{src}", out, task="ner", split="0.5,0.3,0.2", shard_size=50)
    assert len(first.files["train"]) > 5
    check_consistent(out)
    # fewer docs, bigger shards, no test split: every file of the first export must be gone
    write_records(src, synthetic_records(300))
    second = export(f"jsonl:{src}", out, task="ner", split="0.8,0.2", shard_size=1000)
    report = check_consistent(out)
    assert report["docs_per_split"] == dict(second.docs_per_split)
    assert not (out / "test").exists()
    assert sum(len(DocBin().from_disk(p)) for p in (out / "train").iterdir()) == second.docs_per_split["train"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".corpus")] == []  # no staging left


def test_non_export_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(40))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own file", encoding="utf-8")
    refused = cli("export", f"jsonl:{src}", "--task", "ner", "--out", out)
    assert refused.returncode == 2, refused.stderr
    assert "is not empty and holds no annobridge export" in refused.stderr and "--force" in refused.stderr
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my own file"
    forced = cli("export", f"jsonl:{src}", "--task", "ner", "--out", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (out / "notes.txt").exists()
    check_consistent(out)


def test_export_into_the_current_folder_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(10))
    result = cli("export", f"jsonl:{src}", "--task", "ner", "--out", ".", "--force", cwd=tmp_path)
    assert result.returncode == 2 and "current folder" in result.stderr
    assert src.exists()


def test_interrupted_export_leaves_the_previous_one(tmp_path: Path) -> None:
    """SIGINT / SIGTERM at random points of a real CLI export: the folder always matches its report."""
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    write_records(small, synthetic_records(500, seed=1))
    write_records(big, synthetic_records(40_000, seed=2))
    out = tmp_path / "corpus"
    assert cli("export", f"jsonl:{small}", "--task", "ner", "--out", out).returncode == 0
    before = check_consistent(out)
    rng = random.Random(9)
    interrupted = 0
    for attempt, sig in enumerate([signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "annobridge", "export", f"jsonl:{big}", "--task", "ner", "--out", str(out),
             "--shard-size", "2000", "--split", "0.6,0.4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # a random point once the export is under way (its staging folder exists), or just before
        # it finishes; a signal while Python is still importing has nothing to protect
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".corpus.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 3.0) if attempt else 0.5)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        report = check_consistent(out)
        if proc.returncode == 0:  # finished before the signal: then it is the new export, complete
            assert report["records_read"] == 40_000
            continue
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
        assert report == before
        interrupted += 1
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and ("interrupted" in lines[0] or "terminated" in lines[0]), stderr
        assert "Traceback" not in stderr
    assert interrupted >= 2  # the export takes longer than the delays: most signals land mid-way
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".corpus")] == []


def test_zero_of_n_exported_exits_1_and_keeps_the_previous_export(tmp_path: Path) -> None:
    good, unlabelled = tmp_path / "good.jsonl", tmp_path / "raw.jsonl"
    write_records(good, synthetic_records(60))
    write_records(unlabelled, [Record(Document.create(f"text {i}", id=str(i))) for i in range(30)])
    out = tmp_path / "corpus"
    assert cli("export", f"jsonl:{good}", "--task", "ner", "--out", out).returncode == 0
    before = check_consistent(out)
    result = cli("export", f"jsonl:{unlabelled}", "--task", "ner", "--out", out)
    assert result.returncode == 1
    assert "0 of 30 records exported (no annotations (30))" in result.stderr
    assert check_consistent(out) == before


def test_span_task_on_category_data_is_refused_before_writing(tmp_path: Path) -> None:
    src = tmp_path / "cats.jsonl"
    records = [
        Record(Document.create(f"a text {i}", id=str(i)), [Annotation("ann", categories={"A": 1.0, "B": 0.0})])
        for i in range(20)
    ]
    write_records(src, records)
    out = tmp_path / "corpus"
    result = cli("export", f"jsonl:{src}", "--task", "ner", "--out", out)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "none of the 20 records has a span" in result.stderr and "textcat" in result.stderr
    assert not out.exists()
    assert cli("export", f"jsonl:{src}", "--task", "textcat", "--out", out).returncode == 0


def test_one_unfit_record_costs_only_itself(tmp_path: Path) -> None:
    """An over-long text and a lone surrogate are skipped with a reason; the good records are exported."""
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(50))
    with src.open("a", encoding="utf-8") as fh:
        huge = Record(Document.create("word " * 220_000, id="huge"), [Annotation("ann")])
        fh.write(json.dumps(huge.to_dict()) + "\n")
        # written with an escaped lone surrogate, as a JSON encoder does: valid JSON, invalid Unicode
        surrogate = Record(Document.create("bad \ud800 text", id="sur"), [Annotation("ann")])
        fh.write(json.dumps(surrogate.to_dict(), ensure_ascii=True) + "\n")
    out = tmp_path / "corpus"
    report = export(f"jsonl:{src}", out, task="ner")
    assert report.records_read == 52 and report.records_exported == 50
    reasons = dict(report.records_skipped)
    assert reasons.pop("text longer than spaCy's max_length (1,100,000 > 1,000,000 characters)") == 1
    assert reasons == {"text contains a lone surrogate (not valid Unicode)": 1}
    where = report.examples[next(iter(reasons))]
    assert where == ["sur"] or where[0].endswith(":52")  # the record id, or its line when the reader skips it
    check_consistent(out)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0.5,0.6,0.1", "must sum to 1"),
        ("nan,0.5,0.5", "finite"),
        ("inf", "finite"),
        ("0.8,-0.1,0.3", "not negative"),
        ("0,0.5,0.5", "train ratio above 0"),
        ("0.25,0.25,0.25,0.25", "1 to 3 ratios"),
        ("a,b", "ratios like"),
    ],
)
def test_bad_split_specs_are_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_split(spec)


def test_split_spec_accepts_float_sums() -> None:
    assert parse_split("0.7,0.2,0.1").ratios == (0.7, 0.2, 0.1)
    assert parse_split("1").ratios == (1.0,)


def test_bad_split_on_the_cli_exits_2(tmp_path: Path) -> None:
    result = cli("export", f"prodigy:{FASHION}", "--task", "ner", "--out", tmp_path / "o", "--split", "nan")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "finite" in result.stderr


def test_empty_split_and_single_group_warn(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    records = synthetic_records(6)
    for record in records:
        record.document.meta["source"] = "same-file.txt"
    write_records(src, records)
    report = export(f"jsonl:{src}", tmp_path / "o", task="ner", group_by="source")
    assert sum(1 for w in report.warnings if "split is empty" in w) == 2
    assert any("every document has the same value" in w for w in report.warnings)
    lacking = export(f"jsonl:{src}", tmp_path / "o2", task="ner", group_by="no_such_key", split="0.5,0.5")
    assert any("6 of 6 documents lack that meta key" in w for w in lacking.warnings)
    result = cli("export", f"jsonl:{src}", "--task", "ner", "--out", tmp_path / "o3", "--group-by", "source")
    assert "warning: --group-by source: every document has the same value" in result.stdout


def test_printed_paths_keep_their_brackets_and_the_next_step_is_one_line(tmp_path: Path) -> None:
    result = cli("export", f"prodigy:{FASHION}", "--task", "ner", "--out", "out[final]", "--config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Report: out[final]/report.json" in result.stdout
    next_step = [line for line in result.stdout.splitlines() if line.startswith("Next: ")]
    assert len(next_step) == 1
    command = next_step[0].removeprefix("Next: ")
    assert command.startswith(f"{sys.executable} -m spacy train ")
    assert "--output 'out[final]-model'" in command and "--paths.dev 'out[final]/dev'" in command
    assert (tmp_path / "out[final]" / "config.cfg").exists()


@pytest.mark.slow
def test_the_printed_next_step_trains_and_saves(tmp_path: Path) -> None:
    """The printed command, run by a shell as printed, trains and saves a model.

    A step limit is appended (spaCy's own override syntax) so the suite stays short; the command
    itself is run unchanged.
    """
    result = cli("export", f"prodigy:{FASHION}", "--task", "ner", "--out", "corpus", "--config", cwd=tmp_path)
    command = next(line for line in result.stdout.splitlines() if line.startswith("Next: ")).removeprefix("Next: ")
    limit = " --training.max_steps 20 --training.eval_frequency 10"
    trained = subprocess.run(command + limit, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert (tmp_path / "corpus-model" / "model-last" / "meta.json").exists()
    assert (tmp_path / "corpus-model" / "model-best").is_dir()


def test_help_shows_no_bool_placeholders() -> None:
    for command in (["export"], ["import"], ["pull"], ["stats"], ["adapters"], ["al", "run"], ["al", "simulate"]):
        result = cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout, command


def test_missing_model_says_how_to_download(tmp_path: Path) -> None:
    result = cli(
        "export", f"prodigy:{FASHION}", "--task", "ner", "--out", tmp_path / "o", "--model", "xx_no_such_model_sm"
    )
    assert result.returncode == 2
    assert f"{sys.executable} -m spacy download xx_no_such_model_sm" in result.stderr.replace("\n", "")


def test_nothing_exported_error_carries_the_report(tmp_path: Path) -> None:
    src = tmp_path / "raw.jsonl"
    write_records(src, [Record(Document.create("x", id="1"))])
    with pytest.raises(NothingExportedError) as info:
        export(f"jsonl:{src}", tmp_path / "o", task="ner")
    assert info.value.report.records_skipped == {"no annotations": 1}


def test_span_drops_and_repairs_name_their_documents(tmp_path: Path) -> None:
    from annobridge.model import Span

    src = tmp_path / "r.jsonl"
    text = "Ask 😀 Maria about Oslo"
    records = [
        # UTF-16 offsets (the emoji counts twice) with the text claimed: repaired, and counted as such
        Record(Document.create(text, id="utf16-doc"), [Annotation("a", spans=[Span(7, 12, "PERSON", text="Maria")])]),
        # a claim that is nowhere in the text: dropped
        Record(
            Document.create("Paris is nice", id="bad-doc"), [Annotation("a", spans=[Span(0, 5, "GPE", text="Oslo")])]
        ),
    ]
    write_records(src, records)
    report = export(f"jsonl:{src}", tmp_path / "o", task="ner", split="1")
    assert report.spans_adjusted["utf16 offsets converted"] == 1
    assert report.span_examples["adjusted: utf16 offsets converted"] == ["utf16-doc"]
    (dropped,) = report.spans_dropped
    assert report.span_examples[f"dropped: {dropped}"] == ["bad-doc"]
    data = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert data["span_examples"]["adjusted: utf16 offsets converted"] == ["utf16-doc"]
    assert data["records_read"] == 2 and data["records_exported"] == 2
