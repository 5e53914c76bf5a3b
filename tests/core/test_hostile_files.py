"""Property: a corrupted JSONL file never loses a record without a reason.

Real Prodigy ``ner_manual`` lines (fashion_brands) and the same data as annobridge records are
damaged at random (flipped bytes, truncated lines, duplicated lines, a byte-order mark, an
over-long record, Windows line ends). Whatever the damage, every non-blank line of the file is
either read into a record or reported in ``adapter.skipped`` under its own line number, and the
export report adds up.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annobridge.adapters.jsonl import write_records
from annobridge.export import export
from annobridge.jsonio import BOM, BadLine, decode_line, is_blank
from annobridge.plugins import open_adapter
from annobridge_prodigy.tasks import TaskError, parse_task

FASHION = Path(__file__).resolve().parents[1] / "data" / "prodigy" / "fashion_brands_training_head.jsonl"
_ALL = FASHION.read_bytes().splitlines()
# ten lines with entities and two without: at most six damage steps always leave lines with spans, so
# the export never rightly refuses ("none of the records has a span") and its report can be checked
PRODIGY_LINES = [ln for ln in _ALL if b'"label"' in ln][:10] + [ln for ln in _ALL if b'"label"' not in ln][:2]
NLP = spacy.blank("en")


def _record_lines() -> list[bytes]:
    with open_adapter(f"prodigy:{FASHION}") as adapter:
        by_id = {r.id: r for r in adapter.pull()}
    records = [by_id[str(json.loads(line)["_input_hash"])] for line in PRODIGY_LINES]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        write_records(path, records)
        return path.read_bytes().splitlines()


RECORD_LINES = _record_lines()

damage = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
    st.tuples(st.just("bom"), st.integers(0, 10**6)),
    st.tuples(st.just("overlong"), st.integers(0, 10**6), st.sampled_from(["nested", "long"])),
    st.tuples(st.just("crlf"), st.integers(0, 10**6)),
)


def _damage(lines: list[bytes], steps: list[tuple[Any, ...]]) -> bytes:
    lines = list(lines)
    for step in steps:
        kind, at = step[0], step[1] % len(lines)
        line = lines[at]
        if kind == "flip" and line:
            pos = step[2] % len(line)
            lines[at] = line[:pos] + bytes([step[3]]) + line[pos + 1 :]
        elif kind == "truncate":
            lines[at] = line[: step[2] % (len(line) + 1)]
        elif kind == "duplicate":
            lines.insert(step[1] % (len(lines) + 1), line)
        elif kind == "bom":
            lines[at] = BOM + line
        elif kind == "overlong":
            if step[2] == "nested":
                lines.insert(at, b'{"text": "x", "meta": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
            else:
                task = json.loads(PRODIGY_LINES[0])
                task["text"] = "long " * 60_000
                task["_input_hash"] = 424242
                lines.insert(at, json.dumps(task).encode())
        elif kind == "crlf":
            lines[at] = line + b"\r"
    return b"\n".join(lines) + b"\n"


def _numbered(data: bytes) -> dict[int, bytes]:
    """Non-blank lines of the damaged file by 1-based number, as the reader splits them (at b"\\n")."""
    return {n: line for n, line in enumerate(data.split(b"\n"), 1) if not is_blank(line)}


def _check_accounting(url: str, name: str, data: bytes, *, prodigy: bool) -> None:
    lines = _numbered(data)
    with open_adapter(url) as adapter:
        records = list(adapter.pull())
        skipped = list(adapter.skipped)
    numbers = [int(where.rsplit(":", 1)[1]) for where, _ in skipped]
    assert all(where.startswith(f"{name}:") for where, _ in skipped)
    assert len(numbers) == len(set(numbers)), skipped  # one report per line
    assert set(numbers) <= set(lines), (numbers, sorted(lines))  # the right line numbers, real lines
    kept = {n: line for n, line in lines.items() if n not in set(numbers)}
    if not prodigy:
        assert len(records) == len(kept)  # one record per line read
    else:
        by_id = {r.id: r for r in records}
        for n, line in kept.items():  # a line not reported must be in a record, under its input
            task = decode_line(line.rstrip(b"\r\n"), objects_only=False)
            assert not isinstance(task, BadLine), (n, task)
            try:
                parsed = parse_task(task)
            except TaskError as exc:
                raise AssertionError(f"line {n} unusable ({exc}) but not reported") from None
            record = by_id.get(str(parsed.input_hash))
            assert record is not None and record.text == parsed.document.text, n

    with tempfile.TemporaryDirectory() as out:
        report = export(url, out, task="ner", nlp=NLP)
    assert report.balanced
    assert report.records_read == report.records_exported + sum(report.records_skipped.values())
    assert sum(report.records_skipped.values()) >= len(skipped)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(damage, min_size=1, max_size=6), prodigy=st.booleans())
def test_damaged_jsonl_never_loses_a_record_without_a_reason(steps: list[tuple[Any, ...]], prodigy: bool) -> None:
    data = _damage(PRODIGY_LINES if prodigy else RECORD_LINES, steps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.jsonl"
        path.write_bytes(data)
        scheme = "prodigy" if prodigy else "jsonl"
        _check_accounting(f"{scheme}:{path}", path.name, data, prodigy=prodigy)
