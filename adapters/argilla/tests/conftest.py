"""One real Argilla 2.8 server per test session (annobridge_argilla.testserver says what runs and why)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge_argilla import ArgillaAdapter, testserver

server_module = testserver
ArgillaServer = testserver.ArgillaServer

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "argilla"


@pytest.fixture(scope="session")
def argilla_server() -> Iterator[Any]:
    server = server_module.start()
    try:
        yield server
    finally:
        server.stop()


def make_adapter(server: Any, dataset: str, api_key: str | None = None, query: str = "") -> ArgillaAdapter:
    url = AdapterURL.parse(f"argilla://{server.host_port}/{server.workspace}/{dataset}{query}")
    return ArgillaAdapter(url, AdapterConfig({"api_key": api_key or server.owner.api_key}, env={}))


@pytest.fixture
def dataset_name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def load_jsonl(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture
def open_adapter(argilla_server: Any) -> Iterator[Any]:
    """``open_adapter(dataset, api_key=None, query="")`` -> ArgillaAdapter; all are closed afterwards."""
    opened: list[ArgillaAdapter] = []

    def factory(dataset: str, api_key: str | None = None, query: str = "") -> ArgillaAdapter:
        adapter = make_adapter(argilla_server, dataset, api_key, query)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        adapter.close()


@pytest.fixture(scope="session")
def fashion() -> list[dict[str, Any]]:
    return load_jsonl("fashion_brands_sample.jsonl")


@pytest.fixture(scope="session")
def sms() -> list[dict[str, Any]]:
    return load_jsonl("sms_spam_sample.jsonl")
