"""The doccano adapter against a real doccano 1.8.4 server (started once per session by conftest.py)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from annobridge.errors import AdapterError
from annobridge.model import Document, LabelSchema, Prediction, Record, Span, TaskKind
from annobridge.offsets import codepoint_to_utf16

pytestmark = pytest.mark.server

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "doccano"


def load(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def ner_corpus(n: int) -> tuple[list[Document], dict[str, Prediction], list[str]]:
    rows = load("wnut17_sample.jsonl")[:n]
    docs = [Document(r["id"], r["text"], {"source": "wnut17", "n": i}) for i, r in enumerate(rows)]
    preds = {
        r["id"]: Prediction(
            "ner-model-1",
            [Span(s["start"], s["end"], s["label"], 0.5 + i % 5 / 10) for s in r["spans"]],
            score=round(0.1 + (i % 9) / 10, 2),
        )
        for i, r in enumerate(rows)
    }
    labels = sorted({s["label"] for r in rows for s in r["spans"]})
    return docs, preds, labels


def by_id(records: list[Record]) -> dict[str, Record]:
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)), "a record was yielded twice"
    return {r.id: r for r in records}


def span_set(spans: list[Span]) -> set[tuple[int, int, str]]:
    return {(s.start, s.end, s.label) for s in spans}


def u16(text: str, start: int, end: int) -> tuple[int, int]:
    return codepoint_to_utf16(text, start), codepoint_to_utf16(text, end)


# -- round trips -------------------------------------------------------------------------------


def test_roundtrip_collaborative_two_annotators(make_adapter: Any, annotators: list[Any], tmp_path: Path) -> None:
    adapter = make_adapter(collaborative="true")
    docs, preds, labels = ner_corpus(12)
    url = adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    assert url.endswith(f"/projects/{adapter.project_id}")
    result = adapter.import_documents(docs, predictions=preds)
    assert (result.created, result.existing, result.failed) == (12, 0, [])
    ann1, ann2 = annotators
    pid = adapter.project_id
    ids = result.native_ids

    # Pre-annotations are visible to annotators in a collaborative project, as doccano UTF-16 offsets.
    d0, d1, d2 = docs[0], docs[1], docs[2]
    seen = ann1.labels(pid, ids[d0.id])
    assert {(s["start_offset"], s["end_offset"]) for s in seen} == {
        u16(d0.text, s.start, s.end) for s in preds[d0.id].spans
    }
    # annotator1 removes one model span on d0, adds a PER span and confirms
    ann1.delete_label(pid, ids[d0.id], seen[0]["id"])
    first_word = d0.text.split(" ")[1]
    start = d0.text.index(first_word)
    ann1.add_span(pid, ids[d0.id], *u16(d0.text, start, start + len(first_word)), labels[0])
    ann1.confirm(pid, ids[d0.id])
    # annotator2 adds a span on d1 without confirming
    word = d1.text.split(" ")[0]
    ann2.add_span(pid, ids[d1.id], *u16(d1.text, 0, len(word)), labels[-1])

    records = by_id(list(adapter.pull()))
    assert set(records) == {d.id for d in docs}
    assert adapter.skipped == []
    r0 = records[d0.id]
    assert [a.annotator for a in r0.annotations] == ["annotator1"]
    a0 = r0.annotations[0]
    removed = (seen[0]["start_offset"], seen[0]["end_offset"], labels_of(seen[0], adapter))
    expected0 = (span_set(preds[d0.id].spans) - {removed}) | {(start, start + len(first_word), labels[0])}
    assert span_set(a0.spans) == expected0
    assert a0.meta["confirmed"] is True and a0.meta["confirmed_by"] == "annotator1"
    assert sorted(a0.meta["label_users"]) == sorted(["admin"] * (len(preds[d0.id].spans) - 1) + ["annotator1"])
    assert a0.updated_at is not None and a0.created_at is not None
    r1 = records[d1.id]
    assert [a.annotator for a in r1.annotations] == ["annotator2"]
    assert r1.annotations[0].meta["confirmed"] is False
    assert (0, len(word), labels[-1]) in span_set(r1.annotations[0].spans)
    # untouched examples: the prediction only, with model version and scores
    r2 = records[d2.id]
    assert r2.annotations == []
    assert r2.predictions[0].model_version == "ner-model-1"
    assert r2.predictions[0].score == preds[d2.id].score
    assert span_set(r2.predictions[0].spans) == span_set(preds[d2.id].spans)
    assert r2.document.meta == {"source": "wnut17", "n": 2}

    # incremental: nothing changed -> nothing; then a change on d2 -> only d2
    cursor = adapter.cursor
    assert list(adapter.pull(since=cursor)) == []
    before_change = datetime.now(timezone.utc)
    time.sleep(0.05)
    ann2.confirm(pid, ids[d2.id])
    changed = list(adapter.pull(since=cursor))
    assert [r.id for r in changed] == [d2.id]
    assert changed[0].annotations[0].annotator == "annotator2"
    # a datetime works too in collaborative projects (label / confirmation timestamps)
    assert [r.id for r in adapter.pull(since=before_change)] == [d2.id]

    _export_to_docbin(adapter, tmp_path, {d0.id, d1.id, d2.id})


def labels_of(label: dict[str, Any], adapter: Any) -> str:
    return str(adapter.label_types()[label["label"]])


def _export_to_docbin(adapter: Any, tmp_path: Path, annotated: set[str]) -> None:
    """The final merge -> DocBin step (annobridge.export) on what was pulled from doccano."""
    import spacy
    from spacy.tokens import DocBin

    from annobridge.export import export

    out = tmp_path / "corpus"
    report = export(adapter, out, task="ner", split="1.0,0,0")
    assert report.balanced
    assert report.records_exported == len(annotated)
    files = sorted(out.rglob("*.spacy"))
    assert files, "export wrote no DocBin"
    nlp = spacy.blank("en")
    docs = [doc for f in files for doc in DocBin().from_disk(f).get_docs(nlp.vocab)]
    assert len(docs) == len(annotated) and any(doc.ents for doc in docs)


def test_roundtrip_non_collaborative_two_annotators(make_adapter: Any, annotators: list[Any]) -> None:
    adapter = make_adapter()
    docs, preds, labels = ner_corpus(6)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    # predictions would be invisible to annotators here: refused with an explanation
    with pytest.raises(AdapterError, match="not collaborative"):
        adapter.import_documents(docs, predictions=preds)
    result = adapter.import_documents(docs)
    assert result.created == 6 and not result.failed
    ann1, ann2 = annotators
    pid, ids = adapter.project_id, result.native_ids
    d0 = docs[0]
    # both annotators label the same example differently; labels stay private to each
    ann1.add_span(pid, ids[d0.id], 0, 3, labels[0])
    ann2.add_span(pid, ids[d0.id], 0, 3, labels[1])
    ann2.add_span(pid, ids[d0.id], 4, 6, labels[1])
    assert len(ann1.labels(pid, ids[d0.id])) == 1
    ann1.confirm(pid, ids[d0.id])
    ann2.confirm(pid, ids[docs[1].id])  # confirmed with no labels: "nothing to annotate here"

    records = by_id(list(adapter.pull()))
    assert len(records) == 6
    anns = {a.annotator: a for a in records[d0.id].annotations}
    assert set(anns) == {"annotator1", "annotator2"}
    assert span_set(anns["annotator1"].spans) == {(0, 3, labels[0])}
    assert span_set(anns["annotator2"].spans) == {(0, 3, labels[1]), (4, 6, labels[1])}
    assert anns["annotator1"].meta["confirmed"] is True
    assert anns["annotator2"].meta["confirmed"] is False
    r1 = records[docs[1].id]
    assert [(a.annotator, a.spans, a.meta["confirmed"]) for a in r1.annotations] == [("annotator2", [], True)]
    assert all(not records[d.id].annotations for d in docs[2:])

    # incremental by cursor (doccano hides other members' timestamps here, so a datetime is refused)
    cursor = adapter.cursor
    assert list(adapter.pull(since=cursor)) == []
    ann1.add_span(pid, ids[docs[3].id], 0, 2, labels[0])
    changed = list(adapter.pull(since=cursor))
    assert [(r.id, [a.annotator for a in r.annotations]) for r in changed] == [(docs[3].id, ["annotator1"])]
    with pytest.raises(Exception, match="collaborative"):
        list(adapter.pull(since=datetime.now(timezone.utc)))


# -- NER with emoji ------------------------------------------------------------------------------


def test_ner_emoji_offsets(make_adapter: Any, annotators: list[Any]) -> None:
    rows = load("emoji_ner.jsonl")
    adapter = make_adapter(collaborative="true")
    docs = [Document(r["id"], r["text"]) for r in rows]
    preds = {r["id"]: Prediction("emoji-model", [Span(s["start"], s["end"], s["label"], 0.9) for s in r["spans"]],
                                 score=0.5) for r in rows}
    # no labels given: the project is created and takes the model's labels
    result = adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, []), predictions=preds)
    assert sorted(adapter.label_types().values()) == ["LOC", "PER"]
    assert result.created == len(rows) and not result.failed
    ann1 = annotators[0]
    pid = adapter.project_id
    # what doccano holds are UTF-16 offsets, so its UI highlights the right characters
    for r in rows:
        stored = {(s["start_offset"], s["end_offset"]) for s in ann1.labels(pid, result.native_ids[r["id"]])}
        assert stored == {u16(r["text"], s["start"], s["end"]) for s in r["spans"]}
    # an annotator marks "crew" in emoji-2 the way the UI does (UTF-16 units) and confirms
    text2 = rows[1]["text"]
    start = text2.index("crew")
    assert codepoint_to_utf16(text2, start) != start
    ann1.add_span(pid, result.native_ids["emoji-2"], *u16(text2, start, start + 4), "LOC")
    ann1.confirm(pid, result.native_ids["emoji-2"])
    records = by_id(list(adapter.pull()))
    assert adapter.skipped == []
    for r in rows:
        pred = records[r["id"]].predictions[0]
        assert span_set(pred.spans) == {(s["start"], s["end"], s["label"]) for s in r["spans"]}
    ann = records["emoji-2"].annotations[0]
    assert {(s.text, s.label) for s in ann.spans} == {("Maria Schmidt", "PER"), ("Hamburg", "LOC"), ("crew", "LOC")}
    for s in ann.spans:
        assert text2[s.start : s.end] == s.text


# -- text classification ----------------------------------------------------------------------------


def test_textcat_single_label(make_adapter: Any, annotators: list[Any]) -> None:
    rows = load("sms_sample.jsonl")
    adapter = make_adapter(collaborative="true")
    adapter.ensure_project(LabelSchema(TaskKind.TEXTCAT, ["HAM", "SPAM"]))
    project = adapter.client.get(f"/v1/projects/{adapter.project_id}")
    assert project["project_type"] == "DocumentClassification" and project["single_class_classification"] is True
    docs = [Document(r["id"], r["text"]) for r in rows]
    preds = {r["id"]: Prediction("spam-clf", categories={"HAM": 0.7, "SPAM": 0.3} if r["label"] == "HAM"
                                 else {"HAM": 0.2, "SPAM": 0.8}, score=0.6) for r in rows}
    result = adapter.import_documents(docs, predictions=preds)
    assert result.created == len(rows) and not result.failed
    pid, ids = adapter.project_id, result.native_ids
    ann1, ann2 = annotators
    # single-label: choosing SPAM replaces the model's HAM
    ann1.add_category(pid, ids["sms-0"], "SPAM")
    ann1.confirm(pid, ids["sms-0"])
    ann2.confirm(pid, ids["sms-25"])  # agrees with the model's SPAM
    records = by_id(list(adapter.pull()))
    assert records["sms-0"].annotations[0].categories == {"HAM": 0.0, "SPAM": 1.0}
    assert records["sms-0"].annotations[0].annotator == "annotator1"
    assert records["sms-25"].annotations[0].categories == {"HAM": 0.0, "SPAM": 1.0}
    assert records["sms-25"].annotations[0].annotator == "annotator2"
    assert records["sms-1"].annotations == []
    assert records["sms-1"].predictions[0].categories == {"HAM": 0.7, "SPAM": 0.3}


def test_textcat_multilabel(make_adapter: Any, annotators: list[Any]) -> None:
    rows = load("cooking_sample.jsonl")[:10]
    labels = sorted(rows[0]["cats"])
    adapter = make_adapter()  # non-collaborative: each annotator's choices stay apart
    adapter.ensure_project(LabelSchema(TaskKind.TEXTCAT_MULTILABEL, labels))
    project = adapter.client.get(f"/v1/projects/{adapter.project_id}")
    assert project["single_class_classification"] is False
    result = adapter.import_documents([Document(r["id"], r["text"]) for r in rows])
    assert result.created == 10
    pid, ids = adapter.project_id, result.native_ids
    ann1, ann2 = annotators
    first = rows[0]
    gold = sorted(k for k, v in first["cats"].items() if v == 1.0)
    for label in gold:
        ann1.add_category(pid, ids[first["id"]], label)
    ann2.add_category(pid, ids[first["id"]], "equipment")
    records = by_id(list(adapter.pull()))
    anns = {a.annotator: a for a in records[first["id"]].annotations}
    assert {k for k, v in anns["annotator1"].categories.items() if v == 1.0} == set(gold)
    assert set(anns["annotator1"].categories) == set(labels)
    assert {k for k, v in anns["annotator2"].categories.items() if v == 1.0} == {"equipment"}


# -- bad input ----------------------------------------------------------------------------------------


def test_malformed_lines_are_reported_not_fatal(make_adapter: Any) -> None:
    adapter = make_adapter(collaborative="true")
    docs, preds, labels = ner_corpus(5)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    bad = [
        Document("empty", "   "),
        Document("outside", "short text"),
        Document("unknown-label", "Angela went home"),
        Document("overlap", "New York City is big"),
    ]
    preds = dict(preds)
    preds["outside"] = Prediction("m", [Span(6, 40, labels[0])])
    preds["unknown-label"] = Prediction("m", [Span(0, 6, "NOT_A_LABEL")])
    preds["overlap"] = Prediction("m", [Span(0, 8, labels[0]), Span(4, 13, labels[0])])
    # docs[0] twice (the same document: there once) and another document under docs[1]'s id (refused)
    clash = Document(docs[1].id, "A different text under the same id")
    result = adapter.import_documents([*docs[:2], *bad, *docs[2:], docs[0], clash], predictions=preds)
    reasons = dict(result.failed)
    assert set(reasons) == {"empty", "outside", "unknown-label", "overlap", docs[1].id}
    assert "empty text" in reasons["empty"]
    assert "outside the text" in reasons["outside"]
    assert "NOT_A_LABEL" in reasons["unknown-label"]
    assert "overlap" in reasons["overlap"]
    assert "same id" in reasons[docs[1].id]
    assert (result.created, result.existing) == (5, 1)
    assert adapter.count() == 5

    # a line doccano itself rejects (broken JSON) is surfaced with its line number; the others still land
    lines = [json.dumps({"text": "fine line one", "label": []}), '{"text": "broken', json.dumps({"text": "fine two"})]
    failed = adapter.import_raw_lines(lines)
    assert [line for line, _ in failed] == [2]
    assert "doccano rejected the line" in failed[0][1]
    assert adapter.count() == 7


# -- the server going away ------------------------------------------------------------------------------


def test_server_restart_mid_pull_and_import_retry(
    make_adapter: Any, annotators: list[Any], doccano_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(collaborative="true")
    docs, preds, labels = ner_corpus(40)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    result = adapter.import_documents(docs, predictions=preds)
    pid, ids = adapter.project_id, result.native_ids
    # touched examples are read one by one (32 at a time) during the pull, so requests happen while iterating
    for doc in docs[:38]:
        annotators[0].confirm(pid, ids[doc.id])
    expected = [r.to_dict() for r in adapter.pull()]

    pull = adapter.pull()
    got = [next(pull).to_dict()]
    doccano_server.stop_web()
    restarter = threading.Timer(1.0, doccano_server.start_web)
    restarter.start()
    try:
        with caplog.at_level(logging.WARNING, logger="annobridge.http"):
            got.extend(r.to_dict() for r in pull)  # retries with backoff until the server answers again
    finally:
        restarter.join()
    retries = [r.getMessage() for r in caplog.records if r.name == "annobridge.http"]
    assert any(m.startswith("retrying GET ") for m in retries), "the pull never met the stopped server"
    assert doccano_server.admin.password not in " ".join(retries)
    assert got == expected

    # an import whose answer is lost after the server acted on it is not repeated blindly
    more = [Document(f"late-{i}", f"Late sentence number {i} about Berlin") for i in range(5)]
    _lose_first_answer(adapter, "/upload")
    first = adapter.import_documents(more)
    assert first.created == 5 and not first.failed
    again = adapter.import_documents(more)
    assert again.existing == 5 and again.created == 0
    assert adapter.count() == 45


def _lose_first_answer(adapter: Any, path_suffix: str) -> None:
    """Fault injection: the request reaches the real server, its answer is dropped once."""
    import httpx

    inner = adapter.client.transport
    state = {"done": False}

    class LoseAnswer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = inner.handle_request(request)
            if not state["done"] and request.method == "POST" and request.url.path.endswith(path_suffix):
                state["done"] = True
                response.read()
                raise httpx.ReadError("connection reset after the request was sent")
            return response

    adapter.client.transport = LoseAnswer()


# -- predictions on existing examples, credentials, eager Celery -------------------------------------


def test_push_predictions_replaces_only_untouched(make_adapter: Any, annotators: list[Any]) -> None:
    adapter = make_adapter(collaborative="true")
    docs, preds, labels = ner_corpus(4)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    ids = adapter.import_documents(docs[:3], predictions=preds).native_ids
    pid = adapter.project_id
    d0, d1, d2, d3 = docs
    ann1 = annotators[0]
    ann1.confirm(pid, ids[d0.id])  # a person has worked on d0
    new = {
        d.id: Prediction("ner-model-2", [Span(0, len(d.text.split(" ")[0]), labels[0], 0.99)], score=0.01)
        for d in docs
    }
    result = adapter.push_predictions([(d, new[d.id]) for d in (d0, d1, d3)])
    assert (result.created, result.existing, result.failed) == (1, 2, [])
    # d1 (untouched): the model's labels are replaced; d0 (confirmed): labels kept; d3 imported with v2
    assert {(s["start_offset"], s["end_offset"]) for s in ann1.labels(pid, ids[d1.id])} == {
        (0, len(d1.text.split(" ")[0]))
    }
    assert {(s["start_offset"], s["end_offset"]) for s in ann1.labels(pid, ids[d0.id])} == {
        (s.start, s.end) for s in preds[d0.id].spans
    }
    again = adapter.push_predictions([(d1, new[d1.id])])  # idempotent: no duplicate labels
    assert again.existing == 1 and len(ann1.labels(pid, ids[d1.id])) == 1
    example = ann1.call("GET", f"/v1/projects/{pid}/examples/{ids[d1.id]}")
    assert example["score"] == 0.01
    records = by_id(list(adapter.pull()))
    assert {r.id: r.predictions[0].model_version for r in records.values()} == {
        d0.id: "ner-model-2", d1.id: "ner-model-2", d2.id: "ner-model-1", d3.id: "ner-model-2"
    }
    assert span_set(records[d0.id].annotations[0].spans) == span_set(preds[d0.id].spans)
    assert records[d1.id].annotations == []


def test_wrong_password_is_reported_without_secrets(doccano_server: Any) -> None:
    from annobridge.adapter import AdapterURL
    from annobridge.config import AdapterConfig
    from annobridge_doccano import DoccanoAdapter

    config = AdapterConfig({"username": "admin", "password": "not-the-password-xyz"}, env={})
    adapter = DoccanoAdapter(AdapterURL.parse(f"{doccano_server.url}/projects/1"), config)
    with pytest.raises(AdapterError) as info:
        adapter.count()
    assert "login" in str(info.value) and "not-the-password-xyz" not in str(info.value)
    adapter.close()


def test_eager_celery_mode(server_module: Any) -> None:
    """The other way to run doccano's tasks: inside the request (no worker process)."""
    from annobridge.adapter import AdapterURL
    from annobridge.config import AdapterConfig
    from annobridge_doccano import DoccanoAdapter

    server = server_module.DoccanoServer.start(mode="eager", n_annotators=0)
    try:
        assert set(server.procs) == {"web"}
        config = AdapterConfig({"username": server.admin.username, "password": server.admin.password}, env={})
        adapter = DoccanoAdapter(AdapterURL.parse(f"{server.url}/projects/new?name=eager&collaborative=true"), config)
        docs, preds, labels = ner_corpus(20)
        adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
        assert adapter.import_documents(docs, predictions=preds).created == 20
        records = list(adapter.pull())
        assert len(records) == 20
        assert sum(len(r.predictions[0].spans) for r in records) == sum(len(p.spans) for p in preds.values())
        adapter.close()
    finally:
        server.stop()


