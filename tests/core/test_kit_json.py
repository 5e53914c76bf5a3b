"""The kit's JSON helpers that server adapters share: streamed arrays, id batches for query strings, strictness."""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import pytest

from annobridge.errors import AdapterError
from annobridge.kit import Document, batches_by_encoded_size, document_problem, iter_json_array, json_problem


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_iter_json_array_any_chunking(size: int) -> None:
    items = [{"id": i, "text": "é😀中" * i, "n": [i, {"x": "]"}]} for i in range(40)]
    raw = json.dumps(items, ensure_ascii=False).encode()
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    assert list(iter_json_array(chunks)) == items
    assert list(iter_json_array(chunks, skip=25)) == items[25:]
    with pytest.raises(AdapterError, match="truncated"):
        list(iter_json_array([raw[: len(raw) // 2]]))
    with pytest.raises(AdapterError, match="The export is not a JSON array"):
        list(iter_json_array([b'{"a": 1}'], what="The export"))


def test_batches_by_encoded_size_stay_under_the_budget_and_keep_every_value() -> None:
    values = [f"doc-{i}-{'é' * (i % 7)}" for i in range(500)]
    batches = list(batches_by_encoded_size(values, budget=400))
    assert [v for batch in batches for v in batch] == values
    assert len(batches) > 1
    for batch in batches:
        assert sum(len(quote(json.dumps(v))) + 3 for v in batch) <= 400 or len(batch) == 1


def test_json_problem_refuses_what_strict_json_cannot_carry() -> None:
    assert json_problem({"a": [1, "x", None]}) is None
    assert json_problem({"w": math.nan}) == "a number is NaN or Infinity, which JSON cannot carry"
    assert json_problem({"w": math.inf}) is not None
    assert json_problem({"s": {1, 2}}) is not None  # a set is no JSON
    assert "surrogate" in (json_problem({"t": "a\ud800b"}) or "")


def test_document_problem_names_the_reason() -> None:
    assert document_problem(Document("ok", "fine text", {"k": 1})) is None
    assert "meta is not JSON" in (document_problem(Document("m", "text", {"k": math.nan})) or "")
    assert "surrogate" in (document_problem(Document("s", "bad \udc80 text")) or "")
    assert "id is empty" in (document_problem(Document("", "text")) or "")
