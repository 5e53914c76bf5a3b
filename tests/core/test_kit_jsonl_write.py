"""kit.append_json_lines / json_line / is_json_array_file, and AnnotationLedger's since check and watermark."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from annobridge import kit
from annobridge.errors import UsageError


def test_json_line_keeps_non_ascii_and_ends_the_line() -> None:
    assert kit.json_line({"text": "Zoë 🎉"}) == '{"text": "Zoë 🎉"}\n'.encode()


def test_append_creates_folders_and_never_runs_into_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "tasks.jsonl"
    assert kit.append_json_lines(path, [{"a": 1}, {"a": 2}]) == 2
    with path.open("ab") as fh:
        fh.write(b'{"a": 3}')  # written by another tool, no newline
    assert kit.append_json_lines(path, [{"a": 4}]) == 1
    assert [d["a"] for _, d in kit.read_json_lines(path)] == [1, 2, 3, 4]
    assert kit.append_json_lines(path, []) == 0


def test_append_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    kit.append_json_lines(path, [{"a": 1}])
    before = path.read_bytes()
    with pytest.raises(TypeError):
        kit.append_json_lines(path, [{"a": 2}, {"a": object()}])  # not JSON: nothing is written
    assert path.read_bytes() == before


@pytest.mark.parametrize(("name", "array"), [("a.json", True), ("a.JSON.gz", True), ("a.jsonl", False),
                                             ("a.jsonl.gz", False), ("json", False)])
def test_is_json_array_file(name: str, array: bool) -> None:
    assert kit.is_json_array_file(name) is array


def test_ledger_checks_a_bare_date_and_takes_naive_as_utc() -> None:
    with pytest.raises(UsageError, match="neither a cursor"):
        kit.AnnotationLedger.resume("last tuesday")
    ledger = kit.AnnotationLedger.resume(datetime(2026, 1, 1, 12))
    assert ledger.since == datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert kit.AnnotationLedger.resume("2026-01-01T12:00:00").since == ledger.since


def test_ledger_newest_falls_back_to_created_at() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    t1 = datetime(2026, 2, 1, tzinfo=timezone.utc)
    record = kit.Record(kit.Document("d", "text"), annotations=[
        kit.Annotation("a", created_at=t1, native_ids={"annotation_id": 1}),
        kit.Annotation("b", created_at=t1, updated_at=t0, native_ids={"annotation_id": 2})])
    ledger = kit.AnnotationLedger.resume(None)
    assert [r.id for r in ledger.changes([("d", record)])] == ["d"]
    assert ledger.newest == t1
    assert json.loads(json.dumps(ledger.cursor(ledger.newest)))["watermark"].startswith("2026-02-01")


def test_import_result_translated_fails_one_document_alone() -> None:
    result = kit.ImportResult()

    def build(doc: kit.Document, n: int) -> str:
        if n < 0:
            raise kit.DataError(f"{n} is negative")
        return f"{doc.id}:{n}"

    items = [(kit.Document("a", "x"), 1), (kit.Document("b", "y"), -1), (kit.Document("c", "z"), 2)]
    assert [out for _, out in result.translated(items, build)] == ["a:1", "c:2"]
    assert result.failed == [("b", "-1 is negative")]
    with pytest.raises(KeyError):  # not one of ``errors``: propagates
        result.translated(items[:1], lambda doc, n: {}[n])


def test_rewrite_json_lines_edits_keeps_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    path.write_bytes(b'{"k": 1}\r\n\n{not json\n{"k": 2}\n{"k": 1}\n{"k": 3}')

    def edit(value: object) -> list[object] | None:
        if isinstance(value, dict) and value.get("k") == 1:
            return [{"k": 1, "new": True}, {"k": 1.5}]
        if isinstance(value, dict) and value.get("k") == 2:
            return []
        return None  # kept as it is, the unparseable line too

    kit.rewrite_json_lines(path, edit, then=lambda: [{"k": 4}])
    assert path.read_bytes().split(b"\n") == [
        b'{"k": 1, "new": true}', b'{"k": 1.5}', b"{not json", b'{"k": 1, "new": true}', b'{"k": 1.5}',
        b'{"k": 3}', b'{"k": 4}', b""]
    fresh = tmp_path / "new" / "file.jsonl"
    kit.rewrite_json_lines(fresh, lambda value: None, then=lambda: [{"a": "é"}])
    assert fresh.read_bytes() == '{"a": "é"}\n'.encode()
