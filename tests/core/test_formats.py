"""LeanDocBin writes files that read back exactly like spaCy's own DocBin."""

from pathlib import Path

import spacy
from spacy.tokens import DocBin, Span

from annobridge.formats import DOCBIN_ATTRS, LeanDocBin

NLP = spacy.blank("en")


def _docs():
    a = NLP.make_doc("Maria  moved to Oslo 😀 with Acme Corp.\nNew line")
    a.set_ents([a.char_span(0, 5, "PERSON"), a.char_span(16, 20, "GPE")], default="outside")
    acme = next(t.i for t in a if t.text == "Acme")
    a.spans["sc"] = [Span(a, acme, acme + 2, "ORG"), Span(a, acme, acme + 1, "ORG_NAME")]
    b = NLP.make_doc("binary answer leaves the rest missing")
    b.set_ents([Span(b, 0, 1, "X")], default="missing")
    b.spans["incorrect_spans"] = [Span(b, 2, 3, "X")]
    c = NLP.make_doc("cheap pills")
    c.cats = {"spam": 1.0, "ham": 0.0}
    return [a, b, c]


def _read(path: Path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def _summary(doc):
    return (
        doc.text,
        [(t.ent_iob_, t.ent_type_) for t in doc],
        {k: [(s.start, s.end, s.label_) for s in g] for k, g in doc.spans.items()},
        doc.cats,
        [t.whitespace_ for t in doc],
    )


def test_lean_docbin_round_trips_like_docbin(tmp_path: Path) -> None:
    lean, plain = LeanDocBin(attrs=DOCBIN_ATTRS), DocBin(attrs=DOCBIN_ATTRS)
    for doc in _docs():
        lean.add(doc)
        plain.add(doc)
    lean.to_disk(tmp_path / "lean.spacy")
    plain.to_disk(tmp_path / "plain.spacy")
    lean_docs = [_summary(d) for d in _read(tmp_path / "lean.spacy")]
    assert lean_docs == [_summary(d) for d in _read(tmp_path / "plain.spacy")]
    assert lean_docs == [_summary(d) for d in _docs()]
    assert len(lean.strings) < len(plain.strings)


def test_other_attrs_fall_back_to_docbin() -> None:
    lean = LeanDocBin(attrs=["ORTH", "LEMMA"])
    doc = NLP.make_doc("hello world")
    doc[0].lemma_ = "hi"
    lean.add(doc)
    assert "hi" in lean.strings