def test_cli_import_and_pull(doccano_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented quickstart through the CLI: import into projects/new?name=..., then pull by name."""
    from typer.testing import CliRunner

    from annobridge.cli import app

    monkeypatch.setenv("DOCCANO_USERNAME", doccano_server.admin.username)
    monkeypatch.setenv("DOCCANO_PASSWORD", doccano_server.admin.password)
    monkeypatch.setenv("ANNOBRIDGE_CONFIG", str(tmp_path / "none.toml"))
    corpus = tmp_path / "texts.jsonl"
    rows = load("sms_sample.jsonl")[:8]
    corpus.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    url = f"{doccano_server.url}/projects/new?name=cli-{time.time_ns()}&collaborative=true"
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(corpus), url, "--task", "textcat", "--labels", "HAM,SPAM"])
    assert result.exit_code == 0, result.output
    assert "8 imported" in result.output
    again = runner.invoke(app, ["import", str(corpus), url, "--task", "textcat", "--labels", "HAM,SPAM"])
    assert again.exit_code == 0 and "8 already there" in again.output
    out = tmp_path / "records.jsonl"
    pulled = runner.invoke(app, ["pull", url, "-o", str(out)])
    assert pulled.exit_code == 0, pulled.output
    assert doccano_server.admin.password not in pulled.output + result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)


# -- span notes, the source's schema, incremental pulls without exports, an unreachable server -------------


class _CountExports:
    """Counts export tasks started (POST .../download) on the way to the real server; changes nothing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.exports = 0

    def handle_request(self, request: Any) -> Any:
        if request.method == "POST" and request.url.path.endswith("/download"):
            self.exports += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_span_drops_are_notes_and_confirmations_need_no_export(
    make_adapter: Any, annotators: list[Any], tmp_path: Path
) -> None:
    import httpx

    from annobridge.export import export

    adapter = make_adapter(collaborative="true")
    docs, _preds, labels = ner_corpus(6)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    ids = adapter.import_documents(docs).native_ids
    pid, (ann1, ann2) = adapter.project_id, annotators
    d0, d1, d2 = docs[:3]
    word = d0.text.split(" ")[0]
    ann1.add_span(pid, ids[d0.id], *u16(d0.text, 0, len(word)), labels[0])
    ann1.add_span(pid, ids[d0.id], len(d0.text) + 5, len(d0.text) + 50, labels[1])  # stored; fits no text
    ann1.confirm(pid, ids[d0.id])
    assert adapter.source_schema() == LabelSchema(TaskKind.NER, labels)

    counter = _CountExports(adapter.client.transport)
    adapter.client.transport = counter  # type: ignore[assignment]
    records = by_id(list(adapter.pull()))
    assert len(records) == 6 and adapter.skipped == []
    assert span_set(records[d0.id].annotations[0].spans) == {(0, len(word), labels[0])}
    assert adapter.span_notes == [(d0.id, "dropped", "offsets outside the text")]
    assert counter.exports == 1  # one export; the confirmed state came from the examples API

    # only a confirmation since the cursor: read from the examples API, no export at all
    cursor = adapter.cursor
    ann2.confirm(pid, ids[d1.id])
    counter.exports = 0
    changed = list(adapter.pull(since=cursor))
    assert [(r.id, [a.annotator for a in r.annotations]) for r in changed] == [(d1.id, ["annotator2"])]
    assert counter.exports == 0
    assert list(adapter.pull(since=adapter.cursor)) == [] and counter.exports == 0

    # a new label: one export, diffed against the cursor
    cursor = adapter.cursor
    ann2.add_span(pid, ids[d2.id], *u16(d2.text, 0, len(d2.text.split(" ")[0])), labels[0])
    assert [r.id for r in adapter.pull(since=cursor)] == [d2.id] and counter.exports == 1

    # the export counts the dropped span as a span, not as a skipped record
    report = export(adapter, tmp_path / "corpus", task="ner", split="1.0,0,0")
    assert report.records_read == 6 and report.records_exported == 3  # d0, d1, d2; the others untouched
    assert report.records_skipped == {"no annotations": 3}
    assert report.spans_dropped == {"offsets outside the text": 1}
    assert isinstance(counter.inner, httpx.BaseTransport)


def test_unreachable_server_through_the_cli(tmp_path: Path) -> None:
    """The real CLI on a port nobody listens on: the one-line message and exit code 3, within seconds."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DOCCANO_USERNAME": "admin", "DOCCANO_PASSWORD": "pw-" + "k" * 30,
           "ANNOBRIDGE_CONFIG": str(tmp_path / "none")}
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "annobridge", "pull", f"doccano://127.0.0.1:{port}/projects/1",
         "-o", str(tmp_path / "out.jsonl")],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"cannot reach 127.0.0.1:{port} (connection refused): is the server running?" in proc.stderr
    assert "k" * 30 not in proc.stdout + proc.stderr
    assert time.monotonic() - began < 30  # interpreter start included; the HTTP part gives up within 10 s


class _RecordPaths:
    """Records (method, path) of every request on the way to the real server; changes nothing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: Any) -> Any:
        with self.lock:
            self.calls.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def count(self, suffix: str, method: str = "GET") -> int:
        return sum(1 for m, p in self.calls if m == method and p.endswith(suffix))


