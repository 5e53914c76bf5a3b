"""Offset units decided by evidence, never by widening (issue #9, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import spacy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from annobridge.convert import DocConverter
from annobridge.model import Annotation, Document, LabelSchema, Record, Span
from annobridge.offsets import (
    CODEPOINT,
    UNITS_AMBIGUOUS,
    UTF8,
    UTF16,
    OffsetUnits,
    check_span,
    codepoint_to_utf16,
    utf8_to_codepoint,
    utf16_to_codepoint,
)

DATA = Path(__file__).resolve().parents[1] / "data"
NLP = spacy.blank("en")


def u16(text: str, start: int, end: int) -> tuple[int, int]:
    return codepoint_to_utf16(text, start), codepoint_to_utf16(text, end)


def tokens(text: str) -> tuple[set[int], set[int]]:
    doc = NLP.make_doc(text)
    return {t.idx for t in doc}, {t.idx + len(t) for t in doc}


def ents(record: Record, **kw: object) -> tuple[list[str], list[str]]:
    result = DocConverter(NLP, LabelSchema("ner", []), **kw).convert(record)  # type: ignore[arg-type]
    assert result.doc is not None, result.reason
    return [e.text for e in result.doc.ents], result.span_notes


ZARA = "🙂 Meet Zara. She lives in Oslo."


def test_utf16_span_without_text_is_not_widened() -> None:
    start = ZARA.index("Zara")
    s16, e16 = u16(ZARA, start, start + 4)
    span = Span(s16, e16, "PERSON")
    # read as code points it covers "ara." and expanding to tokens made it "Zara." before
    assert ZARA[s16:e16] == "ara."
    assert check_span(ZARA, span, units=OffsetUnits()) == (None, UNITS_AMBIGUOUS, ())
    checked = check_span(ZARA, span, tokens=tokens(ZARA))
    assert checked.span is not None and ZARA[checked.span.start : checked.span.end] == "Zara"
    assert checked.repairs == ("utf16 offsets converted",)
    found, notes = ents(Record(Document.create(ZARA), [Annotation("a", spans=[span])]))
    assert found == ["Zara"] and notes == ["adjusted: utf16 offsets converted"]


def test_without_evidence_or_tokens_the_units_are_ambiguous() -> None:
    # three astral characters and tokens three characters apart: both readings land on tokens
    text = "🙂🙂🙂 ab ab ab"
    span = Span(7, 9, "X")  # code points: the second "ab"; UTF-16: the first
    assert check_span(text, span, tokens=tokens(text)).note == UNITS_AMBIGUOUS
    assert check_span(text, span, tokens=tokens(text), hint=CODEPOINT).span == Span(7, 9, "X")
    assert check_span(text, span, tokens=tokens(text), hint=UTF16).span == Span(4, 6, "X")
    # the converter drops it, and says so, rather than guess
    result = DocConverter(NLP, LabelSchema("ner", [])).convert(Record(Document.create(text), [Annotation("a", [span])]))
    assert result.span_notes == [f"dropped: {UNITS_AMBIGUOUS}"]
    # what the tool claims decides when nothing else does
    hinted = Record(Document.create(text), [Annotation("a", [span], meta={"offset_units": "codepoint"})])
    assert ents(hinted)[0] == ["ab"]


def test_spans_without_text_on_real_tweets_recover_in_either_unit() -> None:
    # real WNUT-17 tweets with emoji before entities; the offsets as code points and as UTF-16
    rows = [json.loads(line) for line in (DATA / "labelstudio" / "wnut17_dev_sample.jsonl").open(encoding="utf-8")]
    checked = 0
    for row in rows:
        text = row["text"]
        spans = [Span(s["start"], s["end"], s["label"]) for s in row["spans"]]
        if not spans or codepoint_to_utf16(text, spans[-1].end) == spans[-1].end:
            continue  # nothing astral before the entities: nothing to decide
        expected = sorted(text[s.start : s.end] for s in spans)
        as_cp = Record(Document.create(text), [Annotation("a", spans=spans)])
        spans16 = [Span(*u16(text, s.start, s.end), s.label) for s in spans]
        as_16 = Record(Document.create(text), [Annotation("a", spans=spans16)])
        for record in (as_cp, as_16):
            found, notes = ents(record)
            assert sorted(found) == expected, (text, notes)
            assert not any("aligned" in n for n in notes)  # nothing widened
        checked += 1
    assert checked >= 2


def test_adversarial_repeat_follows_the_evidence() -> None:
    # "ha" occurs again two code points on, after two astral characters: (7, 9) fits both readings
    text = "😀😀 hahaha"
    span = Span(7, 9, "X", text="ha")
    assert text[7:9] == "ha" and text[5:7] == "ha"
    assert check_span(text, span).span == span  # no reasoning asked for: trusted as code points, as before
    assert check_span(text, span, units=OffsetUnits()).note == UNITS_AMBIGUOUS
    cp_source, utf16_source = OffsetUnits(), OffsetUnits()
    other = "🎉 Oslo"
    assert check_span(other, Span(2, 6, "GPE", text="Oslo"), units=cp_source).span == Span(2, 6, "GPE", text="Oslo")
    assert check_span(other, Span(3, 7, "GPE", text="Oslo"), units=utf16_source).note == "utf16 offsets converted"
    assert cp_source.proofs == {CODEPOINT: 1} and utf16_source.proofs == {UTF16: 1}
    assert check_span(text, span, units=cp_source).span == span
    moved = check_span(text, span, units=utf16_source).span
    assert moved is not None and (moved.start, moved.end) == (5, 7)


def test_a_records_spans_with_text_are_evidence_for_the_rest() -> None:
    text = "😀😀😀 ha ha ha with Maria"
    m = text.index("Maria")
    proof = Span(*u16(text, m, m + 5), "PERSON", text="Maria")  # matches only as UTF-16
    trap = Span(*u16(text, 4, 6), "LAUGH", text="ha")  # matches as UTF-16 (4, 6) and as code points (7, 9)
    bare = Span(*u16(text, 7, 9), "LAUGH")  # no text; both readings fall on tokens
    record = Record(Document.create(text), [Annotation("a", spans=[trap, bare, proof])])
    result = DocConverter(NLP, LabelSchema("spans", [])).convert(record)
    assert result.doc is not None
    got = sorted((s.start_char, s.end_char, s.label_) for s in result.doc.spans["sc"])
    assert got == [(4, 6, "LAUGH"), (7, 9, "LAUGH"), (m, m + 5, "PERSON")]
    assert result.span_notes == ["adjusted: utf16 offsets converted"] * 3
    # without the proof nothing decides between the readings: both are dropped, and said so
    alone = DocConverter(NLP, LabelSchema("spans", [])).convert(
        Record(Document.create(text), [Annotation("a", [trap, bare])])
    )
    assert alone.span_notes == [f"dropped: {UNITS_AMBIGUOUS}"] * 2


def test_evidence_overrides_the_tools_claim_per_document() -> None:
    # doccano says UTF-16, but pre-labelled JSONL uploaded into doccano keeps its code points
    rows = [json.loads(line) for line in (DATA / "doccano" / "emoji_ner.jsonl").open(encoding="utf-8")]
    converter = DocConverter(NLP, LabelSchema("ner", []))
    for row in rows:
        text = row["text"]
        spans = [Span(s["start"], s["end"], s["label"]) for s in row["spans"]]
        record = Record(Document.create(text), [Annotation("a", spans=spans, meta={"offset_units": "utf16"})])
        result = converter.convert(record)
        assert result.doc is not None
        expected = {text[s.start : s.end] for s in spans}
        assert {e.text for e in result.doc.ents} <= expected, (text, result.span_notes)
        assert not any("aligned" in n or "utf16" in n for n in result.span_notes), (text, result.span_notes)
    # and the same claim is followed when the offsets really are UTF-16
    text = rows[0]["text"]
    s = rows[0]["spans"][0]
    real16 = Span(*u16(text, s["start"], s["end"]), s["label"])
    found, notes = ents(Record(Document.create(text), [Annotation("a", [real16], meta={"offset_units": "utf16"})]))
    assert found == [text[s["start"] : s["end"]]] and notes == ["adjusted: utf16 offsets converted"]


def test_utf8_byte_offsets_when_named() -> None:
    text = "Der Café in Zürich 😀 mit Jürgen"
    j = text.index("Jürgen")
    b_start, b_end = len(text[:j].encode()), len(text[: j + 6].encode())
    assert utf8_to_codepoint(text, b_start) == j and utf8_to_codepoint(text, b_start + 2) is None  # inside "ü"
    with_text = check_span(text, Span(b_start, b_end, "PER", text="Jürgen"), hint=UTF8)
    assert with_text.span is not None and (with_text.span.start, with_text.span.end) == (j, j + 6)
    assert with_text.note == "utf8 offsets converted"
    bare = check_span(text, Span(b_start, b_end, "PER"), hint=UTF8)
    assert bare.span is not None and (bare.span.start, bare.span.end) == (j, j + 6)
    # proofs teach the source: later spans without text follow them
    units = OffsetUnits()
    assert check_span(text, Span(b_start, b_end, "PER", text="Jürgen"), units=units, hint=UTF8).ok
    assert units.proofs[UTF8] == 1
    z = text.index("Zürich")
    later = check_span(text, Span(len(text[:z].encode()), len(text[: z + 6].encode()), "LOC"), units=units)
    assert later.span is not None and text[later.span.start : later.span.end] == "Zürich"


# -- properties ---------------------------------------------------------------------------------

WORDS = st.sampled_from(["Maria", "Oslo", "東京", "ab", "Zara", "naïve", "😀", "🇫🇷", "𝕋𝕙𝕚𝕤", "👩‍🚒", "x", "ha"])


@st.composite
def text_and_span(draw: st.DrawFn) -> tuple[str, int, int]:
    words = draw(st.lists(WORDS, min_size=2, max_size=12))
    text = " ".join(words)
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
    i = draw(st.integers(0, len(words) - 1))
    j = draw(st.integers(i, min(len(words) - 1, i + 2)))
    start, end = starts[i], starts[j] + len(words[j])
    assume(codepoint_to_utf16(text, end) != end)  # an astral character before the end: the readings differ
    return text, start, end


@settings(max_examples=300, deadline=None)
@given(text_and_span())
def test_utf16_spans_with_text_are_repaired_to_the_exact_original(case: tuple[str, int, int]) -> None:
    text, start, end = case
    claimed = text[start:end]
    span = Span(*u16(text, start, end), "X", text=claimed)
    fresh = check_span(text, span, units=OffsetUnits())
    if fresh.span is None:
        # only when the code-point reading also matches: the adversarial repeat, left undecided
        assert fresh.note == UNITS_AMBIGUOUS and text[span.start : span.end] == claimed
    else:
        assert (fresh.span.start, fresh.span.end) == (start, end)
    learnt = OffsetUnits()
    learnt.observe(UTF16)
    result = check_span(text, span, units=learnt)
    assert result.span is not None and (result.span.start, result.span.end) == (start, end)


@settings(max_examples=300, deadline=None)
@given(text_and_span())
def test_code_point_spans_without_text_never_move_under_code_point_evidence(case: tuple[str, int, int]) -> None:
    text, start, end = case
    units = OffsetUnits()
    units.observe(CODEPOINT)
    result = check_span(text, Span(start, end, "X"), units=units, tokens=tokens(text), hint=UTF16)
    assert result.span is not None and (result.span.start, result.span.end) == (start, end)
    assert result.repairs == ()


def _utf16_reference(text: str, offset: int) -> int | None:
    # the loop the fast version replaced
    units = 0
    for index, ch in enumerate(text):
        if units == offset:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > offset:
            return None
    return len(text) if units == offset else None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("a é東😀🇫\r\n"), max_size=30), st.integers(-2, 70))
def test_unit_conversions_match_the_definitions(text: str, offset: int) -> None:
    assert utf16_to_codepoint(text, offset) == _utf16_reference(text, offset)
    if 0 <= offset <= len(text):
        assert utf16_to_codepoint(text, codepoint_to_utf16(text, offset)) == offset
        assert utf8_to_codepoint(text, len(text[:offset].encode())) == offset
