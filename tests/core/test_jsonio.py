"""The byte-wise JSON reader, through the adapters and ``read_documents`` that use it, on real files.

The Prodigy data are the real fashion_brands ``ner_manual`` export (tests/data/prodigy); a 2,000-line
file is those 80 lines repeated with new ``_input_hash`` values, so every line is its own record.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from annobridge.adapters.jsonl import write_records
from annobridge.jsonio import LONE_SURROGATE, BadLine, decode_line, read_json_items, read_json_lines
from annobridge.plugins import open_adapter
from annobridge.readers import read_documents

DATA = Path(__file__).resolve().parents[1] / "data" / "prodigy"
FASHION = DATA / "fashion_brands_training_head.jsonl"


def _fashion_tasks() -> list[dict]:
    return [json.loads(line) for line in FASHION.read_text(encoding="utf-8").splitlines()]


def _lines(n: int) -> list[bytes]:
    """n real Prodigy task lines, each with an _input_hash of its own."""
    tasks = _fashion_tasks()
    out = []
    for i in range(n):
        task = dict(tasks[i % len(tasks)])
        task["_input_hash"] = 1_000_000 + i
        out.append(json.dumps(task, ensure_ascii=False).encode("utf-8"))
    return out


def _corrupt_text(line: bytes) -> bytes:
    """An invalid UTF-8 byte inside the task's text (a lone continuation byte)."""
    at = line.index(b'"text":') + len(b'"text": "') + 3
    return line[:at] + b"\x80" + line[at:]


def _pull(url: str) -> tuple[list, list[tuple[str, str]]]:
    with open_adapter(url) as adapter:
        records = list(adapter.pull())
        return records, list(adapter.skipped)


def test_a_bad_byte_on_line_1001_of_2000_costs_exactly_that_line(tmp_path: Path) -> None:
    lines = _lines(2000)
    lines[1000] = _corrupt_text(lines[1000])
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    records, skipped = _pull(f"prodigy:{path}")
    assert skipped == [("tasks.jsonl:1001", "line is not UTF-8")]
    assert len(records) == 1999
    ids = {int(r.id) for r in records}
    assert 1_000_000 + 1000 not in ids and {1_000_000 + 999, 1_000_000 + 1001, 1_000_000 + 1999} <= ids


def test_the_same_bad_byte_in_annobridge_jsonl_and_in_import(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(_lines(2000)) + b"\n")
    records, _ = _pull(f"prodigy:{clean}")
    ours = tmp_path / "records.jsonl"
    write_records(ours, records)
    raw = ours.read_bytes().split(b"\n")
    raw[1000] = _corrupt_text(raw[1000])
    ours.write_bytes(b"\n".join(raw))
    read, skipped = _pull(f"jsonl:{ours}")
    assert skipped == [("records.jsonl:1001", "line is not UTF-8")]
    assert len(read) == 1999
    # the import command's reader: the same line, no crash
    import_skips: list[tuple[str, str]] = []
    docs = list(read_documents(ours, on_skip=lambda w, r: import_skips.append((w, r))))
    assert import_skips == [("records.jsonl:1001", "line is not UTF-8")]
    assert len(docs) == 1999


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_bom_and_windows_line_ends_change_nothing(tmp_path: Path, newline: bytes) -> None:
    plain, _ = _pull(f"prodigy:{FASHION}")
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + FASHION.read_bytes().replace(b"\n", newline))
    records, skipped = _pull(f"prodigy:{path}")
    assert skipped == []
    assert [r.to_dict() for r in records] == [r.to_dict() for r in plain]
    ours = tmp_path / "records.jsonl"
    write_records(ours, plain)
    ours.write_bytes(b"\xef\xbb\xbf" + ours.read_bytes().replace(b"\n", newline))
    again, skipped = _pull(f"jsonl:{ours}")
    assert skipped == [] and [r.to_dict() for r in again] == [r.to_dict() for r in plain]
    assert len(list(read_documents(ours))) == len(plain)


