"""The kit's read_spans: a tool's spans without their text, read in the unit their own document shows."""

from __future__ import annotations

import pytest

from annobridge.kit import Span, codepoint_to_utf16, read_spans
from annobridge.testing import UNICODE_TEXTS, entity


@pytest.mark.parametrize("hint", ["utf16", "codepoint"])
@pytest.mark.parametrize("written_in", ["codepoint", "utf16"])
def test_every_contract_text_lands_whatever_the_writer_counted(hint: str, written_in: str) -> None:
    for text, ents in UNICODE_TEXTS:
        gold = [entity(text, surface, label, nth) for surface, label, nth in ents]
        stored = [
            Span(codepoint_to_utf16(text, g.start), codepoint_to_utf16(text, g.end), g.label)
            if written_in == "utf16" else Span(g.start, g.end, g.label)
            for g in gold
        ]
        checked = read_spans(text, stored, hint=hint)
        assert [(c.span.start, c.span.end, c.span.text) for c in checked if c.span] == [
            (g.start, g.end, g.text) for g in gold
        ], (text, hint, written_in, [c.note for c in checked])


def test_what_no_evidence_places_is_dropped_not_guessed() -> None:
    text = "😀😀😀 ab ab"  # the first "ab" in UTF-16 units (7, 9) is, read as code points, exactly the second
    first16 = (codepoint_to_utf16(text, 4), codepoint_to_utf16(text, 6))
    assert first16 == (7, 9) and text[4:6] == text[7:9] == "ab"
    (alone,) = read_spans(text, [Span(*first16, "X")], hint=None)
    assert (alone.span, alone.note) == (None, "offset units ambiguous")
    (hinted,) = read_spans(text, [Span(*first16, "X")], hint="utf16")
    assert hinted.span is not None and (hinted.span.start, hinted.span.end) == (4, 6)
