"""Every repair a span gets is counted by kind and names its document; duplicates after repair merge."""

from __future__ import annotations

import json
from pathlib import Path

import spacy

from annobridge.adapters.jsonl import write_records
from annobridge.convert import DUPLICATE_MERGED, DUPLICATE_REPAIRED_MERGED, DocConverter, SpanEvent
from annobridge.export import export
from annobridge.model import Annotation, Document, LabelSchema, Record, Span
from annobridge.offsets import codepoint_to_utf16
from annobridge_prodigy.tasks import parse_task

DATA = Path(__file__).resolve().parents[1] / "data"
NLP = spacy.blank("en")


def convert(record: Record, task: str = "ner", **kw: object):  # type: ignore[no-untyped-def]
    return DocConverter(NLP, LabelSchema(task, []), **kw).convert(record)  # type: ignore[arg-type]


def u16(text: str, start: int, end: int) -> tuple[int, int]:
    return codepoint_to_utf16(text, start), codepoint_to_utf16(text, end)


def test_each_repair_is_its_own_event_and_names_the_document() -> None:
    text = "🎉 Party with Maria tonight"
    m = text.index("Maria")
    padded = Span(*u16(text, m - 1, m + 5), "PERSON", text=" Maria")  # UTF-16 offsets and a leading space
    record = Record(Document.create(text, id="doc-7"), [Annotation("a", spans=[padded])])
    result = convert(record)
    assert [e.text for e in result.doc.ents] == ["Maria"]
    assert result.doc_id == "doc-7"
    assert result.span_events == [
        SpanEvent("adjusted", "utf16 offsets converted", "doc-7", padded.start, padded.end, "PERSON"),
        SpanEvent("adjusted", "whitespace trimmed", "doc-7", padded.start, padded.end, "PERSON"),
    ]
    assert result.span_notes == [e.note for e in result.span_events]


def test_every_kind_of_repair_and_drop_is_reported_with_its_document() -> None:
    text = "Maria\r\nmoved to Oslo and Bergen with Acmecorp"
    crlf = Span(text.index("Oslo") - 1, text.index("Oslo") + 3, "GPE", text="Oslo")  # counted "\r\n" as one
    moved = Span(0, 6, "GPE", text="Bergen")  # wrong offsets, its text occurs once
    partial = Span(text.index("Acme"), text.index("Acme") + 4, "ORG")  # inside the token "Acmecorp"
    lost = Span(0, 5, "PERSON", text="Nobody")
    record = Record(Document.create(text, id="d-crlf"), [Annotation("a", spans=[crlf, moved, partial, lost])])
    result = convert(record)
    kinds = [(e.kind, e.why) for e in result.span_events]
    assert kinds == [
        ("adjusted", "\\r\\n counted as one character"),
        ("adjusted", "moved to the only occurrence of its text"),
        ("adjusted", "aligned to token boundaries (expand)"),
        ("dropped", "span text not found in the document"),
    ]
    assert {e.doc_id for e in result.span_events} == {"d-crlf"}
    assert sorted(e.text for e in result.doc.ents) == ["Acmecorp", "Bergen", "Oslo"]


def test_two_annotators_units_of_one_entity_merge_into_one() -> None:
    # binary answers: one annotator's tool counted UTF-16, the other's code points; the same entity
    text = "😀 Zara opened in Oslo"
    z = text.index("Zara")
    as_16 = Span(*u16(text, z, z + 4), "ORG", text="Zara")
    as_cp = Span(z, z + 4, "ORG", text="Zara")
    record = Record(
        Document.create(text, id="two-units"),
        [Annotation("a", spans=[as_16], mode="binary"), Annotation("b", spans=[as_cp], mode="binary")],
    )
    result = convert(record)
    assert [e.text for e in result.doc.ents] == ["Zara"]
    notes = result.span_notes
    assert f"adjusted: {DUPLICATE_REPAIRED_MERGED}" in notes
    assert not any(n.startswith("dropped") for n in notes), notes  # before: "overlaps a longer entity"
    # spans task: merged the same way, and counted (before: silently deduplicated)
    spans = convert(record, "spans")
    assert [s.text for s in spans.doc.spans["sc"]] == [
        "Zara"
    ] and f"adjusted: {DUPLICATE_REPAIRED_MERGED}" in spans.span_notes


def test_duplicates_within_one_annotation_merge_and_are_counted() -> None:
    text = "Maria moved to Oslo."
    record = Record(
        Document.create(text, id="dup"), [Annotation("a", spans=[Span(15, 19, "GPE"), Span(15, 19, "GPE")])]
    )
    result = convert(record)
    assert [e.text for e in result.doc.ents] == ["Oslo"]
    assert result.span_notes == [f"adjusted: {DUPLICATE_MERGED}"]


def test_export_lists_repairs_per_reason_with_document_ids(tmp_path: Path) -> None:
    text = "😀 Zara opened in Oslo"
    z = text.index("Zara")
    binary = [
        Annotation("a", spans=[Span(*u16(text, z, z + 4), "ORG", text="Zara")], mode="binary"),
        Annotation("b", spans=[Span(z, z + 4, "ORG", text="Zara")], mode="binary"),
    ]
    records = [
        Record(Document.create(text, id="both-units"), binary),
        Record(Document.create("Maria moved to Oslo.", id="plain"), [Annotation("a", spans=[Span(0, 5, "PERSON")])]),
    ]
    path = tmp_path / "records.jsonl"
    write_records(path, records)
    report = export(f"jsonl:{path}", tmp_path / "out", task="ner", split="1,0,0")
    assert report.spans_adjusted == {"utf16 offsets converted": 1, DUPLICATE_REPAIRED_MERGED: 1}
    assert report.data_errors == 0 and not report.spans_dropped
    assert report.span_examples[f"adjusted: {DUPLICATE_REPAIRED_MERGED}"] == ["both-units"]


def test_real_emoji_data_needs_no_repair_and_loses_nothing() -> None:
    # real Reddit comments with emoji before brand names (code points, with their text): nothing to repair
    rows = [json.loads(line) for line in (DATA / "argilla" / "fashion_brands_sample.jsonl").open(encoding="utf-8")]
    converter = DocConverter(NLP, LabelSchema("ner", []))
    for row in rows:
        spans = [Span(s["start"], s["end"], s["label"], text=s.get("text")) for s in row.get("spans", [])]
        record = Record(Document.create(row["text"], id=row["id"]), [Annotation("a", spans=spans)])
        result = converter.convert(record)
        assert result.span_events == [], (row["id"], result.span_notes)
        # the same spans in UTF-16 units with their text: each converted, nothing else
        spans16 = [Span(*u16(row["text"], s.start, s.end), s.label, text=s.text) for s in spans]
        result16 = converter.convert(Record(record.document, [Annotation("a", spans=spans16)]))
        assert {e.why for e in result16.span_events} <= {"utf16 offsets converted"}
        assert sorted(e.text for e in result16.doc.ents) == sorted(e.text for e in result.doc.ents)
    assert converter.units.proofs["codepoint"] > 0 and converter.units.proofs["utf16"] > 0
    # Prodigy tweets (real, emoji and repeated answers): no event at all
    tweets = [json.loads(line) for line in (DATA / "prodigy" / "ner_tweets_sample.jsonl").open(encoding="utf-8")]
    for task in tweets:
        parsed = parse_task(task)
        result = converter.convert(Record(parsed.document, parsed.annotations))
        assert not result.span_events, (task.get("text"), result.span_notes)
