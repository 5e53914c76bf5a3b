"""The adapter contract (annobridge.testing) against a real Argilla 2.8, annotations written with the argilla SDK.

Responses are made the way a team brings annotators' work into Argilla with its own client: ``rg.Response`` objects
carrying each annotator's user id, logged on the record with ``dataset.records.log``. Argilla stores span offsets
in code points (see the Argilla notes), which is what the SDK is given.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import argilla as rg
import pytest

from annobridge.adapter import Adapter
from annobridge.config import AdapterConfig
from annobridge.model import Span
from annobridge.testing import NAN_DOCUMENT, AdapterContract, ContractBackend
from annobridge_argilla import testserver


@pytest.fixture(scope="module")
def team(argilla_server: Any) -> list[Any]:
    """Three annotators: the server's two and one more, created through the REST API as an admin would."""
    users = list(argilla_server.annotators)
    known = {u.username for u in users}
    if "annotator3" not in known:
        users.append(argilla_server.create_user("annotator3"))
    return users[:3]


def sdk_annotate(server: Any, team: list[Any]) -> Any:
    client = rg.Argilla(api_url=server.url, api_key=server.owner.api_key)
    ids = {u.username: u.id for u in team}

    def annotate(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
        dataset = client.datasets(name=adapter.url.path.strip("/").split("/")[-1], workspace=server.workspace)
        assert dataset is not None
        question = next(q for q in dataset.settings.questions)
        record = next(r for r in dataset.records(with_responses=True) if r.id == doc_id)
        if question.type == "span":
            value: Any = [{"start": s.start, "end": s.end, "label": s.label} for s in spans]
        else:
            value = sorted(label for label, v in cats.items() if v)
        record.responses.add(rg.Response(question.name, value, user_id=ids[annotator], status="submitted"))
        dataset.records.log([record])

    return annotate


class TestArgillaContract(AdapterContract):
    @pytest.fixture
    def backend(self, argilla_server: Any, team: list[Any]) -> Iterator[ContractBackend]:
        yield ContractBackend(
            url=f"argilla://{argilla_server.host_port}/{argilla_server.workspace}/contract-{uuid.uuid4().hex[:8]}",
            annotate=sdk_annotate(argilla_server, team),
            config=AdapterConfig({"api_key": argilla_server.owner.api_key}, env={}),
            annotators=(team[0].username, team[1].username, team[2].username),
            bad_document=NAN_DOCUMENT,
            ground_truth=False,
            settle=0.05,
            restart=argilla_server.restart,
            server_version=f"argilla-server {testserver.SERVER_VERSION}",
            offline_url="argilla://127.0.0.1:{port}/team/news",
            offline_env={"ARGILLA_API_KEY": "cli-key-" + secrets.token_hex(16)},
        )
