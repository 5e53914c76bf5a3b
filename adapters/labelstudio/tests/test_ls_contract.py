"""The adapter contract (annobridge.testing) against a real Label Studio, annotations made with label-studio-sdk.

Each annotator labels with **their own token** through the SDK's ``annotations.create``, the call Label Studio's
own client makes; regions carry code point offsets and their text, as the 1.23 web UI stores them.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import pytest
from label_studio_sdk import LabelStudio

from annobridge.adapter import Adapter
from annobridge.config import AdapterConfig
from annobridge.model import Span
from annobridge.testing import NAN_DOCUMENT, AdapterContract, ContractBackend
from annobridge_labelstudio.testserver import LS_VERSION, LabelStudioServer

_titles = itertools.count(1)


def sdk_annotate(server: LabelStudioServer) -> Any:
    clients = {user.email: LabelStudio(base_url=server.url, api_key=user.token) for user in server.annotators}

    def annotate(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
        client = clients[annotator]
        pid = adapter.project_id  # type: ignore[attr-defined]  # set: the contract's fixture ensured the project
        config = client.projects.get(id=pid).parsed_label_config or {}
        control, spec = next((name, c) for name, c in config.items() if c.get("type") in ("Labels", "Choices"))
        to_name = spec["to_name"][0]
        task = next(t for t in client.tasks.list(project=pid) if (t.data or {}).get("annobridge_id") == doc_id)
        result: list[dict[str, Any]] = [
            {"id": f"r{k}", "from_name": control, "to_name": to_name, "type": "labels", "origin": "manual",
             "value": {"start": s.start, "end": s.end, "text": s.text, "labels": [s.label]}}
            for k, s in enumerate(spans)
        ]
        result += [{"id": f"c{k}", "from_name": control, "to_name": to_name, "type": "choices", "origin": "manual",
                    "value": {"choices": [label]}} for k, label in enumerate(sorted(c for c, v in cats.items() if v))]
        client.annotations.create(id=task.id, result=result, lead_time=4.2, was_cancelled=False)

    return annotate


class TestLabelStudioContract(AdapterContract):
    @pytest.fixture
    def backend(self, ls_server: LabelStudioServer) -> ContractBackend:
        emails = tuple(user.email for user in ls_server.annotators)
        assert len(emails) == 3
        return ContractBackend(
            url=ls_server.adapter_url("new") + f"?title=contract-{next(_titles)}",
            annotate=sdk_annotate(ls_server),
            config=AdapterConfig({"api_key": ls_server.admin.token}, env={}),
            annotators=(emails[0], emails[1], emails[2]),
            bad_document=NAN_DOCUMENT,
            settle=1.1,  # updated_at filters compare at one-second resolution
            restart=ls_server.restart,
            server_version=f"label-studio {LS_VERSION}",
            offline_url="labelstudio://127.0.0.1:{port}/projects/1",
            offline_env={"LABEL_STUDIO_API_KEY": "cli-token-" + secrets.token_hex(16)},
        )
