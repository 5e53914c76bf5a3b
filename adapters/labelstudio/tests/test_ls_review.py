"""Adjudication round trip on a real Label Studio: two annotators disagree, a reviewer decides, export uses it.

Everything a person does goes through the REST calls Label Studio's web UI sends, with each person's own
token: two annotators label WNUT-17 tweets (one of them misses or mislabels entities in half of them), a
third account adjudicates in the review project where each annotator's version is a prediction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ls_helpers import LabelStudioServer, adapter_for, load_docs, post_annotation, ui_span

from annobridge.export import export
from annobridge.model import LabelSchema, Span, TaskKind
from annobridge.review import AGREED, REVIEW_META_KEY, Adjudicated, review

pytestmark = pytest.mark.server

LABELS = ["corporation", "creative-work", "group", "location", "person", "product"]


def _items(doc_text: str, spans: list[Span], tag: str) -> list[dict[str, object]]:
    return [ui_span(s.start, s.end, doc_text[s.start : s.end], s.label, f"{tag}-{k}") for k, s in enumerate(spans)]


def test_review_round_trip_label_studio(ls_server: LabelStudioServer, new_project_url: str, tmp_path: Path) -> None:
    import spacy
    from spacy.tokens import DocBin

    docs = [(d, s) for d, s in load_docs("wnut17_dev_sample.jsonl") if len(s) >= 2][:8]
    assert len(docs) == 8
    schema = LabelSchema(TaskKind.NER, LABELS)
    source = adapter_for(ls_server, new_project_url)
    tasks = source.import_documents([d for d, _ in docs], schema=schema).native_ids
    ann1, ann2, reviewer = ls_server.annotators
    second: dict[str, list[Span]] = {}
    for n, (doc, spans) in enumerate(docs):
        post_annotation(ls_server, ann1, tasks[doc.id], _items(doc.text, spans, f"a{n}"))
        # ann2 agrees on the first four; on the rest misses the last entity and mislabels the first
        theirs = spans if n < 4 else [Span(spans[0].start, spans[0].end, "product"), *spans[1:-1]]
        second[doc.id] = theirs
        post_annotation(ls_server, ann2, tasks[doc.id], _items(doc.text, theirs, f"b{n}"))

    # without a reviewer, majority decides per span: nothing is lost for the two disputed entities a doc has
    with adapter_for(ls_server, new_project_url) as plain:
        merged = export(plain, tmp_path / "majority", task="ner", split="1,0", policy="majority", align="strict")
    assert merged.records_exported == 8 and merged.balanced and merged.docs_with_disputes == 4
    nlp_ = spacy.blank("en")
    by_text = {d.text: d for f in sorted((tmp_path / "majority").rglob("*.spacy"))
               for d in DocBin().from_disk(f).get_docs(nlp_.vocab)}
    for doc, spans in docs:
        ents = {(e.start_char, e.end_char, e.label_) for e in by_text[doc.text].ents}
        agreed = {s.key for s in spans} & {s.key for s in second[doc.id]}
        assert ents == agreed  # every entity both marked, and nothing either marked alone
        if doc.id in {d.id for d, _ in docs[4:]}:
            first, last = spans[0], spans[-1]
            for s in (first, last):  # what they disagree on is missing, not "outside"
                span = by_text[doc.text].char_span(s.start, s.end)
                assert span is not None and all(t.ent_iob == 0 for t in span)

    review_url = new_project_url.replace("annobridge-test", "annobridge-review")
    dest = adapter_for(ls_server, review_url)
    report = review(source, dest, task="ner", labels=LABELS)
    assert report.records == 8 and report.conflicts == 4
    assert (report.sent.created, report.sent.existing, report.sent.failed) == (4, 0, [])
    assert report.not_sent == {AGREED: 4} and report.balanced
    assert report.decisions_at == dest.url.raw and report.reviewer_command is None

    # the reviewer sees each annotator's version as a prediction named after them
    sent = {r.id: r for r in dest.pull()}
    disputed = {doc.id: spans for doc, spans in docs[4:]}
    assert set(sent) == set(disputed)
    for doc_id, record in sent.items():
        versions = {p.model_version: sorted(s.key for s in p.spans) for p in record.predictions}
        assert versions == {ann1.email: sorted(s.key for s in disputed[doc_id]),
                            ann2.email: sorted(s.key for s in second[doc_id])}
        assert set(record.document.meta[REVIEW_META_KEY]) == {ann1.email, ann2.email}
        assert record.annotations == []
    again = review(source, adapter_for(ls_server, review_url), task="ner", labels=LABELS)
    assert (again.sent.created, again.sent.existing) == (0, 4)

    # the reviewer decides: ann1 is right on two, on the other two ann2's label but all of ann1's entities
    decided: dict[str, list[Span]] = {}
    for n, (doc_id, record) in enumerate(sorted(sent.items())):
        spans = disputed[doc_id]
        choice = spans if n < 2 else [Span(spans[0].start, spans[0].end, "product"), *spans[1:]]
        decided[doc_id] = choice
        post_annotation(ls_server, reviewer, record.native_ids["task_id"], _items(record.text, choice, f"r{n}"))

    out = tmp_path / "corpus"
    with Adjudicated(adapter_for(ls_server, new_project_url), adapter_for(ls_server, review_url)) as adjudicated:
        result = export(adjudicated, out, task="ner", split="1,0", policy="ground_truth", align="strict")
    assert result.balanced and result.records_exported == 8, result.to_dict()
    nlp = spacy.blank("en")
    got = {d.text: sorted((e.start_char, e.end_char, e.label_) for e in d.ents)
           for f in sorted(out.rglob("*.spacy")) for d in DocBin().from_disk(f).get_docs(nlp.vocab)}
    for doc, spans in docs:
        want = decided.get(doc.id, spans)
        assert got[doc.text] == sorted(s.key for s in want)
    assert reviewer.email in result.annotators


def test_annotators_per_doc_is_label_studios_overlap(ls_server: LabelStudioServer, new_project_url: str) -> None:
    import httpx

    adapter = adapter_for(ls_server, new_project_url)
    adapter.ensure_project(LabelSchema(TaskKind.NER, LABELS))
    assert "2 annotator" in adapter.set_annotators_per_doc(2)
    project = httpx.get(f"{ls_server.url}/api/projects/{adapter.project_id}/",
                        headers={"Authorization": f"Token {ls_server.admin.token}"}, timeout=60).json()
    assert (project["maximum_annotations"], project["overlap_cohort_percentage"]) == (2, 100)
