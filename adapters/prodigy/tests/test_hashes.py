"""Our `_input_hash` / `_task_hash` code against hashes Prodigy wrote into real exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from annobridge_prodigy.hashes import input_hash, is_hash, murmur, set_hashes, task_hash


def _tasks(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _as_streamed(task: dict[str, Any]) -> dict[str, Any]:
    """A manual task as it was when Prodigy hashed it: before tokens, spans and answer were added."""
    return {k: task[k] for k in ("text", "meta", "_input_hash") if k in task}


def test_murmurhash_is_signed_x86_32() -> None:
    # mmh3.hash("foo") as published by the mmh3 project; spaCy's murmurhash must agree
    assert murmur("foo") == -156908512
    assert murmur("") == 0
    assert is_hash(-(2**31)) and is_hash(2**31 - 1) and not is_hash(2**31) and not is_hash(True)


@pytest.mark.parametrize(
    "name",
    ["fashion_brands_training_head.jsonl", "news_headlines_ner_manual.jsonl"],
)
def test_manual_ner_hashes_reproduce_exactly(data_dir: Path, name: str) -> None:
    tasks = _tasks(data_dir / name)
    assert len(tasks) > 50
    for task in tasks:
        assert input_hash(task) == task["_input_hash"], task["text"]
        # no spans/label/options when streamed: the fallback form over {text, meta, _input_hash}
        assert task_hash(_as_streamed(task)) == task["_task_hash"], task["text"]


@pytest.mark.parametrize(
    "name",
    [
        "ner_tweets_sample.jsonl",
        "restaurant_reviews_review.jsonl",
        "raw_shares_newsapi_prehashed.jsonl",
        "fashion_brands_training_head.jsonl",
    ],
)
def test_input_hashes_reproduce(data_dir: Path, name: str) -> None:
    tasks = _tasks(data_dir / name)
    assert [input_hash(t) for t in tasks] == [t["_input_hash"] for t in tasks]


@pytest.mark.parametrize("name", ["ner_tweets_sample.jsonl", "restaurant_reviews_review.jsonl"])
def test_task_hashes_reproduce_for_unedited_tasks(data_dir: Path, name: str) -> None:
    # a saved task hash reproduces only where the spans were not edited after streaming
    # (measured on the full files: 345/523 tweets, 1115/1521 review records)
    tasks = _tasks(data_dir / name)
    matched = sum(task_hash(t) == t["_task_hash"] for t in tasks)
    assert matched >= len(tasks) // 2


def test_choice_hashes_use_the_spans_only(data_dir: Path) -> None:
    tasks = _tasks(data_dir / "nel_emerson_choice.jsonl")
    assert sum(input_hash(t) == t["_input_hash"] for t in tasks) == 29
    # options were added to the stream after hashing: hash the spans only
    good = [t for t in tasks if input_hash(t) == t["_input_hash"]]
    assert sum(task_hash(t, keys=("spans",)) == t["_task_hash"] for t in good) == 28
    assert sum(task_hash(t) == t["_task_hash"] for t in good) == 0


def test_ignored_keys_do_not_change_hashes() -> None:
    base = {"text": "Oslo", "spans": [{"start": 0, "end": 4, "label": "GPE"}]}
    scored = {
        "text": "Oslo",
        "spans": [{"start": 0, "end": 4, "label": "GPE", "score": 0.9, "rank": 1, "source": "m"}],
        "_view_id": "ner",
        "_session_id": "x",
    }
    assert task_hash(base) == task_hash(scored)
    assert task_hash(base) != task_hash({**base, "spans": [{"start": 0, "end": 4, "label": "LOC"}]})
    # the input hash covers only the input keys; the same text asked about two labels differs in task hash
    assert input_hash({"text": "a", "label": "X"}) == input_hash({"text": "a", "label": "Y"})
    assert task_hash({"text": "a", "label": "X"}) != task_hash({"text": "a", "label": "Y"})


def test_set_hashes_keeps_existing_ones(data_dir: Path) -> None:
    # 2017-era exports use an older scheme: their hashes must be kept, never recomputed
    old = _tasks(data_dir / "reddit_insult_textcat_binary.jsonl")[0]
    assert input_hash(old) != old["_input_hash"]
    kept = set_hashes(dict(old))
    assert (kept["_input_hash"], kept["_task_hash"]) == (old["_input_hash"], old["_task_hash"])
    fresh = set_hashes({"text": old["text"], "label": old["label"]})
    assert fresh["_input_hash"] == input_hash(old)
    assert fresh["_task_hash"] == task_hash(fresh, fresh["_input_hash"])
    forced = set_hashes(dict(old), overwrite=True)
    assert forced["_input_hash"] == input_hash(old)
