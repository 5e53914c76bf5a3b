"""Projects, label configs, labels the project lacks, auth (legacy token and PAT), errors without tokens."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from ls_helpers import LabelStudioServer, adapter_for, free_port, post_annotation, ui_span

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge.errors import AdapterError, SchemaError, ServerUnreachableError, UsageError
from annobridge.http import JWTRefreshAuth
from annobridge.model import Answer, Document, LabelSchema, Prediction, Span, TaskKind
from annobridge.plugins import open_adapter
from annobridge_labelstudio import LabelStudioAdapter
from annobridge_labelstudio.labelconfig import LabelConfig, label_config_for

# -- no server needed ----------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TaskKind))
def test_label_config_round_trip(task: TaskKind) -> None:
    labels = ["PER", "ORG & Co", 'say "hi"', "中文"]
    xml = label_config_for(LabelSchema(task, labels))
    config = LabelConfig.parse(xml)
    assert config.schema() == LabelSchema(task, labels)
    assert config.text_object() == ("text", "text")
    config.check_schema(LabelSchema(task, labels[:2]))
    with pytest.raises(SchemaError, match="'MISC'"):
        config.check_schema(LabelSchema(task, ["PER", "MISC"]))


def test_label_config_refuses_unknown_labels() -> None:
    config = LabelConfig.parse(label_config_for(LabelSchema(TaskKind.NER, ["PER"])))
    with pytest.raises(SchemaError, match="'LOC' is not in the project's label config"):
        config.span_control_for("LOC")
    with pytest.raises(SchemaError, match="no category control"):
        config.choice_control_for("PER")
    with pytest.raises(SchemaError, match="at least one label"):
        label_config_for(LabelSchema(TaskKind.NER, []))


def test_url_forms() -> None:
    cfg = AdapterConfig({"api_key": "x" * 40}, env={})
    a = LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:8080/projects/7"), cfg)
    assert a.project_id == 7 and a.client.base_url == "http://127.0.0.1:8080"
    b = LabelStudioAdapter(AdapterURL.parse("labelstudio://ls.example.org/projects/new?title=News"), cfg)
    assert b.project_id is None and b.title == "News" and b.client.base_url == "https://ls.example.org"
    c = LabelStudioAdapter(AdapterURL.parse("labelstudio:///projects/3"),
                           AdapterConfig({"api_key": "k" * 40, "url": "http://localhost:9000"}, env={}))
    assert c.client.base_url == "http://localhost:9000"
    with pytest.raises(UsageError, match="projects/ID"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:8080/tasks/1"), cfg)
    with pytest.raises(UsageError, match="needs a title"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:8080/projects/new"), cfg)
    with pytest.raises(UsageError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:8080/projects/1"), AdapterConfig({}, env={}))
    with pytest.raises(UsageError, match="plain http"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio:///projects/3"),
                           AdapterConfig({"api_key": "k" * 40, "url": "http://ls.example.org"}, env={}))
    with pytest.raises(UsageError, match="LABEL_STUDIO_URL uses plain http"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio:///projects/3"),
                           AdapterConfig({"api_key": "k" * 40}, env={"LABEL_STUDIO_URL": "http://10.2.3.4:8080"}))
    forced = LabelStudioAdapter(AdapterURL.parse("labelstudio+http:///projects/3"),
                                AdapterConfig({"api_key": "k" * 40}, env={"LABEL_STUDIO_URL": "http://10.2.3.4:8080"}))
    assert forced.client.base_url == "http://10.2.3.4:8080"


def test_registered_and_env_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token-from-env-123456")
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:1")
    adapter = open_adapter("labelstudio:///projects/1")
    assert isinstance(adapter, LabelStudioAdapter)
    assert adapter.client.base_url == "http://127.0.0.1:1"


# -- real server ---------------------------------------------------------------------------------------


@pytest.mark.server
def test_idempotent_reimport(ls_server: LabelStudioServer, new_project_url: str) -> None:
    adapter = adapter_for(ls_server, new_project_url)
    schema = LabelSchema(TaskKind.NER, ["PER"])
    docs = [Document(f"idem-{i}", f"Marie Curie number {i}", {"source": "test", "n": i}) for i in range(30)]
    preds = {d.id: Prediction("m1", [Span(0, 11, "PER", score=0.8)]) for d in docs}
    first = adapter.import_documents(docs[:20], schema=schema, predictions=preds)
    assert (first.created, first.existing) == (20, 0)
    again = adapter.import_documents(docs + docs[:5], schema=schema, predictions=preds)
    assert (again.created, again.existing, again.failed) == (10, 25, [])
    assert adapter.count() == 30
    # The same URL with projects/new?title= finds the project again instead of creating a second one.
    other = adapter_for(ls_server, new_project_url)
    assert other.ensure_project(schema) == adapter.project_id
    pushed = other.push_predictions([(d, preds[d.id]) for d in docs])
    assert (pushed.created, pushed.existing) == (0, 30)
    records = {r.id: r for r in adapter.pull()}
    assert len(records) == 30
    assert all(len(r.predictions) == 1 for r in records.values())
    assert records["idem-3"].document.meta == {"source": "test", "n": 3}


@pytest.mark.server
def test_unknown_label_refused(ls_server: LabelStudioServer, new_project_url: str) -> None:
    adapter = adapter_for(ls_server, new_project_url)
    adapter.ensure_project(LabelSchema(TaskKind.NER, ["PER", "ORG"]))
    docs = [Document("u-1", "Paris is in France"), Document("u-2", "Bob")]
    preds = {"u-1": Prediction("m1", [Span(0, 5, "LOC")]), "u-2": Prediction("m1", [Span(0, 3, "PER")])}
    with pytest.raises(SchemaError, match="'LOC' is not in the project's label config"):
        adapter.import_documents(docs, predictions=preds)
    assert adapter.count() == 0  # refused before anything was sent
    with pytest.raises(SchemaError, match="lacks label"):
        adapter.ensure_project(LabelSchema(TaskKind.NER, ["PER", "LOC"]))
    with pytest.raises(SchemaError, match="no <Choices> control"):
        adapter.ensure_project(LabelSchema(TaskKind.TEXTCAT, ["PER"]))
    adapter.import_documents(docs)
    with pytest.raises(SchemaError, match="'LOC'"):
        adapter.push_predictions([(docs[0], preds["u-1"])])


@pytest.mark.server
@pytest.mark.parametrize("task", [TaskKind.TEXTCAT, TaskKind.TEXTCAT_MULTILABEL, TaskKind.SPANS])
def test_other_task_kinds(ls_server: LabelStudioServer, new_project_url: str, task: TaskKind) -> None:
    labels = ["POS", "NEG", "NEUTRAL"] if not task.is_span_task else ["FOOD", "DISH"]
    adapter = adapter_for(ls_server, new_project_url)
    doc = Document("k-1", "The pad thai 🍜 was great")
    if task.is_span_task:
        pred = Prediction("m1", [Span(4, 12, "DISH", score=0.6), Span(8, 12, "FOOD", score=0.4)])
    else:
        pred = Prediction("m1", categories={"POS": 0.7, "NEG": 0.6, "NEUTRAL": 0.1})
    result = adapter.import_documents([doc], schema=LabelSchema(task, labels), predictions={"k-1": pred})
    tid = result.native_ids["k-1"]
    name = {TaskKind.TEXTCAT: "category", TaskKind.TEXTCAT_MULTILABEL: "categories", TaskKind.SPANS: "spans"}[task]
    if task.is_span_task:
        items = [{"id": f"s{i}", "from_name": name, "to_name": "text", "type": "labels",
                  "value": {"start": s, "end": e, "text": doc.text[s:e], "labels": [lab]}}
                 for i, (s, e, lab) in enumerate([(4, 12, "DISH"), (8, 12, "FOOD"), (4, 12, "FOOD")])]
    else:
        chosen = ["POS"] if task == TaskKind.TEXTCAT else ["POS", "NEUTRAL"]
        items = [{"id": "c1", "from_name": name, "to_name": "text", "type": "choices", "value": {"choices": chosen}}]
    post_annotation(ls_server, ls_server.annotators[1], tid, items)
    (record,) = list(adapter.pull())
    (ann,) = record.annotations
    (p,) = record.predictions
    assert ann.annotator == ls_server.annotators[1].email and ann.answer == Answer.ACCEPT
    if task == TaskKind.SPANS:  # overlapping spans, and two labels on one range, all kept
        assert sorted(s.key for s in ann.spans) == [(4, 12, "DISH"), (4, 12, "FOOD"), (8, 12, "FOOD")]
        assert sorted((s.key, s.score) for s in p.spans) == [((4, 12, "DISH"), 0.6), ((8, 12, "FOOD"), 0.4)]
        assert p.score == pytest.approx(0.4)
    elif task == TaskKind.TEXTCAT:
        assert ann.categories == {"POS": 1.0, "NEG": 0.0, "NEUTRAL": 0.0}
        assert p.categories["POS"] == pytest.approx(0.7) and p.score == pytest.approx(0.7)
    else:
        assert ann.categories == {"POS": 1.0, "NEG": 0.0, "NEUTRAL": 1.0}
        assert {k for k, v in p.categories.items() if v > 0} == {"POS", "NEG"}


@pytest.mark.server
def test_personal_access_token_and_refresh(ls_server: LabelStudioServer, new_project_url: str) -> None:
    admin = adapter_for(ls_server, new_project_url)
    admin.import_documents([Document("pat-1", "Linus Torvalds")], schema=LabelSchema(TaskKind.NER, ["PER"]))
    ann2 = ls_server.annotators[1]
    resp = httpx.post(f"{ls_server.url}/api/token/", headers={"Authorization": f"Token {ann2.token}"}, timeout=60)
    if resp.status_code == 409:  # one PAT per user: another test run on this data dir made it already
        pytest.skip("personal access token exists")
    assert resp.status_code == 201, resp.text
    pat = resp.json()["token"]
    adapter = adapter_for(ls_server, f"/projects/{admin.project_id}", token=pat)
    auth = adapter.client.auth
    assert adapter.client.pat and isinstance(auth, JWTRefreshAuth)
    assert [r.id for r in adapter.pull()] == ["pat-1"]
    first_access = auth.access
    assert first_access and first_access != pat
    # An access token that stopped working is refreshed once, transparently.
    auth.access = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.bad"
    auth.access_expires = 9_999_999_999
    assert adapter.count() == 1
    assert auth.access and auth.access.endswith(".bad") is False
    # Errors name neither the PAT nor any access token the refreshes produced.
    with pytest.raises(AdapterError) as err:
        adapter.client.request("GET", "/api/projects/99999999/")
    for secret in (pat, first_access, auth.access):
        assert secret not in str(err.value) and secret not in repr(adapter.client)


@pytest.mark.server
def test_token_never_in_errors(ls_server: LabelStudioServer, new_project_url: str) -> None:
    secret = "wrong-token-" + "s3cr3t" * 5
    bad = adapter_for(ls_server, "/projects/1", token=secret)
    with pytest.raises(AdapterError) as err:
        bad.count()
    assert "401" in str(err.value) and "LABEL_STUDIO_API_KEY" in str(err.value)
    assert secret not in str(err.value) and secret not in repr(err.value)
    good = ls_server.admin.token
    missing = adapter_for(ls_server, "/projects/99999", token=good)
    with pytest.raises(AdapterError) as err:
        missing.count()
    assert "404" in str(err.value) and good not in str(err.value)
    bad_pat = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9." + "sig" * 10
    with pytest.raises(AdapterError) as err:
        adapter_for(ls_server, "/projects/1", token=bad_pat).count()
    assert bad_pat not in str(err.value) and "personal access token" in str(err.value)
    port = free_port()
    dead = LabelStudioAdapter(AdapterURL.parse(f"labelstudio://127.0.0.1:{port}/projects/1"),
                              AdapterConfig({"api_key": good}, env={}))
    began = time.monotonic()
    with pytest.raises(ServerUnreachableError) as unreachable:
        dead.count()
    assert time.monotonic() - began < 10
    assert str(unreachable.value) == f"cannot reach 127.0.0.1:{port} (connection refused): is the server running?"
    assert good not in repr(dead.config.secret("api_key")) and good not in repr(dead.client)


@pytest.mark.server
def test_dropped_spans_are_span_notes_not_skipped_records(
    ls_server: LabelStudioServer, new_project_url: str, tmp_path: Path
) -> None:
    import annobridge
    from annobridge.offsets import check_span

    adapter = adapter_for(ls_server, new_project_url)
    text = "Ada Lovelace met Charles Babbage."
    docs = [Document("drop-1", text), Document("drop-2", "Nothing here.")]
    tasks = adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, ["PER"])).native_ids
    good = ui_span(0, 12, "Ada Lovelace", "PER", "g")
    broken = ui_span(20, 999, "Zorro", "PER", "o")  # past the end, and its text is nowhere: cannot be kept
    post_annotation(ls_server, ls_server.annotators[0], tasks["drop-1"], [good, broken])
    post_annotation(ls_server, ls_server.annotators[0], tasks["drop-2"], [])
    why = check_span(text, Span(20, 999, "PER", text="Zorro")).note
    assert why

    records = {r.id: r for r in adapter.pull()}
    assert set(records) == {"drop-1", "drop-2"} and adapter.skipped == []
    assert [s.key for s in records["drop-1"].annotations[0].spans] == [(0, 12, "PER")]
    assert adapter.span_notes == [("drop-1", "dropped", why)]
    assert adapter.source_schema() == LabelSchema(TaskKind.NER, ["PER"])

    # Through the export: both records read and exported, the span counted as a dropped span only.
    report = annobridge.export(adapter_for(ls_server, f"/projects/{adapter.project_id}"), tmp_path / "corpus",
                               task="ner")
    assert report.records_read == 2 and report.records_exported == 2
    assert sum(report.records_skipped.values()) == 0
    assert report.spans_dropped == {why: 1}
    with pytest.raises(UsageError, match="--task textcat does not fit"):
        annobridge.export(adapter_for(ls_server, f"/projects/{adapter.project_id}"), tmp_path / "c2", task="textcat")


@pytest.mark.server
def test_adapters_command_shows_the_server_version(ls_server: LabelStudioServer, tmp_path: Path) -> None:
    """`annobridge adapters SOURCE`, the real CLI: the table, then the server's own version; the key never prints."""
    import os
    import subprocess
    import sys

    from annobridge_labelstudio.testserver import LS_VERSION

    env = {**os.environ, "LABEL_STUDIO_API_KEY": ls_server.admin.token, "ANNOBRIDGE_CONFIG": str(tmp_path / "none"),
           "COLUMNS": "120"}
    source = f"labelstudio://127.0.0.1:{ls_server.port}/projects/1"
    proc = subprocess.run([sys.executable, "-m", "annobridge", "adapters", source], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{source}: label-studio {LS_VERSION}" in proc.stdout
    assert "annobridge-labelstudio" in proc.stdout
    assert ls_server.admin.token not in proc.stdout + proc.stderr


def test_url_options_are_typed() -> None:
    """A misspelt or badly typed URL option is refused before anything is sent, with the known ones listed."""
    config = AdapterConfig({"api_key": "k" * 40}, env={})
    good = LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:9/projects/3?chunk_size=100&sampling=keep"),
                              config)
    assert (good.chunk_size, good.set_sampling, good.page_size) == (100, False, 500)
    with pytest.raises(UsageError, match=r"unknown URL option chunksize \(known: chunk_size, page_size, sampling"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:9/projects/3?chunksize=100"), config)
    with pytest.raises(UsageError, match=r"sampling: Input should be 'uncertainty' or 'keep'"):
        LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:9/projects/3?sampling=random"), config)
    from_file = LabelStudioAdapter(AdapterURL.parse("labelstudio://127.0.0.1:9/projects/3"),
                                   AdapterConfig({"api_key": "k" * 40, "page_size": 50}, env={}))
    assert from_file.page_size == 50


class _RefuseOneTask(httpx.HTTPTransport):
    """The real server behind it, except that an import holding the marked task is refused, as LS refuses a task."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/import") and b"refused-by-server" in request.content:
            return httpx.Response(400, json={"validation_errors": {"non_field_errors": ["task 2: bad data"]}})
        return super().handle_request(request)


@pytest.mark.server
def test_a_task_the_server_refuses_costs_only_itself(ls_server: LabelStudioServer, new_project_url: str) -> None:
    from annobridge.config import Secret
    from annobridge_labelstudio.client import LabelStudioClient

    client = LabelStudioClient(ls_server.url, Secret(ls_server.admin.token), transport=_RefuseOneTask(),
                               allow_http=True)
    adapter = LabelStudioAdapter(AdapterURL.parse(f"labelstudio://127.0.0.1:{ls_server.port}{new_project_url}"),
                                 AdapterConfig({"api_key": ls_server.admin.token}, env={}), client=client)
    docs = [Document(f"ok-{i}", f"Document number {i}") for i in range(7)]
    docs.insert(3, Document("refused-by-server", "The server refuses this one"))
    result = adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, ["PER"]))
    assert (result.created, result.existing) == (7, 0)
    assert [doc_id for doc_id, _ in result.failed] == ["refused-by-server"]
    assert "bad data" in result.failed[0][1]
    assert {r.id for r in adapter.pull()} == {d.id for d in docs} - {"refused-by-server"}
