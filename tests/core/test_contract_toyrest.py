"""The adapter contract (annobridge.testing) for the ToyREST example plugin, against a real ToyREST server.

The plugin (``examples/plugin-toyrest``) is pip-installed as a third party would install it; its toy server
runs in a thread on a free loopback port, and annotations are created the way ToyREST's web UI creates them:
REST calls with UTF-16 offsets, computed here from code points as a JavaScript front end would.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
import spacy
from spacy.tokens import DocBin

pytest.importorskip("httpx")  # the kit's HTTP layer (annobridge.http), which the plugin depends on
pytest.importorskip("tenacity")

from annobridge.adapter import Adapter
from annobridge.errors import AdapterError, UsageError
from annobridge.export import export
from annobridge.http import AmbiguousWrite
from annobridge.model import Document, Span
from annobridge.plugins import open_adapter
from annobridge.testing import UNICODE_TEXTS, AdapterContract, ContractBackend, entity

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin-toyrest"
#: made up per test run, so a leak is this exact string and nothing else
TOKEN = "toy-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def toyrest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The example plugin, pip-installed as a third party would install it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
        check=True,
    )
    sys.path.insert(0, str(target))
    from annobridge.plugins import get_registry

    get_registry.cache_clear()  # found through its entry point, like any installed plugin
    import annobridge_toyrest

    assert str(target) in str(annobridge_toyrest.__file__)  # the installed copy, not the source tree
    yield annobridge_toyrest
    sys.path.remove(str(target))


@pytest.fixture(scope="module")
def server(toyrest: ModuleType) -> Iterator[Any]:
    from annobridge_toyrest.toyserver import ToyServer

    toy = ToyServer(TOKEN).start()
    yield toy
    toy.stop()


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch, server: Any) -> Any:
    """The token as a user gives it; the server is reset to behave."""
    monkeypatch.setenv("TOYREST_TOKEN", TOKEN)
    server.fail_first, server.fail_method, server.echo_headers, server.retry_after = 0, None, False, "1"
    return server


# -- ToyREST's web UI, as REST calls (its own client, not the kit's) -------------------------------------


def ui(server: Any, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def new_project(server: Any, name: str = "contract") -> str:
    project = ui(server, "POST", "/api/projects", {"name": name, "task": "ner", "labels": ["PERSON", "GPE", "ORG"]})
    return f"toyrest://127.0.0.1:{server.port}/projects/{project['id']}"


def utf16(text: str, offset: int) -> int:
    """A code-point offset as JavaScript's String counts it (UTF-16 code units)."""
    return len(text[:offset].encode("utf-16-le")) // 2