def test_incremental_pull_reads_only_what_it_needs(
    make_adapter: Any, annotators: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import annobridge_doccano

    adapter = make_adapter(collaborative="true")
    docs, preds, labels = ner_corpus(12)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    ids = adapter.import_documents(docs, predictions=preds).native_ids
    pid, (ann1, ann2) = adapter.project_id, annotators
    for doc in docs[:4]:
        ann1.confirm(pid, ids[doc.id])
    full = by_id(list(adapter.pull()))
    assert sorted(r.id for r in full.values() if r.annotations) == sorted(d.id for d in docs[:4])
    rec = _RecordPaths(adapter.client.transport)
    adapter.client.transport = rec  # type: ignore[assignment]

    # a new label on two unconfirmed examples: one export, no confirmed listing (the counters say no
    # confirmation moved), one read per changed example (its labels; no state read for unconfirmed ones)
    cursor = adapter.cursor
    for doc in docs[6:8]:
        taken = {i for span in preds[doc.id].spans for i in range(span.start, span.end)}
        free = next(i for i, ch in enumerate(doc.text) if i not in taken and not ch.isspace())
        ann2.add_span(pid, ids[doc.id], *u16(doc.text, free, free + 1), labels[0])
    changed = by_id(list(adapter.pull(since=cursor)))
    assert sorted(changed) == sorted(d.id for d in docs[6:8])
    for doc in docs[6:8]:
        (annotation,) = changed[doc.id].annotations
        assert annotation.annotator == "annotator2" and annotation.meta["confirmed"] is False
        assert "annotator2" in annotation.meta["label_users"]
    assert rec.count("/download", "POST") == 1
    assert rec.count("/spans") == 2 and rec.count("/states") == 0
    assert not any(p.endswith("/examples") for _m, p in rec.calls)

    # the same state as a full pull gives
    again = by_id(list(adapter.pull()))
    for doc in docs[6:8]:
        assert again[doc.id].annotations[0].spans == changed[doc.id].annotations[0].spans

    # un-confirming many examples: an export is cheaper than reading each of them, so the pull diffs one
    cursor = adapter.cursor
    monkeypatch.setattr(annobridge_doccano, "EXPORT_COST_READS", 2)
    for doc in docs[:3]:
        ann1.confirm(pid, ids[doc.id])  # a toggle: un-confirms
    rec.calls.clear()
    changed = by_id(list(adapter.pull(since=cursor)))
    assert rec.count("/download", "POST") == 1
    # docs[:3] carry only the model's labels again: nothing to yield, and no per-example read for them
    assert changed == {} and rec.count("/spans") == 0
    assert list(adapter.pull(since=adapter.cursor)) == []

    # one more un-confirmation with the default budget: read from the examples API, no export
    monkeypatch.setattr(annobridge_doccano, "EXPORT_COST_READS", 400)
    cursor = adapter.cursor
    ann1.confirm(pid, ids[docs[3].id])
    rec.calls.clear()
    assert list(adapter.pull(since=cursor)) == []
    assert rec.count("/download", "POST") == 0 and rec.count("/states") == 0
    final = by_id(list(adapter.pull()))
    assert sorted(r.id for r in final.values() if r.annotations) == sorted(d.id for d in docs[6:8])


def test_code_point_file_uploaded_through_doccano_and_ui_spans_both_land(
    make_adapter: Any, annotators: list[Any], doccano_server: Any, tmp_path: Path
) -> None:
    """Two writers, two units, one project: a pre-labelled JSONL written by a Python tool (code points),
    uploaded through doccano's own import as its UI uploads a file, and spans an annotator marks in the UI
    (UTF-16). Every entity comes back on exactly its text and the export drops nothing.
    """
    import httpx

    from annobridge.export import export
    from annobridge.testing import UNICODE_TEXTS, entity

    adapter = make_adapter()
    adapter.ensure_project(LabelSchema(TaskKind.NER, ["PERSON", "GPE", "ORG"]))
    pid = adapter.project_id
    gold = {text: [entity(text, s, lab, n) for s, lab, n in ents] for text, ents in UNICODE_TEXTS}
    # 1. the file: doccano's JSONL format, offsets as Python counts them, through the UI's upload calls
    lines = [json.dumps({"text": t, "label": [[s.start, s.end, s.label] for s in spans]}, ensure_ascii=False)
             for t, spans in gold.items()]
    token = httpx.post(f"{doccano_server.base_url}/v1/auth/login/", json={
        "username": doccano_server.admin.username, "password": doccano_server.admin.password}).json()["key"]
    ui = httpx.Client(base_url=doccano_server.base_url, headers={"Authorization": f"Token {token}"}, timeout=60)
    upload = ui.post("/v1/fp/process/", files={"filepond": ("prelabelled.jsonl", "\n".join(lines).encode(),
                                                             "application/octet-stream")})
    assert upload.status_code == 200, upload.text
    task = ui.post(f"/v1/projects/{pid}/upload", json={
        "uploadIds": [upload.text.strip()], "format": "JSONL", "task": "SequenceLabeling",
        "column_data": "text", "column_label": "label", "encoding": "utf_8"}).json()
    for _ in range(600):
        status = ui.get(f"/v1/tasks/status/{task['task_id']}").json()
        if status.get("ready"):
            break
        time.sleep(0.1)
    assert not (status.get("result") or {}).get("error"), status
    # 2. an annotator adds the same entities in the UI (UTF-16 units) to the first astral document
    examples = ui.get(f"/v1/projects/{pid}/examples", params={"limit": 100}).json()["results"]
    by_text = {e["text"]: e["id"] for e in examples}
    ui_text = UNICODE_TEXTS[3][0]  # the adversarial repeat: "Zara Zara" right after five astral characters
    ann = annotators[0]
    for s in gold[ui_text]:
        ann.add_span(pid, by_text[ui_text], *u16(ui_text, s.start, s.end), s.label)
    ui.close()
    # 3. every annotation of every document is on exactly its text
    records = list(adapter.pull())
    assert len(records) == len(gold)
    for record in records:
        want = sorted((s.text, s.label) for s in gold[record.text])
        for annotation in record.annotations:
            got = sorted((record.text[s.start : s.end], s.label) for s in annotation.spans)
            assert got == want, (annotation.annotator, record.text, got)
    assert not [n for n in adapter.span_notes if n[1] == "dropped"]
    report = export(adapter, tmp_path / "corpus", task="ner", policy="latest", align="strict")
    assert not report.spans_dropped and report.balanced, report.spans_dropped
