"""Overlap and review on a real Argilla: its task distribution is set; a review it cannot show is refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from annobridge import open_adapter as open_url
from annobridge.errors import UsageError
from annobridge.model import Annotation, Document, LabelSchema, Record, Span, TaskKind
from annobridge.review import review

LABELS = ["FASHION_BRAND"]


def test_annotators_per_doc_sets_the_task_distribution(
    open_adapter: Any, argilla_server: Any, dataset_name: str, fashion: list[dict[str, Any]]
) -> None:
    adapter = open_adapter(dataset_name)
    docs = [Document(r["id"], r["text"]) for r in fashion[:3]]
    adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, LABELS))
    said = adapter.set_annotators_per_doc(2)
    assert "2 submitted" in said
    # read back independently of the adapter, as the web UI's settings page reads it
    ds_id = adapter.dataset().id
    resp = httpx.get(f"{argilla_server.url}/api/v1/datasets/{ds_id}",
                     headers={"X-Argilla-Api-Key": argilla_server.owner.api_key}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["distribution"] == {"strategy": "overlap", "min_submitted": 2}


def test_review_into_argilla_is_refused_with_the_reason(open_adapter: Any, dataset_name: str, tmp_path: Any) -> None:
    path = tmp_path / "two.jsonl"
    text = "I love Nike shoes"
    record = Record(Document("d1", text), annotations=[
        Annotation("alice", spans=[Span(7, 11, "FASHION_BRAND")]), Annotation("bob", spans=[])])
    path.write_text(json.dumps(record.to_dict()) + "\n", encoding="utf-8")
    with open_url(f"jsonl:{path}") as source, pytest.raises(UsageError, match="one suggestion per question"):
        review(source, open_adapter(dataset_name), task="ner", labels=LABELS)
