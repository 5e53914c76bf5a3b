"""Check a span's offsets against the text it claims, and repair them when the fix is unambiguous.

Tools get offsets wrong in a few known ways:

* JavaScript front ends count UTF-16 code units, so every astral character
  (most emoji) before a span shifts it by one;
* Windows line ends: a tool may count ``\\r\\n`` as one character;
* a span's own text was trimmed or padded with whitespace.

:func:`check_span` returns the span as it should be (possibly moved) and a note
saying what was changed, or ``None`` and the reason it cannot be trusted.
Nothing is ever moved on a guess: a repair is taken only when exactly one
candidate matches the text the tool claims.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from .model import Span

__all__ = [
    "SpanCheck",
    "check_span",
    "codepoint_to_utf16",
    "has_astral",
    "utf16_to_codepoint",
]


class SpanCheck(NamedTuple):
    span: Span | None
    #: None when the span was fine as given; else what was repaired or why it was dropped
    note: str | None

    @property
    def ok(self) -> bool:
        return self.span is not None


def has_astral(text: str) -> bool:
    return any(ord(ch) > 0xFFFF for ch in text)


def utf16_to_codepoint(text: str, offset: int) -> int | None:
    """Map a UTF-16 code-unit offset to a code-point offset (None if it splits a surrogate pair)."""
    units = 0
    for index, ch in enumerate(text):
        if units == offset:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > offset:
            return None
    return len(text) if units == offset else None


def codepoint_to_utf16(text: str, offset: int) -> int:
    """Map a code-point offset to UTF-16 code units (what JavaScript's ``String.length`` counts)."""
    return offset + sum(1 for ch in text[:offset] if ord(ch) > 0xFFFF)


def _crlf_as_one_to_codepoint(text: str, offset: int) -> int | None:
    """Map an offset counted on text with each ``\\r\\n`` collapsed to ``\\n``."""
    collapsed = 0
    index = 0
    n = len(text)
    while index < n:
        if collapsed == offset:
            return index
        if text[index] == "\r" and index + 1 < n and text[index + 1] == "\n":
            index += 2
        else:
            index += 1
        collapsed += 1
    return n if collapsed == offset else None


def check_span(text: str, span: Span) -> SpanCheck:
    """Verify ``span`` against ``text``; repair it if exactly one known fix makes it match."""
    start, end = span.start, span.end
    in_bounds = 0 <= start < end <= len(text)
    claimed = span.text
    if claimed is None:
        if not in_bounds:
            return SpanCheck(None, "offsets outside the text")
        return _trim_whitespace(text, span)
    if in_bounds and text[start:end] == claimed:
        return _trim_whitespace(text, span)
    if not claimed:
        return SpanCheck(None, "empty span")

    candidates: dict[tuple[int, int], str] = {}
    if has_astral(text):
        s16, e16 = utf16_to_codepoint(text, start), utf16_to_codepoint(text, end)
        if s16 is not None and e16 is not None and text[s16:e16] == claimed:
            candidates[(s16, e16)] = "utf16 offsets converted"
    if "\r\n" in text:
        sc, ec = _crlf_as_one_to_codepoint(text, start), _crlf_as_one_to_codepoint(text, end)
        if sc is not None and ec is not None and text[sc:ec] == claimed:
            candidates.setdefault((sc, ec), "\\r\\n counted as one character")
        normalised = claimed.replace("\n", "\r\n")
        if sc is not None and text[sc : sc + len(normalised)] == normalised and normalised != claimed:
            candidates.setdefault((sc, sc + len(normalised)), "\\r\\n counted as one character")
    if len(candidates) == 1:
        (new_start, new_end), note = next(iter(candidates.items()))
        return _trim_whitespace(text, replace(span, start=new_start, end=new_end), note)
    if len(candidates) > 1:
        return SpanCheck(None, "offsets ambiguous (several repairs match)")

    # Last resort: the claimed text occurs exactly once in the whole document.
    first = text.find(claimed)
    if first != -1 and text.find(claimed, first + 1) == -1:
        moved = replace(span, start=first, end=first + len(claimed))
        return _trim_whitespace(text, moved, "moved to the only occurrence of its text")
    if first == -1:
        return SpanCheck(None, "span text not found in the document")
    return SpanCheck(None, "span text does not match its offsets and occurs several times")


def _trim_whitespace(text: str, span: Span, note: str | None = None) -> SpanCheck:
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end:
        return SpanCheck(None, "span covers only whitespace")
    if (start, end) != (span.start, span.end):
        trimmed = replace(span, start=start, end=end, text=text[start:end])
        return SpanCheck(trimmed, note or "whitespace trimmed")
    if span.text is not None and span.text != text[start:end]:
        span = replace(span, text=text[start:end])
    return SpanCheck(span, note)
