"""Helpers for the Label Studio tests: adapters with explicit keys, test data, annotations posted as the UI does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge.model import Document, Span
from annobridge.testserver import free_port
from annobridge_labelstudio import LabelStudioAdapter
from annobridge_labelstudio.testserver import LabelStudioServer, ServerUser

__all__ = ["DATA", "LabelStudioServer", "ServerUser", "adapter_for", "free_port", "load_docs", "post_annotation",
           "ui_span"]

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "labelstudio"


def adapter_for(server: Any, path: str, token: str | None = None, **kwargs: Any) -> LabelStudioAdapter:
    """An adapter whose key comes from an explicit config (no environment leaks into tests)."""
    config = AdapterConfig({"api_key": token or server.admin.token}, env={})
    return LabelStudioAdapter(AdapterURL.parse(f"labelstudio://127.0.0.1:{server.port}{path}"), config, **kwargs)


def load_docs(name: str) -> list[tuple[Document, list[Span]]]:
    rows = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        (Document(r["id"], r["text"]), [Span(s["start"], s["end"], s["label"]) for s in r["spans"]]) for r in rows
    ]


def post_annotation(server: Any, user: Any, task_id: int, result: list[dict[str, Any]],
                    **extra: Any) -> dict[str, Any]:
    """What the UI sends when an annotator presses Submit (or Skip): its own token, region ids, lead time."""
    body = {"result": result, "lead_time": extra.pop("lead_time", 7.5), "draft_id": 0, "parent_prediction": None,
            "parent_annotation": None, "started_at": "2026-01-01T00:00:00.000Z", **extra}
    resp = httpx.post(f"{server.url}/api/tasks/{task_id}/annotations/", json=body,
                      headers={"Authorization": f"Token {user.token}"}, timeout=60)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def ui_span(start: int, end: int, text: str, label: str, region: str, from_name: str = "label") -> dict[str, Any]:
    return {"id": region, "from_name": from_name, "to_name": "text", "type": "labels", "origin": "manual",
            "value": {"start": start, "end": end, "text": text, "labels": [label]}}
