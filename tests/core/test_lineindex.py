"""kit.LineIndex: group the lines of a JSON Lines file by key without holding the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from annobridge import kit


def _key(line: bytes) -> int | None:
    value = kit.decode_line(line)
    return value.get("k") if isinstance(value, dict) and isinstance(value.get("k"), int) else None


def _write(path: Path, rows: list[str]) -> Path:
    data = ("\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _grouped(index: kit.LineIndex) -> list[list[tuple[str, object]]]:
    return [[(where, value if isinstance(value, kit.BadLine) else value["v"]) for where, value in group]
            for group in index.groups()]


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_groups_in_first_seen_order_lines_in_file_order(tmp_path: Path, name: str) -> None:
    rows = [json.dumps({"k": k, "v": v}) for k, v in [(2, "a"), (1, "b"), (2, "c")]]
    rows.insert(1, "")  # a blank line: not indexed, line numbers still count it
    rows.append("{not json")
    rows.append(json.dumps({"k": 2**70, "v": "big"}))
    rows.append(json.dumps({"k": 2**70, "v": "big again"}))
    index = kit.LineIndex.build(_write(tmp_path / name, rows), _key)
    assert index.fresh()
    assert index.count() == 3  # keys 2, 1 and 2**70; the unreadable line has none
    groups = _grouped(index)
    assert [[where for where, _ in g] for g in groups] == [
        [f"{name}:1", f"{name}:4"], [f"{name}:3"], [f"{name}:5"], [f"{name}:6", f"{name}:7"]]
    assert groups[0][1][1] == "c"
    assert isinstance(groups[2][0][1], kit.BadLine)  # a line without a key is a group of its own


def test_adjacent_groups_are_streamed_and_a_change_is_noticed(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.jsonl", [json.dumps({"k": k, "v": i}) for i, k in enumerate([1, 1, 2, 3, 3])])
    index = kit.LineIndex.build(path, _key)
    assert index._order() is None  # already grouped: read again in order, no seeks
    assert [[v for _, v in g] for g in _grouped(index)] == [[0, 1], [2], [3, 4]]
    with path.open("ab") as fh:
        fh.write(b'{"k": 4, "v": 5}\n')
    assert not index.fresh()
    assert kit.LineIndex.build(path, _key).count() == 4
