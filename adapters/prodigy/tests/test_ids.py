"""Document ids through Prodigy: ``annobridge_id`` on the task, the hash for tasks without it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from annobridge import Document, LabelSchema, open_adapter
from annobridge_prodigy import ProdigyAdapter, input_hash

NER = LabelSchema("ner", ["PERSON"])


def _adapter(url: str) -> ProdigyAdapter:
    adapter = open_adapter(url)
    assert isinstance(adapter, ProdigyAdapter)
    return adapter


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, tasks: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")


@pytest.fixture(params=["jsonl", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "jsonl":
        return f"prodigy:{tmp_path / 'stream.jsonl'}"
    return f"prodigy:{tmp_path / 'prodigy.db'}?dataset=ids"


def test_ids_come_back_and_hashes_ignore_them(url: str) -> None:
    docs = [Document.create("Maria moved to Oslo.", id="doc-1"), Document.create("Ana stayed.")]
    with _adapter(url) as adapter:
        adapter.ensure_project(NER)
        result = adapter.import_documents(docs, schema=NER)
        assert result.created == 2
        assert [r.id for r in adapter.pull()] == ["doc-1", docs[1].id]  # docs[1]: its content id
        # the id is bookkeeping: the hashes are those Prodigy gives the bare text
        for doc in docs:
            assert result.native_ids[doc.id] == input_hash({"text": doc.text})


def test_a_document_read_from_prodigy_goes_back_without_an_id(tmp_path: Path) -> None:
    out = tmp_path / "stream.jsonl"
    text = "Maria moved to Oslo."
    doc = Document.create(text, id=str(input_hash({"text": text})))  # what a pull of Prodigy's own data gives
    _adapter(f"prodigy:{out}").import_documents([doc])
    (task,) = _lines(out)
    assert "annobridge_id" not in task and task["_input_hash"] == int(doc.id)
    assert [r.id for r in _adapter(f"prodigy:{out}").pull()] == [doc.id]


def test_tasks_without_the_key_keep_the_hash_id(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    _write(path, [{"text": "Old export.", "_input_hash": 7, "_task_hash": 8, "answer": "accept"}])
    assert [r.id for r in _adapter(f"prodigy:{path}").pull()] == ["7"]


def test_an_answer_with_the_id_names_an_input_first_seen_without_it(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    now = int(datetime.now(timezone.utc).timestamp())
    _write(
        path,
        [
            {"text": "Some text.", "_input_hash": 11, "_task_hash": 12, "answer": "accept", "_timestamp": now},
            {"text": "Some text.", "_input_hash": 11, "_task_hash": 12, "annobridge_id": "doc-a", "answer": "accept"},
        ],
    )
    (record,) = _adapter(f"prodigy:{path}").pull()
    assert record.id == "doc-a" and len(record.annotations) == 2


def test_an_id_two_inputs_carry_stays_unique(tmp_path: Path) -> None:
    """A recipe that splits a document into sentences copies its keys to every sentence (each its own input)."""
    path = tmp_path / "split.jsonl"
    _write(
        path,
        [
            {"text": "First sentence.", "_input_hash": 21, "_task_hash": 22, "annobridge_id": "doc-a"},
            {"text": "Second one.", "_input_hash": 31, "_task_hash": 32, "annobridge_id": "doc-a"},
        ],
    )
    assert [r.id for r in _adapter(f"prodigy:{path}").pull()] == ["doc-a", "31"]


@pytest.mark.parametrize(
    "bad",
    [
        Document.create("lone \ud800 surrogate", id="bad-text"),
        Document.create("fine text", id="bad-meta", meta={"when": datetime(2024, 1, 1)}),
        Document.create("fine text too", id="bad-\udfff-id"),
    ],
    ids=["text", "meta", "id"],
)
def test_a_document_that_cannot_be_stored_fails_alone(url: str, bad: Document) -> None:
    docs = [Document.create("Before it.", id="a"), bad, Document.create("After it.", id="b")]
    with _adapter(url) as adapter:
        adapter.ensure_project(NER)
        result = adapter.import_documents(docs, schema=NER)
        assert result.created == 2 and [doc_id for doc_id, _ in result.failed] == [bad.id]
        assert [r.id for r in adapter.pull()] == ["a", "b"]
