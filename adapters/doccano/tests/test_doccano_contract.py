"""The adapter contract (annobridge.testing) against a real doccano 1.8.4, annotated by REST calls as its UI makes them.

doccano's web UI (JavaScript) sends span offsets in UTF-16 code units; ``annotate`` converts the contract's code
points the same way, so the emoji / ZWJ / astral-repeat texts test the adapter's unit handling for real.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from conftest import UserSession

from annobridge.adapter import Adapter
from annobridge.config import AdapterConfig
from annobridge.model import Span
from annobridge.testing import NAN_DOCUMENT, AdapterContract, ContractBackend

_names = itertools.count(1)


def utf16(text: str, offset: int) -> int:
    return len(text[:offset].encode("utf-16-le")) // 2


def ui_annotate(server: Any) -> Any:
    sessions: dict[str, UserSession] = {}

    def annotate(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
        if annotator not in sessions:
            cred = next(c for c in server.annotators if c.username == annotator)
            sessions[annotator] = UserSession(server.base_url, cred.username, cred.password)
        user = sessions[annotator]
        pid = adapter.project_id  # type: ignore[attr-defined]  # the contract's fixture ensured the project
        # the UI's example list, paged as the UI pages it; the document is found by the id it was imported with
        offset, example = 0, None
        while example is None:
            page = user.call("GET", f"/v1/projects/{pid}/examples", params={"limit": 10, "offset": offset})
            example = next((e for e in page["results"] if (e.get("meta") or {}).get("annobridge_id") == doc_id), None)
            if page["next"] is None:
                break
            offset += 10
        assert example is not None, f"{doc_id} is not in doccano project {pid}"
        text = example["text"]
        for span in spans:
            user.add_span(pid, example["id"], utf16(text, span.start), utf16(text, span.end), span.label)
        for label, value in cats.items():
            if value:
                user.add_category(pid, example["id"], label)
        user.confirm(pid, example["id"])

    annotate.sessions = sessions  # type: ignore[attr-defined]
    return annotate


class TestDoccanoContract(AdapterContract):
    """A non-collaborative project: each member labels privately, so each annotator's work comes back apart.

    (In a collaborative project the members edit one shared set of labels, and doccano refuses a second,
    overlapping copy of a span; test_doccano.py covers that mode.)
    """

    @pytest.fixture
    def backend(self, doccano_server: Any) -> Any:
        names = tuple(c.username for c in doccano_server.annotators)
        assert len(names) == 3
        query = (f"name=contract-{os.getpid()}-{next(_names)}&annotators={','.join(names)}"
                 "&private_predictions=true")
        annotate = ui_annotate(doccano_server)
        yield ContractBackend(
            url=f"{doccano_server.url}/projects/new?{query}",
            annotate=annotate,
            config=AdapterConfig(
                {"username": doccano_server.admin.username, "password": doccano_server.admin.password}, env={}
            ),
            annotators=(names[0], names[1], names[2]),
            bad_document=NAN_DOCUMENT,
            settle=0.05,
            restart=doccano_server.restart_web,
        )
        for session in annotate.sessions.values():
            session.close()
