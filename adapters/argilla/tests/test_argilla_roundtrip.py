"""Round trip against a real Argilla 2.8 server: import -> suggestions -> two annotators -> pull -> DocBin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from spacy.tokens import DocBin

from annobridge.model import Answer, Document, LabelSchema, Prediction, Span, TaskKind
from annobridge.offsets import codepoint_to_utf16

LABELS = ["FASHION_BRAND", "PRODUCT"]
#: record whose spans come after an emoji; annotator1 sends them as UTF-16 offsets, as a JS front end counts
UTF16_RECORD = "fashion_brands_eval-91"


def _docs(rows: list[dict[str, Any]]) -> list[Document]:
    return [Document(r["id"], r["text"], dict(r["meta"])) for r in rows]


def _gold(row: dict[str, Any]) -> set[tuple[int, int, str]]:
    return {(s["start"], s["end"], s["label"]) for s in row["spans"]}


def _confidence(index: int) -> float:
    return round(0.95 - 0.02 * index, 4)


def _respond(server: Any, api_key: str, record_id: str, question: str, value: Any, status: str) -> dict[str, Any]:
    """What the annotator's browser does: one REST call with the annotator's own key."""
    # argilla-server 2.8 answers 500 ('NoneType' object has no attribute 'items') to a discard without
    # `values`; its web UI sends an empty mapping
    body: dict[str, Any] = {"status": status, "values": {question: {"value": value}} if value is not None else {}}
    with server.client(api_key) as api:
        resp = api.post(f"/records/{record_id}/responses", json=body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


def test_ner_round_trip(argilla_server: Any, open_adapter: Any, dataset_name: str, fashion: list[dict[str, Any]],
                        tmp_path: Path) -> None:
    owner = open_adapter(dataset_name)
    docs = _docs(fashion)
    by_id = {r["id"]: r for r in fashion}
    schema = LabelSchema(TaskKind.NER, LABELS)

    first = owner.import_documents(docs, schema=schema)
    assert (first.created, first.existing, first.failed) == (len(docs), 0, [])
    again = owner.import_documents(docs, schema=schema)  # idempotent by document id
    assert (again.created, again.existing, again.failed) == (0, len(docs), [])
    assert owner.count() == len(docs)
    record_ids = first.native_ids
    assert set(record_ids) == set(by_id)

    # pre-annotations: the gold spans with one score per span, from a model whose version Argilla's agent
    # pattern does not allow ('@')
    items = []
    for index, doc in enumerate(docs):
        conf = _confidence(index)
        spans = [Span(s["start"], s["end"], s["label"], score=round(conf + 0.001 * k, 4))
                 for k, s in enumerate(by_id[doc.id]["spans"])]
        items.append((doc, Prediction("fashion-ner@0.3", spans=spans, score=conf)))
    pushed = owner.push_predictions(items)
    assert (pushed.created, pushed.existing, pushed.failed) == (0, len(docs), [])

    with argilla_server.client() as api:
        ds_id = owner.dataset().id
        page = api.get(f"/datasets/{ds_id}/records", params=[("include", "suggestions"), ("limit", 100)]).json()
    server_side = {r["external_id"]: r for r in page["items"]}
    four = server_side["fashion_brands_eval-56"]
    assert len(four["suggestions"]) == 1
    suggestion = four["suggestions"][0]
    assert suggestion["agent"] == "fashion-ner_0.3"
    assert isinstance(suggestion["score"], list) and len(suggestion["score"]) == len(suggestion["value"]) == 4
    # metadata survives the re-log that added the suggestion (Argilla replaces metadata on upsert)
    assert four["metadata"]["section"] == by_id["fashion_brands_eval-56"]["meta"]["section"]
    assert four["metadata"]["doc_id"] == "fashion_brands_eval-56"
    index56 = [d.id for d in docs].index("fashion_brands_eval-56")
    assert four["metadata"]["uncertainty"] == pytest.approx(1 - _confidence(index56))
    # least certain first: the confidence falls with the index, so the last documents come first
    assert owner.least_certain(5) == [d.id for d in reversed(docs[-5:])]

    ann1, ann2 = argilla_server.annotators
    responses2: dict[str, dict[str, Any]] = {}
    for index, doc in enumerate(docs):
        row = by_id[doc.id]
        value = [{"start": s["start"], "end": s["end"], "label": s["label"]} for s in row["spans"]]
        if doc.id == UTF16_RECORD:
            value = [{"start": codepoint_to_utf16(doc.text, s["start"]), "end": codepoint_to_utf16(doc.text, s["end"]),
                      "label": s["label"]} for s in value]
            assert all(s["start"] != c["start"] for s, c in zip(value, row["spans"], strict=True))
        _respond(argilla_server, ann1.api_key, record_ids[doc.id], "entities", value, "submitted")
        gold = [{"start": s["start"], "end": s["end"], "label": s["label"]} for s in row["spans"]]
        if index < 15:
            responses2[doc.id] = _respond(argilla_server, ann2.api_key, record_ids[doc.id], "entities", gold,
                                          "submitted")
        elif index < 20:
            responses2[doc.id] = _respond(argilla_server, ann2.api_key, record_ids[doc.id], "entities", None,
                                          "discarded")
        elif index < 25:
            responses2[doc.id] = _respond(argilla_server, ann2.api_key, record_ids[doc.id], "entities", gold[:1],
                                          "draft")

    records = list(owner.pull())
    assert [r.id for r in records] == [d.id for d in docs]  # streamed in insert order, none lost
    assert owner.skipped == []
    statuses: dict[str, int] = {}
    for index, record in enumerate(records):
        row = by_id[record.id]
        assert record.text == row["text"]
        assert record.document.meta["section"] == row["meta"]["section"]
        by_annotator = {a.annotator: a for a in record.annotations}
        first_ann = by_annotator["annotator1"]
        assert first_ann.answer == Answer.ACCEPT
        assert {s.key for s in first_ann.spans} == _gold(row), record.id
        assert all(record.text[s.start:s.end] == s.text for s in first_ann.spans)
        assert first_ann.created_at is not None and first_ann.updated_at is not None
        assert first_ann.updated_at.tzinfo is not None
        assert first_ann.native_ids["argilla_user_id"] == ann1.id
        if index < 25:
            second = by_annotator["annotator2"]
            statuses[second.meta["argilla_status"]] = statuses.get(second.meta["argilla_status"], 0) + 1
            expected = Answer.ACCEPT if index < 15 else Answer.IGNORE if index < 20 else Answer.SKIP
            assert second.answer == expected
        else:
            assert set(by_annotator) == {"annotator1"}
        (prediction,) = record.predictions
        assert prediction.model_version == "fashion-ner@0.3"
        assert {s.key for s in prediction.spans} == _gold(row)
        assert [s.score for s in prediction.spans] == [round(_confidence(index) + 0.001 * k, 4)
                                                      for k in range(len(row["spans"]))]
    assert statuses == {"submitted": 15, "discarded": 5, "draft": 5}
    # the UTF-16 offsets were converted, and only those
    assert {where for where, _ in owner.repairs} == {f"{dataset_name}/{UTF16_RECORD}/annotator1"}
    assert len(owner.repairs) == len(by_id[UTF16_RECORD]["spans"])
    assert all("utf16 offsets converted" in note for _, note in owner.repairs)
    # ... and reach the export as span notes (spans_adjusted), never as skipped records
    assert owner.span_notes == [(UTF16_RECORD, "adjusted", "utf16 offsets converted")] * len(owner.repairs)

    accepted = list(owner.pull(answers=[Answer.ACCEPT]))
    assert sum(len(r.annotations) for r in accepted) == len(docs) + 15

    # incremental: nothing changed since the cursor; then annotator2 submits one draft
    cursor = owner.cursor
    assert cursor is not None
    assert list(owner.pull(since=cursor)) == []
    draft_doc = docs[20]
    draft = responses2[draft_doc.id]
    gold = [{"start": s["start"], "end": s["end"], "label": s["label"]} for s in by_id[draft_doc.id]["spans"]]
    with argilla_server.client(ann2.api_key) as api:
        body = {"status": "submitted", "values": {"entities": {"value": gold}}}
        resp = api.put(f"/responses/{draft['id']}", json=body)
        assert resp.status_code == 200, resp.text
    changed = list(owner.pull(since=cursor))
    assert [r.id for r in changed] == [draft_doc.id]
    (only,) = changed[0].annotations
    assert (only.annotator, only.answer) == ("annotator2", Answer.ACCEPT)
    assert {s.key for s in only.spans} == _gold(by_id[draft_doc.id])
    assert owner.cursor is not None and str(owner.cursor) > str(cursor)  # str: the watermark the CLI prints
    # a deleted response is named on the next incremental pull (Argilla keeps no trace of it)
    after_edit = owner.cursor
    with argilla_server.client(ann2.api_key) as api:
        assert api.delete(f"/responses/{draft['id']}").status_code == 200
    (gone,) = owner.pull(since=after_edit)
    assert gone.id == draft_doc.id and gone.annotations == []
    assert gone.native_ids["deleted_annotation_ids"] == [str(draft["id"])]
    assert list(owner.pull(since=owner.cursor)) == []

    # merge -> DocBin with the core exporter
    from annobridge.export import export

    out = tmp_path / "corpus"
    report = export(owner, out, task="ner", labels=LABELS, split="1")
    assert report.balanced
    assert report.records_read == len(docs)
    assert report.records_exported == len(docs)
    assert report.data_errors == 0
    assert report.annotators["annotator1"] == len(docs)
    exported: dict[str, set[tuple[int, int, str]]] = {}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    bins: dict[str, list[Any]] = {}
    import spacy

    vocab = spacy.blank("en").vocab
    for entry in manifest:
        path = next(out.rglob(entry["file"])) if not (out / entry["file"]).exists() else out / entry["file"]
        if entry["file"] not in bins:
            bins[entry["file"]] = list(DocBin().from_disk(path).get_docs(vocab))
        doc = bins[entry["file"]][entry["index"]]
        exported[entry["id"]] = {(e.start_char, e.end_char, e.label_) for e in doc.ents}
    assert exported == {r["id"]: _gold(r) for r in fashion}


def test_annotator_key_sees_only_its_own_work(argilla_server: Any, open_adapter: Any, dataset_name: str,
                                              fashion: list[dict[str, Any]]) -> None:
    owner = open_adapter(dataset_name)
    docs = _docs(fashion[:6])
    result = owner.import_documents(docs, schema=LabelSchema(TaskKind.NER, LABELS))
    ann1, ann2 = argilla_server.annotators
    for doc in docs[:3]:
        spans = [{"start": s["start"], "end": s["end"], "label": s["label"]} for s in fashion[docs.index(doc)]["spans"]]
        _respond(argilla_server, ann1.api_key, result.native_ids[doc.id], "entities", spans, "submitted")
        _respond(argilla_server, ann2.api_key, result.native_ids[doc.id], "entities", None, "discarded")

    mine = open_adapter(dataset_name, api_key=ann1.api_key)
    from annobridge.errors import AdapterError

    with pytest.raises(AdapterError, match="403") as info:
        mine.import_documents([Document("new", "some text")])
    assert ann1.api_key not in str(info.value)
    records = list(mine.pull())
    assert len(records) == len(docs)
    annotators = {a.annotator for r in records for a in r.annotations}
    assert annotators == {"annotator1"}  # the owner key is needed for everyone's responses
    assert sum(len(r.annotations) for r in records) == 3
    full = list(owner.pull())
    assert sum(len(r.annotations) for r in full) == 6


def test_textcat_and_multilabel(argilla_server: Any, open_adapter: Any, dataset_name: str,
                                sms: list[dict[str, Any]], tmp_path: Path) -> None:
    adapter = open_adapter(dataset_name)
    docs = [Document(r["id"], r["text"], {"source": "uci-sms"}) for r in sms]
    preds = {r["id"]: Prediction("spam-clf-1", categories={"spam": 0.9 if r["label"] == "spam" else 0.2,
                                                            "ham": 0.1 if r["label"] == "spam" else 0.8})
             for r in sms}
    result = adapter.import_documents(docs, schema=LabelSchema(TaskKind.TEXTCAT, ["ham", "spam"]), predictions=preds)
    assert (result.created, result.failed) == (len(docs), [])
    ann1, _ = argilla_server.annotators
    for r in sms:
        _respond(argilla_server, ann1.api_key, result.native_ids[r["id"]], "label", r["label"], "submitted")
    records = {rec.id: rec for rec in adapter.pull()}
    for r in sms:
        rec = records[r["id"]]
        (ann,) = rec.annotations
        assert ann.categories == {"ham": float(r["label"] == "ham"), "spam": float(r["label"] == "spam")}
        (pred,) = rec.predictions
        top = "spam" if r["label"] == "spam" else "ham"
        assert pred.categories == {top: pytest.approx(0.9 if top == "spam" else 0.8)}
        assert rec.document.meta["source"] == "uci-sms"
    from annobridge.export import export

    report = export(adapter, tmp_path / "tc", task="textcat", labels=["ham", "spam"], split="1")
    assert report.records_exported == len(sms) and report.balanced

    multi = open_adapter(dataset_name + "-m")
    schema = LabelSchema(TaskKind.TEXTCAT_MULTILABEL, ["offer", "prize", "chat"])
    mres = multi.import_documents(
        docs[:4], schema=schema,
        predictions={docs[0].id: Prediction("m1", categories={"offer": 0.7, "prize": 0.6, "chat": 0.1}),
                     # nothing above 0.5: Argilla refuses an empty multi-label suggestion, so none is sent
                     docs[1].id: Prediction("m1", categories={"offer": 0.3, "prize": 0.2, "chat": 0.1})},
    )
    assert (mres.created, mres.failed) == (4, [])
    _respond(argilla_server, ann1.api_key, mres.native_ids[docs[0].id], "labels", ["offer", "prize"], "submitted")
    first, second, *_ = multi.pull()
    assert first.annotations[0].categories == {"offer": 1.0, "prize": 1.0, "chat": 0.0}
    assert first.predictions[0].categories == {"offer": 0.7, "prize": 0.6}
    assert second.predictions == []
    # uncertainty 1 - 2 * min|p - 0.5|: 0.8 (prize 0.6 is close to the threshold) vs 0.6
    assert multi.least_certain(2) == [docs[0].id, docs[1].id]

    with pytest.raises(Exception, match="at least two labels"):
        open_adapter(dataset_name + "-b").ensure_project(LabelSchema(TaskKind.TEXTCAT, ["spam"]))


def test_wrong_key_and_unknown_dataset(argilla_server: Any, open_adapter: Any, dataset_name: str) -> None:
    from annobridge.errors import AdapterError, UsageError

    bad = open_adapter(dataset_name, api_key="not-a-key-1234")
    with pytest.raises(AdapterError, match="401") as info:
        bad.count()
    assert "not-a-key-1234" not in str(info.value)
    with pytest.raises(UsageError, match="no dataset"):
        list(open_adapter("does-not-exist").pull())
    with httpx.Client() as client:  # the server itself is fine
        assert client.get(argilla_server.url + "/api/v1/version").status_code == 200
