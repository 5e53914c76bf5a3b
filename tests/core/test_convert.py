import pytest
import spacy

from annobridge.convert import INCORRECT_SPANS_KEY, DocConverter
from annobridge.errors import UsageError
from annobridge.model import Annotation, Answer, Document, LabelSchema, Record, Span

NLP = spacy.blank("en")


def convert(record: Record, task: str, labels=(), **kw):
    return DocConverter(NLP, LabelSchema(task, list(labels)), **kw).convert(record)


def test_manual_ner_marks_the_rest_outside() -> None:
    rec = Record(Document.create("Maria moved to Oslo."), [Annotation("a", spans=[Span(0, 5, "PERSON")])])
    doc = convert(rec, "ner").doc
    assert [(e.text, e.label_) for e in doc.ents] == [("Maria", "PERSON")]
    assert [t.ent_iob_ for t in doc] == ["B", "O", "O", "O", "O"]


def test_binary_ner_leaves_the_rest_missing_and_keeps_rejects() -> None:
    rec = Record(
        Document.create("Maria moved to Oslo."),
        [
            Annotation("a", spans=[Span(0, 5, "PERSON")], mode="binary"),
            Annotation("a", spans=[Span(15, 19, "PERSON")], mode="binary", answer=Answer.REJECT),
        ],
    )
    doc = convert(rec, "ner").doc
    assert [t.ent_iob_ for t in doc] == ["B", "", "", "", ""]
    assert [(s.text, s.label_) for s in doc.spans[INCORRECT_SPANS_KEY]] == [("Oslo", "PERSON")]


def test_overlapping_spans_go_to_span_group_or_are_reported_for_ner() -> None:
    spans = [Span(0, 10, "ORG"), Span(0, 5, "PERSON")]
    rec = Record(Document.create("Maria Corp sells"), [Annotation("a", spans=spans)])
    spans_doc = convert(rec, "spans").doc
    assert sorted(s.text for s in spans_doc.spans["sc"]) == ["Maria", "Maria Corp"]
    ner = convert(rec, "ner")
    assert [e.text for e in ner.doc.ents] == ["Maria Corp"]
    assert ner.span_notes == ["dropped: overlaps a longer entity (ner allows no overlaps)"]


def test_alignment_modes() -> None:
    rec = Record(Document.create("Mariana moved"), [Annotation("a", spans=[Span(0, 5, "PERSON")])])
    assert convert(rec, "ner", align="strict").span_notes == ["dropped: does not align with token boundaries"]
    expanded = convert(rec, "ner", align="expand")
    assert [e.text for e in expanded.doc.ents] == ["Mariana"]
    assert expanded.span_notes == ["adjusted: aligned to token boundaries (expand)"]
    assert convert(rec, "ner", align="contract").doc.ents == ()


def test_label_outside_label_set_is_dropped() -> None:
    rec = Record(Document.create("Maria moved"), [Annotation("a", spans=[Span(0, 5, "PER")])])
    assert convert(rec, "ner", labels=["PERSON"]).span_notes == ["dropped: label 'PER' not in the label set"]


def test_exclusive_textcat_gets_every_label_and_exactly_one_positive() -> None:
    rec = Record(Document.create("cheap pills"), [Annotation("a", categories={"spam": 1.0})])
    doc = convert(rec, "textcat", labels=["ham", "spam"]).doc
    assert doc.cats == {"ham": 0.0, "spam": 1.0}
    two = Record(Document.create("x"), [Annotation("a", categories={"spam": 1.0, "ham": 1.0})])
    assert convert(two, "textcat", labels=["ham", "spam"]).reason == "exclusive textcat needs exactly one label, got 2"
    with pytest.raises(UsageError):
        DocConverter(NLP, LabelSchema("textcat", ["spam"]))


def test_multilabel_keeps_only_judged_labels() -> None:
    rec = Record(
        Document.create("how to bake bread"),
        [
            Annotation("a", categories={"baking": 1.0}, mode="binary"),
            Annotation("b", categories={"eggs": 1.0}, mode="binary", answer=Answer.REJECT),
        ],
    )
    assert convert(rec, "textcat_multilabel").doc.cats == {"baking": 1.0, "eggs": 0.0}
