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
