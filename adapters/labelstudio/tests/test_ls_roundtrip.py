"""Import -> predictions -> annotations by two annotators (their own tokens, as the UI posts) -> pull -> check."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from ls_helpers import LabelStudioServer, adapter_for, load_docs, post_annotation, ui_span

from annobridge.model import Answer, LabelSchema, Prediction, Span, TaskKind
from annobridge.offsets import codepoint_to_utf16

pytestmark = pytest.mark.server

LABELS = ["corporation", "creative-work", "group", "location", "person", "product"]


def test_round_trip_two_annotators(ls_server: LabelStudioServer, new_project_url: str) -> None:
    # Those with an emoji before an entity, more emoji ones, a few plain ones and the CJK ones (a short run:
    # annotations are posted one by one, as the UI does, at a handful per second).
    wnut = load_docs("wnut17_dev_sample.jsonl")
    emoji_first = [(d, s) for d, s in wnut if s and any(ord(c) > 0xFFFF for c in d.text[: s[-1].start])]
    emoji = [(d, s) for d, s in wnut if any(ord(c) > 0xFFFF for c in d.text) and (d, s) not in emoji_first]
    plain = [(d, s) for d, s in wnut if not any(ord(c) > 0xFFFF for c in d.text)][:4]
    docs = emoji_first + emoji[:13] + plain + load_docs("cjk.jsonl")
    assert len(docs) == 24 and emoji_first
    gold = {doc.id: spans for doc, spans in docs}
    text = {doc.id: doc.text for doc, _ in docs}
    schema = LabelSchema(TaskKind.NER, LABELS)
    adapter = adapter_for(ls_server, new_project_url)
    before = datetime.now(timezone.utc)

    # 1. import with the first model's predictions inline (scores per region; per task = least confident region)
    v1 = {doc.id: Prediction("m-v1", [Span(s.start, s.end, s.label, score=0.5 + i / 200) for s in spans])
          for i, (doc, spans) in enumerate(docs) if spans}
    result = adapter.import_documents([d for d, _ in docs], schema=schema, predictions=v1)
    assert (result.created, result.existing, result.failed) == (len(docs), 0, [])
    task_of = result.native_ids
    assert set(task_of) == set(gold)

    # 2. push a second model in bulk; the project serves the least certain task first
    v2 = [(doc, Prediction("m-v2", [Span(s.start, s.end, s.label, score=0.9) for s in spans],
                           score=0.05 if doc.id == "cjk-2" else 0.6 + len(doc.text) / 1000))
          for doc, spans in docs]
    pushed = adapter.push_predictions(v2)
    assert (pushed.created, pushed.existing) == (len(docs), 0)
    project = adapter.project()
    assert project["model_version"] == "m-v2"
    assert project["sampling"] == "Uncertainty sampling"
    nxt = httpx.get(f"{ls_server.url}/api/projects/{adapter.project_id}/next/",
                    headers={"Authorization": f"Token {ls_server.annotators[0].token}"}, timeout=60)
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["id"] == task_of["cjk-2"]

    # 3. annotators label as the UI does: ann1 labels everything, ann2 skips one task and labels the others
    ann1, ann2, _ = ls_server.annotators
    utf16_doc = next(d for d, spans in docs if spans and any(ord(c) > 0xFFFF for c in d.text[: spans[-1].start]))
    for n, (doc, spans) in enumerate(docs):
        result_items = []
        for k, s in enumerate(spans):
            start, end = s.start, s.end
            if doc.id == utf16_doc.id:  # an old front end counted JavaScript (UTF-16) units
                start, end = codepoint_to_utf16(doc.text, start), codepoint_to_utf16(doc.text, end)
            result_items.append(ui_span(start, end, doc.text[s.start:s.end], s.label, f"r{n}-{k}"))
        post_annotation(ls_server, ann1, task_of[doc.id], result_items, lead_time=3.0 + n)
        if doc.id == "cjk-1":
            post_annotation(ls_server, ann2, task_of[doc.id], [], was_cancelled=True)
        else:
            post_annotation(ls_server, ann2, task_of[doc.id], result_items[:1], ground_truth=doc.id == "cjk-3")

    # 4. pull everything back
    records = {r.id: r for r in adapter.pull()}
    assert set(records) == set(gold)
    assert adapter.skipped == []
    assert any(where.startswith(f"task {task_of[utf16_doc.id]} ") for where, _ in adapter.repaired)
    # the repairs are span notes the export counts (spans_adjusted), never skipped records
    assert any("utf16" in why for doc_id, kind, why in adapter.span_notes if doc_id == utf16_doc.id)
    assert {doc_id for doc_id, kind, _ in adapter.span_notes if kind == "adjusted"} >= {utf16_doc.id}
    for doc_id, record in records.items():
        assert record.text == text[doc_id]
        assert record.native_ids["task_id"] == task_of[doc_id]
        by = {a.annotator: a for a in record.annotations}
        assert set(by) == {ann1.email, ann2.email}
        first = by[ann1.email]
        assert first.answer == Answer.ACCEPT
        assert sorted(s.key for s in first.spans) == sorted(s.key for s in gold[doc_id])
        for s in first.spans:
            assert record.text[s.start:s.end] == s.text
        assert first.meta["lead_time"] == pytest.approx(3.0 + list(gold).index(doc_id))
        assert first.created_at is not None and first.created_at >= before
        assert first.updated_at is not None and first.updated_at >= first.created_at
        second = by[ann2.email]
        if doc_id == "cjk-1":
            assert second.answer == Answer.SKIP and second.spans == []
        else:
            assert second.answer == Answer.ACCEPT
            assert [s.key for s in second.spans] == [s.key for s in gold[doc_id][:1]]
        assert second.ground_truth == (doc_id == "cjk-3")
        assert first.native_ids["user_id"] == ann1.id
        versions = sorted(p.model_version for p in record.predictions)
        assert versions == (["m-v1", "m-v2"] if gold[doc_id] else ["m-v2"])
        p2 = next(p for p in record.predictions if p.model_version == "m-v2")
        assert sorted(s.key for s in p2.spans) == sorted(s.key for s in gold[doc_id])
        assert all(s.score == pytest.approx(0.9) for s in p2.spans)
        if doc_id in v1:
            p1 = next(p for p in record.predictions if p.model_version == "m-v1")
            assert p1.score == pytest.approx(min(s.score for s in v1[doc_id].spans if s.score is not None))
    assert records["cjk-2"].predictions and next(
        p for p in records["cjk-2"].predictions if p.model_version == "m-v2").score == pytest.approx(0.05)
    repaired = next(a for a in records[utf16_doc.id].annotations if a.annotator == ann1.email)
    assert "utf16 offsets converted" in " ".join(repaired.meta["offsets_repaired"])

    # 5. only skipped ones, through the answers filter
    skipped = [r for r in adapter.pull(answers=[Answer.SKIP]) if r.annotations]
    assert [(r.id, [a.annotator for a in r.annotations]) for r in skipped] == [("cjk-1", [ann2.email])]
    adapter.close()


def test_merge_to_docbin(ls_server: LabelStudioServer, new_project_url: str, tmp_path: Path) -> None:
    """The last step of the round trip: both annotators' labels merged and written as DocBin files."""
    import spacy
    from spacy.tokens import DocBin

    from annobridge.export import export

    # WNUT texts are space-joined tokens, so every entity sits on token boundaries; the CJK ones do not.
    docs = load_docs("wnut17_dev_sample.jsonl")[:10] + load_docs("cjk.jsonl")[:2]
    adapter = adapter_for(ls_server, new_project_url)
    result = adapter.import_documents([d for d, _ in docs], schema=LabelSchema(TaskKind.NER, LABELS))
    for n, (doc, spans) in enumerate(docs):
        items = [ui_span(s.start, s.end, doc.text[s.start:s.end], s.label, f"m{n}-{k}") for k, s in enumerate(spans)]
        for user in ls_server.annotators:
            post_annotation(ls_server, user, result.native_ids[doc.id], items)
    out = tmp_path / "corpus"
    report = export(adapter, out, task="ner", align="strict")
    assert report.balanced
    assert report.records_read == len(docs)
    assert set(report.annotators) == {u.email for u in ls_server.annotators}
    nlp = spacy.blank("en")
    got = {}
    for f in sorted(out.rglob("*.spacy")):
        for d in DocBin().from_disk(f).get_docs(nlp.vocab):
            got[d.text] = sorted((e.start_char, e.end_char, e.label_) for e in d.ents)
    want = {doc.text: sorted(s.key for s in spans) for doc, spans in docs}
    for doc, _ in docs[:10]:
        assert got[doc.text] == want[doc.text]
    # CJK entities do not fall on the whitespace tokenizer's boundaries: dropped, and counted, not moved.
    for doc, _ in docs[10:]:
        assert set(got.get(doc.text, [])) <= set(want[doc.text])
    assert sum(report.spans_dropped.values()) > 0
