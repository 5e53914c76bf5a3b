"""Review and overlap on a real doccano: what its interface can show a reviewer, and its missing overlap setting."""

from __future__ import annotations

from typing import Any

import pytest
from test_doccano import ner_corpus, u16

from annobridge.errors import UsageError
from annobridge.export import export
from annobridge.model import LabelSchema, TaskKind
from annobridge.review import REVIEW_META_KEY, Adjudicated, review


def test_review_puts_each_version_in_the_metadata(make_adapter: Any, annotators: list[Any], tmp_path: Any) -> None:
    source = make_adapter(collaborative="false")
    docs, _, labels = ner_corpus(4)
    schema = LabelSchema(TaskKind.NER, labels)
    source.ensure_project(schema)
    ids = source.import_documents(docs).native_ids
    ann1, ann2 = annotators
    pid = source.project_id
    for n, doc in enumerate(docs):  # both label the first word; they disagree on its label in two documents
        word = doc.text.split(" ")[0]
        ann1.add_span(pid, ids[doc.id], *u16(doc.text, 0, len(word)), labels[0])
        ann2.add_span(pid, ids[doc.id], *u16(doc.text, 0, len(word)), labels[0] if n < 2 else labels[1])

    dest = make_adapter(collaborative="false")
    report = review(source, dest, task="ner", labels=labels)
    assert (report.conflicts, report.sent.created, report.sent.failed) == (2, 2, [])
    sent = {r.id: r for r in dest.pull()}
    assert set(sent) == {docs[2].id, docs[3].id}
    for record in sent.values():
        summary = record.document.meta[REVIEW_META_KEY]
        word = record.text.split(" ")[0]
        assert summary == {"annotator1": f"{labels[0]} {word!r}", "annotator2": f"{labels[1]} {word!r}"}
        assert record.annotations == [] and record.predictions == []

    # the reviewer (annotator1 here) labels in the review project; the export takes it as ground truth
    rid = dest.project_id
    for record in sent.values():
        word = record.text.split(" ")[0]
        ann1.add_span(rid, record.native_ids["example"], *u16(record.text, 0, len(word)), labels[1])
    with Adjudicated(source, dest) as adjudicated:
        result = export(adjudicated, tmp_path / "out", task="ner", split="1,0", policy="ground_truth")
    assert result.balanced and result.records_exported == 4


def test_no_overlap_setting_is_refused_before_anything_is_sent(make_adapter: Any) -> None:
    adapter = make_adapter()
    with pytest.raises(UsageError, match="every project member sees every example"):
        adapter.set_annotators_per_doc(2)


def test_copy_into_doccano_refuses_annotations_with_the_reason(make_adapter: Any, tmp_path: Any) -> None:
    """The copy matrix's doccano step: documents and predictions arrive; annotations are refused, each with why."""
    from annobridge import open_adapter
    from annobridge.adapters.jsonl import write_records
    from annobridge.copy import copy_project
    from annobridge.model import Annotation, Record

    docs, preds, labels = ner_corpus(3)
    src = tmp_path / "records.jsonl"
    records = [Record(d, [Annotation("alice", spans=list(preds[d.id].spans))], [preds[d.id]]) for d in docs]
    write_records(src, records)
    dest = make_adapter(collaborative="true")
    with open_adapter(f"jsonl:{src}") as source:
        report = copy_project(source, dest, task="ner", labels=labels)
    assert (report.documents.created, report.predictions.failed) == (3, [])
    assert report.annotations.created == 0 and report.balanced
    assert {why for _, why in report.annotations.failed} == {
        "the doccano adapter cannot write annotations as their annotators"}
    pulled = {r.id: r for r in dest.pull()}
    assert set(pulled) == {d.id for d in docs}
    for d in docs:
        assert [p.model_version for p in pulled[d.id].predictions] == [preds[d.id].model_version]
