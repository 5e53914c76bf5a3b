"""Bulk import against a real Argilla server: bad records are found and reported, the rest lands."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

from annobridge.model import Document, LabelSchema, Prediction, Span, TaskKind

LABELS = ["FASHION_BRAND"]


def _prediction(row: dict[str, Any]) -> Prediction:
    return Prediction("m1", spans=[Span(s["start"], s["end"], s["label"], score=0.9) for s in row["spans"]], score=0.9)


def _batch_with_bad_records(
    fashion: list[dict[str, Any]],
) -> tuple[list[Document], dict[str, Prediction], dict[str, str]]:
    docs = [Document(r["id"], r["text"], dict(r["meta"])) for r in fashion[:30]]
    preds = {r["id"]: _prediction(r) for r in fashion[:30]}
    with_spans = [r for r in fashion[:30] if r["spans"]]
    unknown, overlap = with_spans[3], with_spans[9]
    s = unknown["spans"][0]
    preds[unknown["id"]] = Prediction("m1", spans=[Span(s["start"], s["end"], "MISC", score=0.5)], score=0.5)
    s = overlap["spans"][0]
    preds[overlap["id"]] = Prediction("m1", spans=[Span(s["start"], s["end"], "FASHION_BRAND", score=0.5),
                                                   Span(s["start"], s["end"], "FASHION_BRAND", score=0.4)], score=0.4)
    nan_doc = docs[25]
    docs[25] = Document(nan_doc.id, nan_doc.text, {**nan_doc.meta, "weight": math.nan})
    expected = {unknown["id"]: "undefined label 'MISC'", overlap["id"]: "overlapping values",
                nan_doc.id: "meta is not JSON: a number is NaN or Infinity"}
    return docs, preds, expected


def test_batch_with_invalid_records(open_adapter: Any, dataset_name: str, fashion: list[dict[str, Any]]) -> None:
    adapter = open_adapter(dataset_name)
    docs, preds, expected = _batch_with_bad_records(fashion)
    result = adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, LABELS), predictions=preds)
    assert result.created == len(docs) - len(expected)
    failed = dict(result.failed)
    assert set(failed) == set(expected)
    for doc_id, fragment in expected.items():
        assert fragment in failed[doc_id], failed[doc_id]
    pulled = {r.id for r in adapter.pull()}
    assert pulled == {d.id for d in docs} - set(expected)
    for record in adapter.pull():
        assert record.predictions and record.predictions[0].model_version == "m1"

    # the bad ones can be fixed and imported later; the good ones are not touched again
    fixed = [Document(d.id, d.text) for d in docs if d.id in expected]
    good = [d for d in docs[:8] if d.id not in expected][:5]
    again = adapter.import_documents(good + fixed)
    assert (again.created, again.existing, again.failed) == (len(fixed), 5, [])
    assert adapter.count() == len(docs)


class _HidePositions(httpx.BaseTransport):
    """Fault injection: a server that rejects a bulk without saying which record was bad."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bulk_calls: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/records/bulk"):
            self.bulk_calls.append(len(json.loads(request.content)["items"]))
            if response.status_code == 422:
                response.read()
                reason = json.dumps({"detail": "validation failed: " + response.text.split("because", 1)[-1][:200]})
                return httpx.Response(422, content=reason.encode(), headers={"content-type": "application/json"})
        return response


def test_rejected_batch_is_bisected_without_positions(argilla_server: Any, open_adapter: Any, dataset_name: str,
                                                      fashion: list[dict[str, Any]]) -> None:
    adapter = open_adapter(dataset_name)
    adapter.ensure_project(LabelSchema(TaskKind.NER, LABELS))
    transport = _HidePositions()
    adapter.client.transport = transport  # the fault injection wraps the real transport
    docs, preds, expected = _batch_with_bad_records(fashion)
    result = adapter.import_documents(docs, predictions=preds)
    assert result.created == len(docs) - len(expected)
    failed = dict(result.failed)
    assert set(failed) == set(expected)
    assert "undefined label 'MISC'" in failed[next(iter(expected))]
    assert transport.bulk_calls[0] == len(docs) - 1  # one batch (the NaN record never left the client)
    assert len(transport.bulk_calls) > 3  # it was split
    assert sum(1 for _ in adapter.pull()) == result.created


def test_batches_are_sized_for_the_server(argilla_server: Any, open_adapter: Any, dataset_name: str) -> None:
    adapter = open_adapter(dataset_name, query="?batch_size=7")
    transport = _HidePositions()
    adapter.client.transport = transport  # the fault injection wraps the real transport
    docs = [Document(f"d{i}", f"Text number {i} about Zara and H&M.") for i in range(30)]
    preds = {d.id: Prediction("m", spans=[Span(22, 26, "FASHION_BRAND", score=0.4 + i / 100)], score=0.4 + i / 100)
             for i, d in enumerate(docs)}
    result = adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, LABELS), predictions=preds)
    assert (result.created, result.failed) == (30, [])
    assert transport.bulk_calls == [7, 7, 7, 7, 2]
    assert adapter.least_certain(3) == ["d0", "d1", "d2"]
    assert [r.id for r in adapter.pull()] == [d.id for d in docs]


class _ShiftFirstPass(httpx.BaseTransport):
    """Fault injection: on the first listing pass, page 2 repeats a record of page 1 and loses one, as offset
    paging over equal insert times can on PostgreSQL."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.pages: list[int] = []
        self.previous: dict[str, Any] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "GET" or not request.url.path.endswith("/records"):
            return response
        offset = int(request.url.params.get("offset", "0"))
        if request.url.params.get("limit") == "1":
            return response
        self.pages.append(offset)
        response.read()
        body = json.loads(response.content)
        if offset > 0 and self.pages.count(0) == 1 and self.previous is not None and body["items"]:
            body["items"][0] = self.previous
        if body["items"]:
            self.previous = body["items"][-1]
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def test_pull_recovers_from_shifting_pages(argilla_server: Any, open_adapter: Any, dataset_name: str) -> None:
    adapter = open_adapter(dataset_name, query="?page_size=5")
    docs = [Document(f"p{i}", f"Page test {i} with Zara.") for i in range(12)]
    assert adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, LABELS)).created == 12
    transport = _ShiftFirstPass()
    adapter.client.transport = transport  # the fault injection wraps the real transport
    ids = [r.id for r in adapter.pull()]
    assert sorted(ids) == sorted(d.id for d in docs)  # each exactly once
    assert transport.pages.count(0) == 2  # a second pass found the lost record
    assert adapter.skipped == []
