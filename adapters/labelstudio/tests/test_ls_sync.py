"""Pulls that survive a server restart, incremental pulls with deletions, retried imports without duplicates."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest
from ls_helpers import LabelStudioServer, adapter_for, post_annotation, ui_span

from annobridge.config import Secret
from annobridge.model import Answer, Document, LabelSchema, Prediction, Span, TaskKind
from annobridge_labelstudio import LabelStudioAdapter
from annobridge_labelstudio.client import LabelStudioClient

pytestmark = pytest.mark.server

SCHEMA = LabelSchema(TaskKind.NER, ["PER", "ORG"])


def _bulk_annotated_project(server: LabelStudioServer, url: str, n: int, text_len: int) -> LabelStudioAdapter:
    """``n`` tasks, each with one annotation by each annotator, imported in one request (fast to set up)."""
    adapter = adapter_for(server, url)
    pid = adapter.ensure_project(SCHEMA)
    filler = " lorem ipsum" * (text_len // 12)
    tasks = []
    for i in range(n):
        text = f"Ada Lovelace {i} wrote for Babbage Ltd.{filler}"
        result = [{"from_name": "label", "to_name": "text", "type": "labels",
                   "value": {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["PER"]}}]
        tasks.append({"data": {"text": text, "annobridge_id": f"doc-{i}"},
                      "annotations": [{"result": result, "completed_by": u.id, "lead_time": 1.0}
                                      for u in server.annotators],
                      "predictions": [{"model_version": "m1", "score": 0.5, "result": result}]})
    resp = httpx.post(f"{server.url}/api/projects/{pid}/import", json=tasks,
                      headers={"Authorization": f"Token {server.admin.token}"}, timeout=300)
    assert resp.status_code == 201, resp.text
    return adapter


def _check_complete(records: list[Any], n: int, server: LabelStudioServer) -> None:
    ids = Counter(r.id for r in records)
    assert len(ids) == n, f"lost {n - len(ids)} records"
    assert max(ids.values()) == 1, f"doubled: {[k for k, v in ids.items() if v > 1][:5]}"
    for r in records:
        assert sorted(a.annotator for a in r.annotations) == sorted(u.email for u in server.annotators)
        assert all(a.spans[0].key == (0, 12, "PER") for a in r.annotations)


def _kill_and_restart(server: LabelStudioServer) -> threading.Thread:
    server.kill()
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    return thread


def test_full_pull_survives_server_restart(ls_server: LabelStudioServer, new_project_url: str) -> None:
    # Big enough (several MB) that the download is still streaming when the server dies.
    n = 500
    adapter = _bulk_annotated_project(ls_server, new_project_url, n, text_len=10000)
    records = []
    restarted: threading.Thread | None = None
    for record in adapter.pull():
        records.append(record)
        if len(records) == 10:
            restarted = _kill_and_restart(ls_server)
    assert restarted is not None
    restarted.join(timeout=300)
    _check_complete(records, n, ls_server)
    print(f"resumed downloads: {adapter.resumed}, retried requests: {adapter.client.retries}")
    # The pull really had to recover: a broken download resumed, or requests were retried.
    assert adapter.resumed + adapter.client.retries > 0
    adapter.close()


def test_incremental_pull_survives_server_restart(ls_server: LabelStudioServer, new_project_url: str) -> None:
    n = 300  # three pages of 100
    adapter = _bulk_annotated_project(ls_server, new_project_url, n, text_len=100)
    adapter.page_size = 100
    records = []
    restarted: threading.Thread | None = None
    for record in adapter.pull(since="2000-01-01T00:00:00Z"):
        records.append(record)
        if len(records) == 150:  # in the middle of the second page: the third page's request hits a dead server
            restarted = _kill_and_restart(ls_server)
    assert restarted is not None
    restarted.join(timeout=300)
    _check_complete(records, n, ls_server)
    assert adapter.client.retries > 0
    adapter.close()


def test_incremental_pull_new_changed_deleted(ls_server: LabelStudioServer, new_project_url: str) -> None:
    adapter = adapter_for(ls_server, new_project_url)
    docs = [Document(f"inc-{i}", f"Grace Hopper joined Remington Rand in year {i}.") for i in range(6)]
    tasks = adapter.import_documents(docs, schema=SCHEMA).native_ids
    ann1, ann2, _ = ls_server.annotators
    per = ui_span(0, 12, "Grace Hopper", "PER", "a")
    org = ui_span(20, 35, "Remington Rand", "ORG", "b")
    first = {d.id: post_annotation(ls_server, ann1, tasks[d.id], [per]) for d in docs[:4]}
    full = list(adapter.pull())
    assert len(full) == 6 and sum(len(r.annotations) for r in full) == 4
    cursor = adapter.cursor

    # Nothing changed: nothing to yield.
    assert list(adapter.pull(since=cursor)) == []
    cursor = adapter.cursor

    # One new, one edited, one deleted, one skipped; a prediction push alone is not an annotation change.
    import time
    from datetime import datetime, timezone

    time.sleep(1.1)
    changes_start = datetime.now(timezone.utc)
    headers = {"Authorization": f"Token {ls_server.admin.token}"}
    post_annotation(ls_server, ann2, tasks["inc-0"], [per, org])
    resp = httpx.patch(f"{ls_server.url}/api/annotations/{first['inc-1']['id']}/", json={"result": [per, org]},
                       headers={"Authorization": f"Token {ann1.token}"}, timeout=60)
    assert resp.status_code == 200, resp.text
    resp = httpx.delete(f"{ls_server.url}/api/annotations/{first['inc-2']['id']}/", headers=headers, timeout=60)
    assert resp.status_code == 204, resp.text
    post_annotation(ls_server, ann2, tasks["inc-5"], [], was_cancelled=True)
    adapter.push_predictions([(docs[3], Prediction("m9", [Span(0, 12, "PER", score=0.3)]))])

    changed = {r.id: r for r in adapter.pull(since=cursor)}
    assert set(changed) == {"inc-0", "inc-1", "inc-2", "inc-5"}
    assert [a.annotator for a in changed["inc-0"].annotations] == [ann2.email]
    assert [sorted(s.label for s in a.spans) for a in changed["inc-1"].annotations] == [["ORG", "PER"]]
    assert changed["inc-2"].annotations == []
    assert changed["inc-2"].native_ids["deleted_annotation_ids"] == [first["inc-2"]["id"]]
    assert adapter.deleted == [("inc-2", first["inc-2"]["id"])]
    assert [a.answer for a in changed["inc-5"].annotations] == [Answer.SKIP]

    # The cursor moved past all of it (and survives JSON, as the CLI stores it).
    import json

    cursor = json.loads(json.dumps(adapter.cursor))
    assert cursor["complete"] is True
    assert list(adapter.pull(since=cursor)) == []
    assert list(adapter.pull(since=json.dumps(adapter.cursor))) == []  # the same cursor as JSON text
    assert str(adapter.cursor) == adapter.cursor["watermark"]  # what the CLI prints for --since

    # A plain time instead of a cursor: annotations updated since then; deletions cannot be named without a cursor.
    by_time = {r.id: r for r in adapter.pull(since=changes_start)}
    assert set(by_time) == {"inc-0", "inc-1", "inc-5"}
    assert adapter.deleted == [] and adapter.cursor["complete"] is False
    adapter.close()


class _FlakyTransport(httpx.HTTPTransport):
    """Fault injection on top of the real server: the request reaches Label Studio and is applied, then the
    connection 'drops' before the answer arrives (or a GET gets one 502), as a proxy or a crash would do."""

    def __init__(self, drop_after: set[str]) -> None:
        super().__init__()
        self.drop_after = drop_after
        self.dropped: list[str] = []
        self.bad_gateway_once = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path == "/api/tasks/" and self.bad_gateway_once:
            self.bad_gateway_once = False
            self.dropped.append("502 " + path)
            return httpx.Response(502, text="Bad Gateway", request=request)
        response = super().handle_request(request)
        for suffix in list(self.drop_after):
            if request.method == "POST" and path.endswith(suffix):
                response.read()
                response.close()
                self.drop_after.discard(suffix)
                self.dropped.append(path)
                raise httpx.ReadError("connection reset by peer (injected)", request=request)
        return response


def test_retried_chunks_create_nothing_twice(ls_server: LabelStudioServer, new_project_url: str) -> None:
    flaky = _FlakyTransport({"/import", "/import/predictions"})
    client = LabelStudioClient(ls_server.url, Secret(ls_server.admin.token), transport=flaky, retry_for=60)
    adapter = adapter_for(ls_server, new_project_url, client=client)
    adapter.ensure_project(SCHEMA)
    adapter.chunk_size = 40
    docs = [Document(f"flaky-{i}", f"Alan Turing visited Bletchley Park {i}") for i in range(100)]
    # Documents go in first (so the prediction push below takes the bulk-predictions path for all of them).
    result = adapter.import_documents(docs[:60])
    assert result.created == 60 and result.failed == []
    result = adapter.import_documents(docs)  # the first 60 are found again, the other 40 are new
    assert (result.created, result.existing) == (40, 60)
    pushed = adapter.push_predictions([(d, Prediction("m1", [Span(0, 11, "PER", score=0.7)])) for d in docs])
    assert pushed.created == 100 and pushed.existing == 0
    assert set(flaky.dropped) == {"502 /api/tasks/", f"/api/projects/{adapter.project_id}/import",
                                  f"/api/projects/{adapter.project_id}/import/predictions"}
    records = list(adapter.pull())
    assert Counter(r.id for r in records) == Counter(d.id for d in docs)
    assert all(len(r.predictions) == 1 for r in records)
    assert adapter.count() == 100
    adapter.close()