def test_gzip_is_read_like_the_plain_file_bad_line_included(tmp_path: Path) -> None:
    lines = _lines(300)
    lines[150] = _corrupt_text(lines[150])
    body = b"\n".join(lines) + b"\n"
    (tmp_path / "tasks.jsonl").write_bytes(body)
    (tmp_path / "tasks.jsonl.gz").write_bytes(gzip.compress(body))
    plain, plain_skips = _pull(f"prodigy:{tmp_path / 'tasks.jsonl'}")
    packed, packed_skips = _pull(f"prodigy:{tmp_path / 'tasks.jsonl.gz'}")
    assert [r.to_dict() for r in packed] == [r.to_dict() for r in plain]
    assert plain_skips == [("tasks.jsonl:151", "line is not UTF-8")]
    assert packed_skips == [("tasks.jsonl.gz:151", "line is not UTF-8")]
    docs = list(read_documents(tmp_path / "tasks.jsonl.gz", on_skip=lambda w, r: None))
    assert len(docs) == 299


def test_json_nested_too_deeply_costs_its_line_only(tmp_path: Path) -> None:
    lines = _lines(20)
    deep = b'{"text": "deep", "meta": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    lines.insert(10, deep)
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    records, skipped = _pull(f"prodigy:{path}")
    assert skipped == [("deep.jsonl:11", "invalid JSON (nested too deeply to read)")]
    assert len(records) == 20
    docs = list(read_documents(path, on_skip=lambda w, r: None))
    assert len(docs) == 20


def test_a_lone_surrogate_is_skipped_with_its_reason(tmp_path: Path) -> None:
    lines = _lines(10)
    task = json.loads(lines[4])
    lines[4] = json.dumps({**task, "text": "broken \ud800 text"}).encode()  # json.dumps writes "\ud800"
    assert b"\\ud800" in lines[4]
    path = tmp_path / "surrogate.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    records, skipped = _pull(f"prodigy:{path}")
    assert skipped == [("surrogate.jsonl:5", LONE_SURROGATE)]
    assert len(records) == 9

    ours = tmp_path / "records.jsonl"
    good, _ = _pull(f"prodigy:{FASHION}")
    write_records(ours, good[:5])
    with ours.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "x", "text": "a \udfff b", "annotations": []}) + "\n")
    read, skipped = _pull(f"jsonl:{ours}")
    assert skipped == [("records.jsonl:6", LONE_SURROGATE)] and len(read) == 5
    import_skips: list[tuple[str, str]] = []
    assert len(list(read_documents(ours, on_skip=lambda w, r: import_skips.append((w, r))))) == 5
    assert import_skips == [("records.jsonl:6", LONE_SURROGATE)]


def test_lines_that_are_not_objects_or_not_json_are_reported_each(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"text": "a"}\n[1, 2]\n"just a string"\n{oops\n\n   \n{"text": "b"}\n')
    got = list(read_json_lines(path))
    assert [w for w, _ in got] == ["mixed.jsonl:1", "mixed.jsonl:2", "mixed.jsonl:3", "mixed.jsonl:4", "mixed.jsonl:7"]
    assert got[1][1] == BadLine("expected a JSON object, got list")
    assert got[2][1] == BadLine("expected a JSON object, got str")
    assert isinstance(got[3][1], BadLine) and got[3][1].reason.startswith("invalid JSON (")
    assert got[4][1] == {"text": "b"}
    assert decode_line(b"[1]", objects_only=False) == [1]
    assert decode_line(b"\xff") == BadLine("line is not UTF-8")


def test_json_arrays_and_jsonl_under_a_json_name(tmp_path: Path) -> None:
    array = tmp_path / "tasks.json"
    array.write_text(json.dumps(_fashion_tasks()[:5]), encoding="utf-8")
    assert [w for w, _ in read_json_items(array)] == [f"tasks.json[{i}]" for i in range(5)]
    records, skipped = _pull(f"prodigy:{array}")
    assert len(records) == 5 and not skipped
    lines = tmp_path / "lines.json"
    lines.write_bytes(b"\n".join(_lines(5)) + b"\n")
    assert len(list(read_json_items(lines))) == 5
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'[{"text": "a"}, \xff]')
    with pytest.raises(ValueError, match="not valid UTF-8"):
        list(read_json_items(broken))


def test_the_active_learning_loader_reads_gzip_records_past_a_bad_line(tmp_path: Path) -> None:
    from annobridge.al.simulate import load_records

    good, _ = _pull(f"prodigy:{FASHION}")
    plain = tmp_path / "records.jsonl"
    write_records(plain, good[:30])
    lines = plain.read_bytes().split(b"\n")
    lines[11] = _corrupt_text(lines[11])
    packed = tmp_path / "records.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\n".join(lines)))
    loaded = load_records(packed)
    assert [r.id for r in loaded] == [r.id for i, r in enumerate(good[:30]) if i != 11]
