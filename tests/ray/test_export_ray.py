"""``export(engine="ray")`` against the local engine on real data: the same docs per split, report and manifest.

The data are the real exports in ``tests/data/al`` (fashion_brands NER, SMS spam textcat) with a few
records appended that exercise the paths where engines could part: a span whose offsets lie outside
its text, a record that is skipped, a duplicate id, an unreadable line, and emoji texts whose UTF-16
offsets are only decided by the evidence of earlier records (the driver converts those itself).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from annobridge import export_ray
from annobridge.cli import app
from annobridge.errors import UsageError
from annobridge.export import ExportReport, export

DATA = Path(__file__).resolve().parent.parent / "data" / "al"
NER = DATA / "fashion_brands_small.jsonl"
TEXTCAT = DATA / "sms_spam_small.jsonl"
#: small shards so that one export is many Ray tasks and several shards per split
SHARD = 40
runner = CliRunner()
#: the module (``annobridge.export`` the attribute is the function)
export_module = importlib.import_module("annobridge.export")


def _with_edge_cases(src: Path, dest: Path, extra: list[dict[str, Any]], last: list[dict[str, Any]]) -> Path:
    """The real export with ``extra`` in the middle (inside chunks) and the first record again under its own
    id (a duplicate), then ``last`` and a broken line at the end."""
    lines = src.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    middle = len(lines) // 2
    dup = json.dumps({**first, "text": first["text"] + " Again."})
    body = [*lines[:middle], dup, *(json.dumps(r) for r in extra), *lines[middle:], *(json.dumps(r) for r in last)]
    dest.write_text("\n".join([*body, "{not json"]) + "\n", encoding="utf-8")
    return dest


EMOJI = "😀😀 I love Nudie jeans"


def _ner_rec(i: str, text: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": i, "text": text, "annotations": [{"annotator": "t", "spans": spans}]}


def _ner_extra() -> list[dict[str, Any]]:
    nudie = {"start": 12, "end": 17, "label": "FASHION_BRAND", "text": "Nudie"}
    return [
        _ner_rec("bad-offsets", "Nudie jeans are great", [{"start": 40, "end": 45, "label": "FASHION_BRAND"}]),
        {"id": "ignored", "text": "Levi's or Lee?", "annotations": [{"annotator": "t", "answer": "ignore"}]},
        # UTF-16 offsets with their text: each proves the source counts in UTF-16 code units
        *(_ner_rec(f"emoji-{i}", EMOJI, [nudie]) for i in range(3)),
    ]


#: UTF-16 offsets without text, long after the proofs (in another chunk): only their evidence decides it
NER_LAST = [_ner_rec("emoji-no-text", EMOJI, [{"start": 12, "end": 17, "label": "FASHION_BRAND"}])]


def _textcat_extra() -> list[dict[str, Any]]:
    return [
        {"id": "no-label", "text": "Call me back", "annotations": [{"annotator": "t", "categories": {}}]},
        {"id": "ignored", "text": "ok", "annotations": [{"annotator": "t", "answer": "ignore"}]},
    ]


def _readable(src: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line != "{not json"]


def _docs(out: Path, report: ExportReport) -> dict[str, list[tuple[Any, ...]]]:
    """Per split, every document read back from its shards in order: text, entities, span groups, cats."""
    nlp = spacy.blank("en")
    docs: dict[str, list[tuple[Any, ...]]] = {}
    for split, files in report.files.items():
        docs[split] = [
            (
                doc.text,
                [(e.start_char, e.end_char, e.label_) for e in doc.ents],
                [token.ent_iob for token in doc],  # missing (0) vs outside (2) matters for training
                {key: [(s.start_char, s.end_char, s.label_) for s in group] for key, group in doc.spans.items()},
                doc.cats,
            )
            for file in files
            for doc in DocBin().from_disk(out / file).get_docs(nlp.vocab)
        ]
    return docs


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").open(encoding="utf-8")]


def _assert_same_export(local: Path, lrep: ExportReport, ray: Path, rrep: ExportReport) -> None:
    assert _docs(ray, rrep) == _docs(local, lrep)
    left, right = lrep.to_dict(), rrep.to_dict()
    for volatile in ("out_dir", "files"):  # where it went; shard names are compared below
        left.pop(volatile)
        right.pop(volatile)
    assert right == left
    assert list(rrep.files) == list(lrep.files)
    # the manifest lists the same documents in the same order; file / index are where each one went
    lman, rman = _manifest(local), _manifest(ray)
    strip = [{k: v for k, v in e.items() if k not in ("file", "index")} for e in lman]
    assert [{k: v for k, v in e.items() if k not in ("file", "index")} for e in rman] == strip
    # ... and every manifest line of both points at the same document
    lshards, rshards = _shards(local, lrep), _shards(ray, rrep)
    for lentry, rentry in zip(lman, rman, strict=True):
        assert rshards[rentry["file"]][rentry["index"]] == lshards[lentry["file"]][lentry["index"]]


def _shards(out: Path, report: ExportReport) -> dict[str, list[str]]:
    nlp = spacy.blank("en")
    return {
        file: [doc.text for doc in DocBin().from_disk(out / file).get_docs(nlp.vocab)]
        for files in report.files.values()
        for file in files
    }


def test_ner_ray_matches_local(ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _with_edge_cases(NER, tmp_path / "ner.jsonl", _ner_extra(), NER_LAST)
    lrep = export(f"jsonl:{src}", tmp_path / "local", task="ner", shard_size=SHARD)
    on_driver: list[str] = []
    real = export_module.convert_record

    def counted(converter: Any, writer: Any, record: Any, max_length: int) -> Any:
        on_driver.append(record.id)  # the workers import their own, unpatched copy
        return real(converter, writer, record, max_length)

    monkeypatch.setattr(export_module, "convert_record", counted)
    rrep = export(f"jsonl:{src}", tmp_path / "ray", task="ner", shard_size=SHARD, engine="ray")
    # only the records with an astral character (whose offsets may need the source's evidence) were
    # converted on the driver, in order; the rest went to the workers
    astral = [r["id"] for r in _readable(src) if any(ord(c) > 0xFFFF for c in r["text"])]
    assert on_driver == astral
    assert {"emoji-0", "emoji-no-text"} <= set(astral) and len(astral) < 10
    _assert_same_export(tmp_path / "local", lrep, tmp_path / "ray", rrep)
    # the edge cases are really in it, in both: a dropped span, skips with reasons, the duplicate, the emoji
    assert rrep.spans_dropped["offsets outside the text"] == 1
    assert rrep.records_skipped["only ignored or skipped answers"] == 1
    assert sum(rrep.records_skipped.values()) == 2  # and the broken line
    assert rrep.records_read == 240 + 1 + len(_ner_extra()) + len(NER_LAST) + 1
    assert rrep.offset_units_decided == {"utf16 by source": 1}
    assert [e["id"] for e in _manifest(tmp_path / "ray")].count("fb-train-0280") == 2
    assert len(rrep.files["train"]) > 2  # many tasks, not one


def test_textcat_ray_matches_local_with_survey_and_stratify(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # exclusive textcat without --labels and --stratify both read the survey's spool first
    monkeypatch.setattr(export_ray, "_WINDOW", 1)  # rare splits' chunks are sent before they are full
    src = _with_edge_cases(TEXTCAT, tmp_path / "sms.jsonl", _textcat_extra(), [])
    kwargs: dict[str, Any] = {"task": "textcat", "shard_size": SHARD, "stratify": True, "seed": 3}
    lrep = export(f"jsonl:{src}", tmp_path / "local", **kwargs)
    rrep = export(f"jsonl:{src}", tmp_path / "ray", engine="ray", workers=2, **kwargs)
    _assert_same_export(tmp_path / "local", lrep, tmp_path / "ray", rrep)
    assert rrep.labels == ["ham", "spam"]
    assert len(rrep.records_skipped) == 3  # no label, ignored, the broken line: each with its reason
    assert rrep.records_exported == 501
    assert len(rrep.files["dev"]) > len(lrep.files["dev"])  # the window did cut the rare split's chunks


def test_cli_engine_ray(ray_local: Any, tmp_path: Path) -> None:
    src = _with_edge_cases(NER, tmp_path / "ner.jsonl", _ner_extra(), NER_LAST)
    common = ["export", f"jsonl:{src}", "--task", "ner", "--shard-size", str(SHARD), "--json"]
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local")])
    ray = runner.invoke(app, [*common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"])
    assert local.exit_code == ray.exit_code == 1, ray.output  # 1: the broken line and the bad span are data errors
    lrep, rrep = json.loads(local.stdout), json.loads(ray.stdout)
    for report in (lrep, rrep):
        report.pop("out_dir")
        report.pop("files")
    assert rrep == lrep
    assert _manifest(tmp_path / "ray")[0]["id"] == _manifest(tmp_path / "local")[0]["id"]


_REAL_CHUNK = export_ray._convert_chunk


def _poisoned_chunk(token: str, holder: list[Any], items: list[tuple[str, Any]], *rest: Any) -> Any:
    """Runs in the Ray worker (this module is pickled by value): fails the task holding the poisoned record."""
    if any(kind == "record" and payload["id"] == "poison" for kind, payload in items):
        raise RuntimeError("worker ran out of patience")
    return _REAL_CHUNK(token, holder, items, *rest)


def test_failed_task_leaves_previous_export(ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.cloudpickle

    src = tmp_path / "ner.jsonl"
    lines = NER.read_text(encoding="utf-8").splitlines()
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "corpus"
    export(f"jsonl:{src}", out, task="ner", shard_size=SHARD)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    poison = {"id": "poison", "text": "Nudie jeans", "annotations": [{"annotator": "t", "spans": []}]}
    src.write_text("\n".join([*lines[:100], json.dumps(poison), *lines[100:]]) + "\n", encoding="utf-8")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(export_ray, "_convert_chunk", _poisoned_chunk)
    try:
        result = runner.invoke(
            app,
            [
                "export",
                f"jsonl:{src}",
                "--task",
                "ner",
                "--out",
                str(out),
                "--shard-size",
                str(SHARD),
                "--engine",
                "ray",
            ],
        )
        with pytest.raises(export_ray.RayTaskFailedError, match="RuntimeError: worker ran out of patience"):
            export(f"jsonl:{src}", out, task="ner", shard_size=SHARD, engine="ray")
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])

    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "Ray task converting" in message and "RuntimeError: worker ran out of patience" in message
    assert f"{out} was left as it was" in message
    assert "Traceback" not in result.output and "ray.exceptions" not in result.output
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the previous export, byte for byte
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".annobridge-export-")]  # no staging left


def test_without_ray_one_install_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(UsageError) as info:
        export(f"jsonl:{NER}", tmp_path / "out", task="ner", engine="ray")
    assert "pip install 'annobridge[ray]'" in str(info.value).splitlines()
    result = runner.invoke(app, ["export", f"jsonl:{NER}", "-t", "ner", "-o", str(tmp_path / "o"), "--engine", "ray"])
    assert result.exit_code == 2
    assert "pip install 'annobridge[ray]'" in result.output.splitlines()
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_ray_engine_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--format spacy"):
        export(f"jsonl:{NER}", tmp_path / "out", task="ner", engine="ray", format="conll")
    with pytest.raises(UsageError, match="--engine must be one of local, ray"):
        export(f"jsonl:{NER}", tmp_path / "out", task="ner", engine="spark")
    with pytest.raises(UsageError, match="options of --engine ray"):
        export(f"jsonl:{NER}", tmp_path / "out", task="ner", workers=2)
    with pytest.raises(UsageError, match="--workers must be at least 1"):
        export(f"jsonl:{NER}", tmp_path / "out", task="ner", engine="ray", workers=0)
    assert not (tmp_path / "out").exists()
