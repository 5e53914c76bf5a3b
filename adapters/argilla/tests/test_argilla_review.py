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


def test_copy_prodigy_review_output_into_argilla(
    open_adapter: Any, argilla_server: Any, dataset_name: str, tmp_path: Any
) -> None:
    """Real review output into Argilla: each session's version a response by its user, read back with the argilla
    SDK; the reviewer's decisions refused with the reason (no ground-truth flag); a second run copies nothing."""
    from pathlib import Path

    import argilla as rg

    from annobridge.copy import copy_project

    data = Path(__file__).resolve().parents[3] / "tests" / "data" / "prodigy" / "restaurant_reviews_review.jsonl"
    src = tmp_path / "review.jsonl"
    src.write_text("\n".join(data.read_text(encoding="utf-8").splitlines()[:8]) + "\n", encoding="utf-8")
    users = list(argilla_server.annotators)[:2]
    rename = {"original_annotations": users[0].username, "ner_model": users[1].username}
    with open_url(f"prodigy:{src}") as source:
        records = list(source.pull())
        report = copy_project(source, open_adapter(dataset_name), task="ner", annotators=rename)
    decisions = sum(1 for r in records for a in r.annotations if a.ground_truth)
    versions = sum(1 for r in records for a in r.annotations if not a.ground_truth)
    assert report.balanced and report.annotations.created == versions
    no_flag = "Argilla has no ground-truth flag for a response"
    assert [why for _, why in report.annotations.failed] == [no_flag] * decisions

    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.owner.api_key)
    dataset = client.datasets(name=dataset_name, workspace=argilla_server.workspace)
    ids = {str(u.id): u.username for u in users}
    got = {}
    for record in dataset.records(with_responses=True):
        for response in record.responses:
            got[(record.fields["text"], ids[str(response.user_id)])] = {(s["start"], s["end"], s["label"])
                                                                    for s in response.value}
    want = {(r.text, rename[a.annotator]): {s.key for s in a.spans}
            for r in records for a in r.annotations if not a.ground_truth}
    assert got == want

    with open_url(f"prodigy:{src}") as source:
        again = copy_project(source, open_adapter(dataset_name), task="ner", annotators=rename)
    assert (again.documents.created, again.annotations.created, again.annotations.existing) == (0, 0, versions)
