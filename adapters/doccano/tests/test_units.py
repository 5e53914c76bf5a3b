"""Doccano adapter parts that need no server: URLs, credentials, cursors."""

from __future__ import annotations

from pathlib import Path

import pytest

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge.cursor import DigestCursor
from annobridge.errors import UsageError
from annobridge_doccano import DoccanoAdapter

CREDS = AdapterConfig({"username": "u", "password": "p"}, env={})


def make(url: str, config: AdapterConfig = CREDS) -> DoccanoAdapter:
    return DoccanoAdapter(AdapterURL.parse(url), config)


def test_url_forms() -> None:
    adapter = make("doccano://127.0.0.1:8000/projects/7")
    assert adapter.project_id == 7 and adapter.client.base_url == "http://127.0.0.1:8000"
    adapter = make("doccano://127.0.0.1:8000/projects/new?name=news&collaborative=true")
    assert adapter.project_id is None and adapter.new_name == "news"
    assert make("doccano://doccano.example.org/projects/1").client.base_url.startswith("https://")
    for bad in ("doccano://127.0.0.1:8000/", "doccano://127.0.0.1:8000/projects/new", "doccano://h/projects/x"):
        with pytest.raises(UsageError):
            make(bad)


def test_credentials_from_env_and_never_shown() -> None:
    config = AdapterConfig({}, env={"DOCCANO_USERNAME": "alice", "DOCCANO_PASSWORD": "s3cret-pass"})
    adapter = make("doccano://127.0.0.1:8000/projects/1", config)
    assert adapter.username == "alice"
    assert "s3cret-pass" not in repr(vars(adapter.client))
    with pytest.raises(UsageError, match="DOCCANO_USERNAME"):
        make("doccano://127.0.0.1:8000/projects/1", AdapterConfig({}, env={}))


def test_cursor_round_trip_inline_and_spilled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """doccano's cursors are the kit's DigestCursor: a digest per (example, member), spilled to a file when long."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def encode(digests: dict[str, str]) -> str:
        cursor = DigestCursor("doccano", 3)
        cursor.digests = digests
        return cursor.encode()

    small = {"1/ann": "abc"}
    cursor = encode(small)
    assert cursor.startswith("doccano-cursor:v1:") and "file:" not in cursor
    assert DigestCursor.resume(cursor, kind="doccano", owner=3).previous == small
    big = {f"{i}/annotator{i % 3}": f"{i * 7919:012x}" for i in range(5000)}
    cursor = encode(big)
    assert len(cursor) < 100 and "file:" in cursor
    assert DigestCursor.resume(cursor, kind="doccano", owner=3).previous == big
    with pytest.raises(UsageError, match="project 3"):
        DigestCursor.resume(cursor, kind="doccano", owner=4)
    for path in (tmp_path / "annobridge" / "doccano-cursors").iterdir():
        path.unlink()
    with pytest.raises(UsageError, match="full pull"):
        DigestCursor.resume(cursor, kind="doccano", owner=3)


def test_cursor_of_an_earlier_version_still_reads() -> None:
    """A cursor written before the kit had DigestCursor (owner under "project") resumes as before."""
    import base64
    import json
    import zlib

    state = {"project": 3, "d": {"5": "0123456789ab"}, "s": {"t": 10}, "c": [5]}
    old = "doccano-cursor:v1:" + base64.urlsafe_b64encode(zlib.compress(json.dumps(state).encode())).decode()
    cursor = DigestCursor.resume(old, kind="doccano", owner=3)
    assert cursor.previous == {"5": "0123456789ab"} and cursor.state == {"s": {"t": 10}, "c": [5]}


def test_registered_as_plugin() -> None:
    from annobridge.plugins import adapter_class, open_adapter

    assert adapter_class("doccano") is DoccanoAdapter
    adapter = open_adapter("doccano://127.0.0.1:8000/projects/2", CREDS)
    assert isinstance(adapter, DoccanoAdapter) and adapter.project_id == 2


def test_url_options_are_typed() -> None:
    """Options come from the URL over the config file; a misspelt one or a bad value is refused by name."""
    adapter = make("doccano://127.0.0.1:8000/projects/new?name=n&collaborative=yes&threshold=0.7")
    assert (adapter.options.collaborative, adapter.options.threshold, adapter.options.confirmed) == (True, 0.7, "all")
    with pytest.raises(UsageError, match=r"unknown URL option colaborative \(known: annotators, collaborative"):
        make("doccano://127.0.0.1:8000/projects/new?name=n&colaborative=true")
    with pytest.raises(UsageError, match=r"threshold: Input should be less than or equal to 1"):
        make("doccano://127.0.0.1:8000/projects/3?threshold=5")
    from_file = make("doccano://127.0.0.1:8000/projects/3",
                     AdapterConfig({"username": "u", "password": "p" * 12, "exact": "true"}, env={}))
    assert from_file.options.exact is True
