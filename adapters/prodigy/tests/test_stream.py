"""Prodigy JSONL grouped by ``_input_hash`` through the line index, without holding the file.

Each case compares the streamed pull with the reference result: every task parsed in memory and
grouped by :class:`TaskGrouper` (what the adapter did before), on real exports.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from annobridge.jsonio import BadLine, read_json_lines
from annobridge.kit import LineIndex
from annobridge.model import Record
from annobridge.plugins import open_adapter
from annobridge_prodigy import ProdigyAdapter
from annobridge_prodigy.tasks import TaskGrouper


def _reference(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    skipped: list[tuple[str, str]] = []
    grouper = TaskGrouper(lambda where, reason: skipped.append((where, reason)))
    for where, task in read_json_lines(path, objects_only=False):
        if isinstance(task, BadLine):
            skipped.append((where, task.reason))
        else:
            grouper.add(task, where)
    return [r.to_dict() for r in grouper.records.values()], skipped


def _pull(path: Path) -> tuple[list[Record], ProdigyAdapter]:
    adapter = open_adapter(f"prodigy:{path}")
    assert isinstance(adapter, ProdigyAdapter)
    return list(adapter.pull()), adapter


def _same_as_reference(path: Path) -> list[Record]:
    records, adapter = _pull(path)
    expected, expected_skips = _reference(path)
    assert [r.to_dict() for r in records] == expected
    assert sorted(adapter.skipped) == sorted(expected_skips)
    assert adapter.count() == len(expected)
    return records


@pytest.mark.parametrize(
    "name",
    [
        "ner_tweets_sample.jsonl",  # repeated _input_hash lines, not adjacent
        "restaurant_reviews_review.jsonl",  # review output: _input_hash nested in versions too
        "reddit_product_ner_teach.jsonl",  # binary: several questions per input
        "raw_news_headlines_nyt.jsonl",  # no saved hashes: computed from the text
        "fashion_brands_patterns_head.jsonl",  # patterns: no tasks at all
        "nel_emerson_choice.jsonl",
    ],
)
def test_streamed_pull_equals_the_in_memory_grouping(data_dir: Path, name: str) -> None:
    _same_as_reference(data_dir / name)


def test_answers_far_apart_are_one_record_in_first_appearance_order(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "reddit_product_ner_teach.jsonl").read_bytes().splitlines()
    random.Random(7).shuffle(lines)  # scatter each input's answers over the whole file
    path = tmp_path / "shuffled.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    records = _same_as_reference(path)
    first_seen: list[int] = []
    for line in lines:
        ih = json.loads(line)["_input_hash"]
        if ih not in first_seen:
            first_seen.append(ih)
    assert [int(r.id) for r in records] == first_seen
    assert sum(len(r.annotations) for r in records) >= len(lines)  # a span answered apart is its own


def test_scattered_gzip_and_windows_line_ends(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "ner_tweets_sample.jsonl").read_bytes().splitlines()
    random.Random(3).shuffle(lines)
    plain = tmp_path / "tweets.jsonl"
    plain.write_bytes(b"\r\n".join(lines) + b"\r\n")
    packed = tmp_path / "tweets.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    plain_records = _same_as_reference(plain)
    packed_records, _ = _pull(packed)
    assert [r.to_dict() for r in packed_records] == [r.to_dict() for r in plain_records]


def test_the_index_holds_integers_only_and_count_reuses_it(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "tweets.jsonl"
    path.write_bytes((data_dir / "ner_tweets_sample.jsonl").read_bytes())
    adapter = open_adapter(f"prodigy:{path}")
    assert isinstance(adapter, ProdigyAdapter)
    expected = len(_reference(path)[0])
    assert adapter.count() == expected
    index = adapter._index
    assert isinstance(index, LineIndex)
    assert {index.offsets.typecode, index.linenos.typecode, index.keys.typecode} == {"q"}
    assert len(list(adapter.pull())) == expected
    assert adapter._index is index  # the pull read the file through the index count() built
    with path.open("ab") as fh:  # a changed file is indexed again
        fh.write(json.dumps({"text": "one more input", "answer": "accept"}).encode() + b"\n")
    assert adapter.count() == expected + 1
    assert adapter._index is not index


def test_lines_with_mixed_spacing_and_hash_types(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    rows = [
        '{"text": "A", "_input_hash" : 5, "answer": "accept"}',
        '{"_input_hash":5,"text":"A","answer":"reject"}',
        '{"text": "B", "_input_hash": 5.5, "answer": "accept"}',  # not an int: hashed from the text
        '{"text": "C", "_input_hash": 99999999999999999999999, "answer": "accept"}',
        '{"text": "C", "_input_hash": 99999999999999999999999, "answer": "reject"}',
        '{"text": "D", "answer": "accept"}',
        '{"text": "A", "_input_hash": 5, "answer": "ignore"}',
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    records = _same_as_reference(path)
    assert [len(r.annotations) for r in records] == [3, 1, 2, 1]
