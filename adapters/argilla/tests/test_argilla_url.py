"""URL and credential handling (no server needed)."""

from __future__ import annotations

import pytest

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge.errors import UsageError
from annobridge.plugins import adapter_class
from annobridge_argilla import ArgillaAdapter


def _open(url: str, env: dict[str, str] | None = None, section: dict[str, str] | None = None) -> ArgillaAdapter:
    return ArgillaAdapter(AdapterURL.parse(url), AdapterConfig(section or {}, env=env or {}))


def test_registered_through_the_entry_point() -> None:
    assert adapter_class("argilla") is ArgillaAdapter


def test_url_forms() -> None:
    adapter = _open("argilla://127.0.0.1:6900/team/news?batch_size=9999&page_size=50")
    assert (adapter.base_url, adapter.workspace, adapter.dataset_name) == ("http://127.0.0.1:6900", "team", "news")
    assert (adapter.batch_size, adapter.page_size) == (500, 50)  # capped at the server's bulk limit
    assert _open("argilla://argilla.example.org/team/news").base_url == "https://argilla.example.org"
    # plain http to a remote host from the environment: refused, as it is from the URL, unless +http says so
    with pytest.raises(UsageError, match="ARGILLA_API_URL uses plain http"):
        _open("argilla:///team/news", env={"ARGILLA_API_URL": "http://10.0.0.5:6900/"})
    from_env = _open("argilla+http:///team/news", env={"ARGILLA_API_URL": "http://10.0.0.5:6900/"})
    assert from_env.base_url == "http://10.0.0.5:6900"
    assert _open("argilla:///team/news", env={"ARGILLA_API_URL": "http://127.0.0.1:6900"}).base_url == (
        "http://127.0.0.1:6900")
    with pytest.raises(UsageError, match="plain http"):
        _open("argilla:///team/news", section={"url": "http://argilla.example.org"})
    with pytest.raises(UsageError, match="WORKSPACE/DATASET"):
        _open("argilla://127.0.0.1:6900/only-one-part")
    with pytest.raises(UsageError, match="ARGILLA_API_URL"):
        _open("argilla:///team/news")


def test_key_from_env_wins_and_is_never_shown() -> None:
    adapter = _open("argilla://127.0.0.1:6900/t/d", env={"ARGILLA_API_KEY": "env-secret-1"},
                    section={"api_key": "file-secret-2"})
    assert adapter.api_key is not None and adapter.api_key.reveal() == "env-secret-1"
    assert "env-secret-1" not in repr(adapter) and "env-secret-1" not in str(adapter.api_key)
    with pytest.raises(UsageError, match="ARGILLA_API_KEY"):
        _ = _open("argilla://127.0.0.1:6900/t/d").client
    assert "env-secret-1" not in repr(adapter.client) and "env-secret-1" not in repr(vars(adapter.client))


def test_a_malformed_span_is_a_dropped_span_not_a_skipped_record() -> None:
    adapter = _open("argilla://127.0.0.1:6900/t/d", env={"ARGILLA_API_KEY": "k" * 20})
    text = "Zara opened in Paris"
    spans, notes = adapter._spans(text, [{"start": 0, "end": 4, "label": "BRAND"}, {"start": None, "label": "X"}],
                                  "d/doc-1/ann", "doc-1")
    assert [(s.key, s.text) for s in spans] == [((0, 4, "BRAND"), "Zara")] and notes == []
    assert adapter.span_notes == [("doc-1", "dropped", "span without usable offsets")]
    assert adapter.skipped == []
