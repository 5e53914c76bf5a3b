import pytest
import spacy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from annobridge.convert import DocConverter
from annobridge.model import Annotation, Document, LabelSchema, Record, Span
from annobridge.offsets import check_span, codepoint_to_utf16, utf16_to_codepoint

# emoji (astral), CJK, combining marks, Windows line ends, plain words
pieces = st.sampled_from(
    ["😀", "👍🏽", "🇳🇴", "東京", "中文", "e\u0301", "n\u0303o", "\r\n", "\n", " ", "Oslo", "Maria", "ab", ".", ",", "x"]
)
texts = st.lists(pieces, min_size=2, max_size=25).map("".join)


@st.composite
def text_and_span(draw):
    text = draw(texts)
    start = draw(st.integers(0, len(text) - 1))
    end = draw(st.integers(start + 1, len(text)))
    return text, start, end


def _crlf_collapsed(text: str, offset: int) -> int:
    return len(text[:offset].replace("\r\n", "\n"))


@settings(max_examples=300)
@given(text_and_span(), st.sampled_from(["exact", "utf16", "crlf"]))
def test_repaired_span_text_always_matches_the_claim(case, corruption) -> None:
    text, start, end = case
    claimed = text[start:end]
    if corruption == "utf16":
        start, end = codepoint_to_utf16(text, start), codepoint_to_utf16(text, end)
    elif corruption == "crlf":
        start, end = _crlf_collapsed(text, start), _crlf_collapsed(text, end)
    result = check_span(text, Span(start, end, "X", text=claimed))
    if result.span is not None:
        fixed = result.span
        # trimming whitespace is the one allowed change of content
        assert text[fixed.start : fixed.end] == claimed.strip()
        assert fixed.text == text[fixed.start : fixed.end]
    else:
        assert result.note


@settings(max_examples=150, deadline=None)
@given(text_and_span(), st.sampled_from(["exact", "utf16"]))
def test_exported_entity_never_differs_from_the_claim(case, corruption) -> None:
    text, start, end = case
    claimed = text[start:end]
    assume(claimed.strip())
    if corruption == "utf16":
        start, end = codepoint_to_utf16(text, start), codepoint_to_utf16(text, end)
    record = Record(Document.create(text), [Annotation("a", spans=[Span(start, end, "X", text=claimed)])])
    converter = DocConverter(_NLP, LabelSchema("ner", ["X"]), align="strict")
    result = converter.convert(record)
    assert result.doc is not None
    for ent in result.doc.ents:
        assert ent.text == claimed.strip()


_NLP = spacy.blank("en")


def test_utf16_offsets_after_emoji_are_converted() -> None:
    text = "I 😀 love Oslo"
    start16 = codepoint_to_utf16(text, 9)
    result = check_span(text, Span(start16, start16 + 4, "GPE", text="Oslo"))
    assert result.span is not None and (result.span.start, result.span.end) == (9, 13)
    assert result.note == "utf16 offsets converted"
    assert utf16_to_codepoint(text, 3) is None  # inside the surrogate pair


def test_crlf_counted_as_one() -> None:
    text = "Line one\r\nMaria went home"
    collapsed = text.replace("\r\n", "\n")
    start = collapsed.index("Maria")
    result = check_span(text, Span(start, start + 5, "PERSON", text="Maria"))
    assert result.span is not None and text[result.span.start : result.span.end] == "Maria"


def test_ambiguous_text_is_not_guessed() -> None:
    text = "Oslo and Oslo"
    result = check_span(text, Span(2, 6, "GPE", text="Oslo"))
    assert result.span is None and "several" in (result.note or "")


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        (Span(0, 99, "X"), "offsets outside the text"),
        (Span(3, 4, "X"), "span covers only whitespace"),
        (Span(0, 4, "X", text="Paris"), "span text not found in the document"),
    ],
)
def test_unrepairable_spans_have_reasons(span: Span, reason: str) -> None:
    assert check_span("abc def", span).note == reason


def test_whitespace_is_trimmed_and_reported() -> None:
    result = check_span("go to Oslo now", Span(5, 11, "GPE", text=" Oslo "))
    assert result.span is not None and result.span.text == "Oslo" and result.note == "whitespace trimmed"