def annotate_in_ui(server: Any) -> Any:
    def annotate(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
        project = adapter.url.path.rstrip("/").split("/")[-1]
        tasks = ui(server, "GET", f"/api/projects/{project}/tasks?page=1&limit=10000")["tasks"]
        task = next(t for t in tasks if t["external_id"] == doc_id)
        text = task["text"]
        result = [{"start": utf16(text, s.start), "end": utf16(text, s.end), "label": s.label,
                   "text": text[s.start : s.end]} for s in spans]
        ui(server, "POST", f"/api/tasks/{task['id']}/annotations", {"annotator": annotator, "result": result})

    return annotate


class TestToyRestContract(AdapterContract):
    @pytest.fixture
    def backend(self, server: Any, toyrest: ModuleType) -> ContractBackend:
        # page_size=2: every pull of the contract's five documents takes three pages
        return ContractBackend(
            url=new_project(server) + "?page_size=2",
            annotate=annotate_in_ui(server),
            bad_document=Document.create("", id="contract-empty"),
            settle=0.01,
            restart=server.restart,
            offline_url="toyrest://127.0.0.1:{port}/projects/1",
            offline_env={"TOYREST_TOKEN": TOKEN},
            # the CLI process finds the plugin where this test installed it
            cli_env={"PYTHONPATH": str(Path(toyrest.__file__).resolve().parents[1])},
        )


# -- what only a real server shows ------------------------------------------------------------------------


def _docs() -> list[Document]:
    return [Document.create(text, id=f"emoji-{i}") for i, (text, _) in enumerate(UNICODE_TEXTS)]


def test_the_ui_really_writes_utf16(server: Any) -> None:
    """Guard for the tests below: after an emoji, the stored offsets are not code points."""
    url = new_project(server)
    with open_adapter(url) as adapter:
        text = UNICODE_TEXTS[1][0]
        adapter.import_documents([Document.create(text, id="u16")])
        span = entity(text, "Norway", "GPE")
        annotate_in_ui(server)(adapter, "u16", "alice", [span], {})
        (record,) = adapter.pull()
    (got,) = record.annotations[0].spans
    # 😀 and the two regional indicators of 🇳🇴 are astral: two UTF-16 units each
    assert (got.start, got.end) == (span.start + 3, span.end + 3) and got.text == "Norway"
    assert record.annotations[0].meta["offset_units"] == "utf16"


def test_token_echoed_by_the_server_never_leaks(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    server.echo_headers = True
    url = new_project(server)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG), open_adapter(url) as adapter:
        # a refused batch: the 400 body names the task and echoes the token
        result = adapter.import_documents([Document.create("ok", id="a"), Document.create(" ", id="blank")])
        assert result.created == 1 and [d for d, _ in result.failed] == ["blank"]
        seen += [reason for _, reason in result.failed]
        # a 404 on the project
        missing = open_adapter(url.rsplit("/", 1)[0] + "/999999")
        with pytest.raises(AdapterError) as err:
            list(missing.pull())
        seen.append(str(err.value))
        # 503s: retried (log lines), then a POST the kit will not repeat (its excerpt carries the echo)
        server.retry_after = "0"
        server.fail_first = 2
        assert [r.id for r in adapter.pull()] == ["a"]
        server.fail_first, server.fail_method = 1, "POST"
        with pytest.raises(AmbiguousWrite) as ambiguous:
            adapter.import_documents([Document.create("later", id="b")])
        seen.append(str(ambiguous.value))
        seen += [repr(adapter), repr(cast(Any, adapter).client), repr(cast(Any, adapter).client.auth), str(adapter.url),
                 repr(adapter.config.secret("token", env="TOYREST_TOKEN"))]
    # a wrong token: the 401 echoes the wrong one, which the client registered as a secret too
    wrong = "wrong-" + secrets.token_hex(8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOYREST_TOKEN", wrong)
        with open_adapter(url) as bad, pytest.raises(AdapterError) as refused:
            list(bad.pull())
    assert "check TOYREST_TOKEN" in str(refused.value)
    seen.append(str(refused.value))
    seen += [record.getMessage() for record in caplog.records]
    # the server really did echo both tokens (otherwise this test could not fail)
    assert any(TOKEN in body for body in server.error_bodies) and any(wrong in body for body in server.error_bodies)
    assert any("***" in text for text in seen)
    for text in seen:
        assert TOKEN not in text and wrong not in text, text
    assert cast(Any, adapter).client.retries == 2


def test_503_then_ok_is_retried_after_retry_after(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    url = new_project(server)
    with open_adapter(url + "?page_size=2") as adapter:
        adapter.import_documents(_docs())
        server.fail_first, server.retry_after = 2, "1"
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="annobridge.http"):
            ids = sorted(r.id for r in adapter.pull())
        elapsed = time.monotonic() - started
        assert ids == sorted(d.id for d in _docs())
        assert cast(Any, adapter).client.retries == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "annobridge.http"]
    assert len(lines) == 2 and all("(HTTP 503)" in line and "retrying GET" in line for line in lines), lines
    assert elapsed >= 1.8, elapsed  # Retry-After: 1, twice, was honoured


def test_export_puts_every_entity_exactly_on_its_text(server: Any, tmp_path: Path) -> None:
    url = new_project(server)
    annotate = annotate_in_ui(server)
    with open_adapter(url) as adapter:
        adapter.import_documents(_docs())
        for doc, (text, ents) in zip(_docs(), UNICODE_TEXTS, strict=True):
            annotate(adapter, doc.id, "alice", [entity(text, s, label, nth) for s, label, nth in ents], {})
        report = export(adapter, tmp_path / "out", task="ner", split="1", lang="xx")
    assert report.records_exported == len(UNICODE_TEXTS) and not report.records_skipped
    assert not report.spans_dropped, report.spans_dropped
    assert report.spans_adjusted["utf16 offsets converted"] > 0  # the repair happened, it was not needed by luck
    nlp = spacy.blank("xx")
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").open()]
    docs = {f: list(DocBin().from_disk(tmp_path / "out" / f).get_docs(nlp.vocab)) for f in report.files["train"]}
    texts = dict(UNICODE_TEXTS)
    for entry in manifest:
        doc = docs[entry["file"]][entry["index"]]
        want = sorted((surface, label) for surface, label, _ in texts[doc.text])
        assert sorted((e.text, e.label_) for e in doc.ents) == want, entry["id"]
        # and each entity sits where its occurrence is, not on an earlier copy of the same word
        gold = sorted((s.start, s.end) for s in (entity(doc.text, *e) for e in texts[doc.text]))
        assert sorted((e.start_char, e.end_char) for e in doc.ents) == gold, entry["id"]


def test_bad_items_are_counted_not_lost(server: Any, tmp_path: Path) -> None:
    """A result item without offsets is a span note; a task without text is a skipped record."""
    url = new_project(server)
    with open_adapter(url) as adapter:
        adapter.import_documents([Document.create("Maria moved to Oslo.", id="m"), Document.create("x", id="x")])
        annotate_in_ui(server)(adapter, "m", "alice", [entity("Maria moved to Oslo.", "Maria", "PERSON")], {})
        by_ext = {t["external_id"]: t for t in server.tasks.values() if t["project"] == int(url.rsplit("/", 1)[1])}
        by_ext["m"]["annotations"][0]["result"].append({"label": "GPE", "text": "Oslo"})  # a broken UI build
        by_ext["x"]["text"] = ""  # a task emptied behind the API's back
        report = export(adapter, tmp_path / "out", task="ner", split="1", lang="xx")
    assert report.records_read == 2 and report.records_exported == 1
    assert report.records_skipped == {"task without text": 1}
    assert report.spans_dropped == {"ToyREST result item without start, end and label": 1}


def test_schema_and_since_rules(server: Any) -> None:
    with open_adapter(new_project(server)) as adapter:
        schema = adapter.source_schema()
        assert schema is not None and (schema.task.value, schema.labels) == ("ner", ["PERSON", "GPE", "ORG"])
        with pytest.raises(UsageError, match="timezone"):
            list(adapter.pull(since=datetime(2030, 1, 1)))
    with pytest.raises(UsageError, match="project URL"):
        open_adapter(f"toyrest://127.0.0.1:{server.port}/tasks")
