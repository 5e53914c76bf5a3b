"""One real doccano 1.8.4 server per test session (annobridge_doccano.testserver); helpers acting as its users."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from annobridge.adapter import AdapterURL  # noqa: E402
from annobridge.config import AdapterConfig  # noqa: E402
from annobridge_doccano import DoccanoAdapter, testserver  # noqa: E402

server_module = testserver


@pytest.fixture(name="server_module", scope="session")
def server_module_fixture() -> Any:
    return server_module


@pytest.fixture(scope="session")
def doccano_server() -> Iterator[Any]:
    """One server per session; ANNOBRIDGE_DOCCANO_CELERY=eager runs tasks in-request instead of a worker."""
    mode = os.environ.get("ANNOBRIDGE_DOCCANO_CELERY", "worker")
    server = server_module.DoccanoServer.start(mode=mode, n_annotators=3)  # the contract suite needs three
    try:
        yield server
    finally:
        server.stop()


_names = itertools.count(1)


class UserSession:
    """What the doccano UI does for one user, over the same REST API (token auth, UTF-16 offsets)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        token = httpx.post(f"{base_url}/v1/auth/login/", json={"username": username, "password": password}).json()
        self.username = username
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Token {token['key']}", "Accept": "application/json"},
            timeout=30,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        self.http.cookies.clear()
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:200]}"
        return response.json() if response.content else None

    def types(self, project: int, kind: str) -> dict[str, int]:
        return {t["text"]: t["id"] for t in self.call("GET", f"/v1/projects/{project}/{kind}-types")}

    def add_span(self, project: int, example: int, start16: int, end16: int, label: str) -> dict[str, Any]:
        label_id = self.types(project, "span")[label]
        body = {"label": label_id, "start_offset": start16, "end_offset": end16}
        return dict(self.call("POST", f"/v1/projects/{project}/examples/{example}/spans", json=body))

    def add_category(self, project: int, example: int, label: str) -> dict[str, Any]:
        label_id = self.types(project, "category")[label]
        body = {"label": label_id}
        return dict(self.call("POST", f"/v1/projects/{project}/examples/{example}/categories", json=body))

    def labels(self, project: int, example: int, kind: str = "spans") -> list[dict[str, Any]]:
        return list(self.call("GET", f"/v1/projects/{project}/examples/{example}/{kind}"))

    def delete_label(self, project: int, example: int, label_id: int, kind: str = "spans") -> None:
        self.call("DELETE", f"/v1/projects/{project}/examples/{example}/{kind}/{label_id}")

    def confirm(self, project: int, example: int) -> None:
        self.call("POST", f"/v1/projects/{project}/examples/{example}/states", json={})

    def close(self) -> None:
        self.http.close()


@pytest.fixture()
def make_adapter(doccano_server: Any) -> Iterator[Any]:
    """``make_adapter(collaborative=..., **params)`` -> a DoccanoAdapter on a new project name."""
    adapters: list[DoccanoAdapter] = []

    def make(**params: Any) -> DoccanoAdapter:
        query = {"name": f"test-{os.getpid()}-{next(_names)}", "annotators": "annotator1,annotator2", **params}
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        config = AdapterConfig(
            {"username": doccano_server.admin.username, "password": doccano_server.admin.password}, env={}
        )
        adapter = DoccanoAdapter(AdapterURL.parse(f"{doccano_server.url}/projects/new?{qs}"), config)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


@pytest.fixture()
def annotators(doccano_server: Any) -> Iterator[list[UserSession]]:
    """Sessions for the first two annotators (the third is the contract suite's)."""
    sessions = [UserSession(doccano_server.base_url, c.username, c.password) for c in doccano_server.annotators[:2]]
    yield sessions
    for session in sessions:
        session.close()
