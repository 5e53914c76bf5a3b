"""Check a span's offsets against the text it claims, and repair them when the fix is unambiguous.

Tools get offsets wrong in a few known ways:

* JavaScript front ends count UTF-16 code units, so every astral character
  (most emoji) before a span shifts it by one;
* tools written in Rust or Go may count UTF-8 bytes;
* Windows line ends: a tool may count ``\\r\\n`` as one character;
* a span's own text was trimmed or padded with whitespace.

:func:`check_span` returns the span as it should be (possibly moved) and a note
saying what was changed, or ``None`` and the reason it cannot be trusted.
Nothing is ever moved on a guess: a repair is taken only when exactly one
candidate matches the text the tool claims.

Offset units are decided by evidence
------------------------------------

A span's offsets can be read as code points, UTF-16 code units or UTF-8 bytes.
The readings differ only after an astral character (UTF-16) or a non-ASCII one
(UTF-8); before that there is nothing to decide. When they differ and the span
carries its ``text``, the readings it matches say which unit it was written in:
a span that matches under exactly one of several different readings *proves*
that unit. :class:`OffsetUnits` keeps those proofs for a whole source (one
export), and :meth:`OffsetUnits.document` opens a per-document context that
keeps the document's own proofs as well. A span without text, or whose text
matches under several readings (the same word again a few characters on), is
then decided by, in order:

1. the document's own proofs (its other spans with text), when they name one unit;
2. the source's running tally, when one unit has at least 95 % of its proofs;
3. fit to the tokenizer's boundaries, when the caller gives them: the one reading
   whose two edges both fall on token boundaries (per document via
   :meth:`DocumentUnits.vote_by_tokens`, else per span with ``tokens=``);
4. what the tool claims (``hint``: an adapter's ``Annotation.meta["offset_units"]``);
5. otherwise the span is dropped as ``offset units ambiguous``: never widened silently.

Limits: the export reads records in one pass, so the tally holds what was seen
*so far*; early records of a source are decided by their own evidence, their
tokens or the hint. The tally is per source, not per annotator: a source that
mixes writers (doccano's UI counts UTF-16, its file upload keeps the file's
code points) is decided per document by steps 1, 3 and 4. UTF-8 is only
considered once a proof or a hint names it (otherwise every span after an
accented letter would be ambiguous). Graphemes are not a reading here.
Unit reasoning is on only when ``units``, ``hint`` or ``tokens`` is given;
without them :func:`check_span` trusts code points first, as it always did
(adapters use it that way on offsets they converted themselves).

Speed: everything per text (where the first astral / non-ASCII character is,
UTF-16 positions of astral characters) is computed once per text and cached
by identity, so a span in a text without astral characters and ``\\r\\n``
costs a few comparisons.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Container, Iterable, Mapping
from dataclasses import replace
from typing import NamedTuple

from .model import Span

__all__ = [
    "CODEPOINT",
    "UNITS",
    "UNITS_AMBIGUOUS",
    "UTF8",
    "UTF16",
    "DocumentUnits",
    "OffsetUnits",
    "SpanCheck",
    "TokenBoundaries",
    "candidate_ranges",
    "check_span",
    "codepoint_to_utf16",
    "has_astral",
    "read_spans",
    "utf8_to_codepoint",
    "utf16_to_codepoint",
    "word_boundaries",
]

CODEPOINT = "codepoint"
UTF16 = "utf16"
UTF8 = "utf8"
#: the offset units a span can be read in (``Annotation.meta["offset_units"]`` takes these names)
UNITS = (CODEPOINT, UTF16, UTF8)
#: the drop reason when no evidence decides between several readings
UNITS_AMBIGUOUS = "offset units ambiguous"

#: what each conversion is reported as (a repair kind)
_CONVERTED = {UTF16: "utf16 offsets converted", UTF8: "utf8 offsets converted"}
_CRLF = "\\r\\n counted as one character"

#: (token start offsets, token end offsets), code points
TokenBoundaries = tuple[Container[int], Container[int]]

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")
_NEVER = 1 << 62  # "no such character": larger than any offset


class SpanCheck(NamedTuple):
    span: Span | None
    #: None when the span was fine as given; else the first repair made, or why it was dropped
    note: str | None
    #: every repair made, in order (e.g. ("utf16 offsets converted", "whitespace trimmed")); () if none or dropped
    repairs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.span is not None


# -- per-text facts, computed once per text ---------------------------------------------------


class _Profile:
    """Where a text's offset readings can differ; built once per text (see :func:`_profile`)."""

    __slots__ = ("_astral16", "_crlf", "_utf8", "first_astral", "first_non_ascii", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._astral16: list[int] | None = None
        self._utf8: bytes | None = None
        self._crlf: bool | None = None
        if text.isascii():
            self.first_non_ascii = self.first_astral = _NEVER
            return
        found = _NON_ASCII.search(text)
        self.first_non_ascii = found.start() if found else _NEVER
        astral = _ASTRAL.search(text, self.first_non_ascii if found else 0)
        self.first_astral = astral.start() if astral else _NEVER

    @property
    def astral16(self) -> list[int]:
        """UTF-16 offset of each astral character, ascending (the j-th sits at code point b_j - j)."""
        if self._astral16 is None:
            self._astral16 = (
                [m.start() + j for j, m in enumerate(_ASTRAL.finditer(self.text, self.first_astral))]
                if self.first_astral != _NEVER
                else []
            )
        return self._astral16

    @property
    def utf8(self) -> bytes:
        if self._utf8 is None:
            self._utf8 = self.text.encode("utf-8", "surrogatepass")
        return self._utf8

    @property
    def has_crlf(self) -> bool:
        if self._crlf is None:
            self._crlf = "\r\n" in self.text
        return self._crlf


_last_profile: _Profile | None = None


def _profile(text: str) -> _Profile:
    # one-entry cache by identity: check_span runs once per span, and a document's spans come together
    global _last_profile
    cached = _last_profile
    if cached is not None and cached.text is text:
        return cached
    cached = _last_profile = _Profile(text)
    return cached


def has_astral(text: str) -> bool:
    return _profile(text).first_astral != _NEVER


def _u16_to_cp(prof: _Profile, offset: int) -> int | None:
    if prof.first_astral >= offset:  # no astral character before it: the same number
        return offset if 0 <= offset <= len(prof.text) else None
    b = prof.astral16
    k = bisect_left(b, offset)  # astral characters starting before the offset
    if k and b[k - 1] + 1 == offset:
        return None  # between the two halves of a surrogate pair
    cp = offset - k
    return cp if 0 <= cp <= len(prof.text) else None


def utf16_to_codepoint(text: str, offset: int) -> int | None:
    """Map a UTF-16 code-unit offset to a code-point offset (None if it splits a surrogate pair)."""
    return _u16_to_cp(_profile(text), offset)


def codepoint_to_utf16(text: str, offset: int) -> int:
    """Map a code-point offset to UTF-16 code units (what JavaScript's ``String.length`` counts)."""
    prof = _profile(text)
    if prof.first_astral >= offset:
        return offset
    return offset + sum(1 for ch in text[:offset] if ord(ch) > 0xFFFF)


def _u8_to_cp(prof: _Profile, offset: int) -> int | None:
    if prof.first_non_ascii >= offset:
        return offset if 0 <= offset <= len(prof.text) else None
    data = prof.utf8
    if offset > len(data):
        return None
    try:
        return len(data[:offset].decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        return None  # inside a multi-byte character


def utf8_to_codepoint(text: str, offset: int) -> int | None:
    """Map a UTF-8 byte offset to a code-point offset (None if it falls inside a character)."""
    return _u8_to_cp(_profile(text), offset)


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


# -- evidence ---------------------------------------------------------------------------------


class OffsetUnits:
    """What one source's span offsets count in, learnt from spans whose text proves it.

    Create one per source (the converter makes one per export); it only grows. ``proofs``
    counts the spans that proved each unit; ``decisions`` counts how ambiguous spans were
    decided, by ``(unit, basis)`` with basis one of ``document``, ``source``, ``tokens``,
    ``hint`` (or ``(None, "ambiguous")`` for the ones dropped).
    """

    #: share of the source's proofs the leading unit needs before the tally decides
    DECISIVE_SHARE = 0.95

    def __init__(self, hint: str | None = None) -> None:
        if hint is not None and hint not in UNITS:
            raise ValueError(f"unknown offset unit {hint!r}; expected one of {', '.join(UNITS)}")
        #: what the whole source claims, used when an annotation has no hint of its own
        self.hint = hint
        self.proofs: Counter[str] = Counter()
        self.decisions: Counter[tuple[str | None, str]] = Counter()
        #: whether UTF-8 is a reading to consider (named by the hint or proven): kept as a flag, read per span
        self.utf8 = hint == UTF8

    def observe(self, unit: str) -> None:
        self.proofs[unit] += 1
        if unit == UTF8:
            self.utf8 = True

    def leading(self, candidates: Iterable[str]) -> str | None:
        """The unit the source's proofs point to among ``candidates``, when they are decisive."""
        if not self.proofs:
            return None
        counts = [(self.proofs.get(unit, 0), unit) for unit in candidates]
        total = sum(n for n, _ in counts)
        if not total:
            return None
        n, unit = max(counts)
        return unit if n >= self.DECISIVE_SHARE * total else None

    def document(self, tokens: TokenBoundaries | None = None) -> DocumentUnits:
        """A context for one document: its own proofs first, then this source's."""
        return DocumentUnits(self, tokens)

    # DocumentUnits' interface, so a bare OffsetUnits can be passed to check_span
    @property
    def source(self) -> OffsetUnits:
        return self

    def decide(
        self, options: Mapping[str, tuple[int, int]], hint: str | None, tokens: TokenBoundaries | None
    ) -> tuple[str | None, str]:
        return _decide(options, None, self, None, tokens, hint or self.hint)


class DocumentUnits:
    """One document's evidence, in front of its source's (:meth:`OffsetUnits.document`)."""

    __slots__ = ("fit", "proofs", "source", "tokens")

    def __init__(self, source: OffsetUnits | None = None, tokens: TokenBoundaries | None = None) -> None:
        self.source = source if source is not None else OffsetUnits()
        #: this document's proofs per unit (None until the first)
        self.proofs: dict[str, int] | None = None
        self.tokens = tokens
        #: the unit the document's ambiguous spans fit the tokens under (:meth:`vote_by_tokens`)
        self.fit: str | None = None

    def observe(self, unit: str) -> None:
        proofs = self.proofs
        if proofs is None:
            proofs = self.proofs = {}
        proofs[unit] = proofs.get(unit, 0) + 1
        self.source.observe(unit)

    def vote_by_tokens(
        self,
        text: str,
        spans: Iterable[Span | Mapping[str, tuple[int, int]]],
        tokens: TokenBoundaries,
        hint: str | None = None,
    ) -> str | None:
        """Decide the document's unit by which reading puts its ambiguous spans on token boundaries.

        ``spans`` are spans, or their :func:`candidate_ranges` when the caller has them. Each span with
        several readings votes for every reading whose start and end both fall on token boundaries;
        the reading with strictly the most votes wins (kept in :attr:`fit`).
        """
        self.tokens = tokens
        starts, ends = tokens
        votes: Counter[str] = Counter()
        for item in spans:
            options = candidate_ranges(text, item, units=self, hint=hint) if isinstance(item, Span) else item
            if len(set(options.values())) < 2:
                continue
            for unit, (s, e) in options.items():
                if s in starts and e in ends:
                    votes[unit] += 1
        ranked = votes.most_common(2)
        if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            self.fit = ranked[0][0]
        return self.fit

    def decide(
        self, options: Mapping[str, tuple[int, int]], hint: str | None, tokens: TokenBoundaries | None
    ) -> tuple[str | None, str]:
        return _decide(options, self.proofs, self.source, self.fit, tokens or self.tokens, hint or self.source.hint)


def _decide(
    options: Mapping[str, tuple[int, int]],
    doc_proofs: Mapping[str, int] | None,
    source: OffsetUnits,
    fit: str | None,
    tokens: TokenBoundaries | None,
    hint: str | None,
) -> tuple[str | None, str]:
    """Pick the reading among ``options`` (unit -> range) by the evidence, in the documented order."""
    unit: str | None = None
    basis = "ambiguous"
    if doc_proofs:
        named = [u for u in options if doc_proofs.get(u)]
        if len(named) == 1:
            unit, basis = named[0], "document"
    if unit is None:
        leader = source.leading(options)
        if leader is not None:
            unit, basis = leader, "source"
    if unit is None and fit in options:
        unit, basis = fit, "tokens"
    if unit is None and tokens is not None:
        starts, ends = tokens
        fitting = [u for u, (s, e) in options.items() if s in starts and e in ends]
        if len(fitting) == 1:
            unit, basis = fitting[0], "tokens"
    if unit is None and hint in options:
        unit, basis = hint, "hint"
    source.decisions[(unit, basis)] += 1
    return unit, basis


def _utf8_plausible(units: OffsetUnits | DocumentUnits | None, hint: str | None) -> bool:
    # UTF-8 is a reading only once something names it: a hint, or a proof in this source
    return hint == UTF8 or (units is not None and units.source.utf8)


def _readings(prof: _Profile, start: int, end: int, utf8: bool) -> tuple[dict[str, tuple[int, int]], int]:
    """Valid code-point ranges per unit whose reading can differ, and how many units were considered."""
    n = len(prof.text)
    out: dict[str, tuple[int, int]] = {}
    if 0 <= start < end <= n:
        out[CODEPOINT] = (start, end)
    considered = 1
    if prof.first_astral < end:
        considered += 1
        s, e = _u16_to_cp(prof, start), _u16_to_cp(prof, end)
        if s is not None and e is not None and s < e:
            out[UTF16] = (s, e)
    if utf8 and prof.first_non_ascii < end:
        considered += 1
        s, e = _u8_to_cp(prof, start), _u8_to_cp(prof, end)
        if s is not None and e is not None and s < e:
            out[UTF8] = (s, e)
    return out, considered


def candidate_ranges(
    text: str,
    span: Span,
    *,
    units: OffsetUnits | DocumentUnits | None = None,
    hint: str | None = None,
) -> dict[str, tuple[int, int]]:
    """The code-point range each plausible unit reads ``span`` as; with ``span.text``, only those matching it."""
    prof = _profile(text)
    options, _ = _readings(prof, span.start, span.end, _utf8_plausible(units, hint))
    if span.text is not None:
        options = {u: r for u, r in options.items() if text[r[0] : r[1]] == span.text}
    return options


# -- the check --------------------------------------------------------------------------------


def check_span(
    text: str,
    span: Span,
    *,
    units: OffsetUnits | DocumentUnits | None = None,
    hint: str | None = None,
    tokens: TokenBoundaries | None = None,
) -> SpanCheck:
    """Verify ``span`` against ``text``; repair it if exactly one known fix makes it match.

    ``units`` (evidence, which this call adds to when the span proves its unit), ``hint`` (the unit
    the tool claims) and ``tokens`` (token boundaries) turn on offset-unit reasoning: see the module
    docstring. Without any of them, offsets are trusted as code points first, as before.
    """
    start, end = span.start, span.end
    claimed = span.text
    reasoning = units is not None or hint is not None or tokens is not None
    if reasoning:
        # the readings can differ only after an astral (UTF-16) or non-ASCII (UTF-8) character; the
        # common case, a text without either before the span's end, costs a few comparisons
        prof = _profile(text)
        if prof.first_non_ascii < end:
            ctx = units if units is not None else OffsetUnits()
            utf8 = hint == UTF8 or ctx.source.utf8  # UTF-8 is a reading only once something names it
            if utf8 or prof.first_astral < end:
                return _check_units(text, prof, span, ctx, hint, tokens, utf8)
    in_bounds = 0 <= start < end <= len(text)
    if claimed is None:
        if not in_bounds:
            return SpanCheck(None, "offsets outside the text")
        return _trim_whitespace(text, span)
    if in_bounds and text[start:end] == claimed:
        return _trim_whitespace(text, span)
    if not claimed:
        return SpanCheck(None, "empty span")
    if not reasoning:
        prof = _profile(text)
        if prof.first_astral != _NEVER:
            s16, e16 = _u16_to_cp(prof, start), _u16_to_cp(prof, end)
            if s16 is not None and e16 is not None and text[s16:e16] == claimed:
                return _repair(text, span, {(s16, e16): _CONVERTED[UTF16]})
    return _repair(text, span, {})


def _check_units(
    text: str,
    prof: _Profile,
    span: Span,
    units: OffsetUnits | DocumentUnits,
    hint: str | None,
    tokens: TokenBoundaries | None,
    utf8: bool,
) -> SpanCheck:
    """A span whose offsets read differently in different units (an astral / non-ASCII character before it)."""
    claimed = span.text
    start, end = span.start, span.end
    if claimed and not utf8:
        # the common case, inlined: code points or UTF-16, and the text matches exactly one of them
        cp_ok = 0 <= start < end <= len(text) and text[start:end] == claimed
        # _u16_to_cp inlined for both ends (this runs per span after an emoji)
        b = prof.astral16
        k = bisect_left(b, start) if start > prof.first_astral else 0
        s16: int | None = None if k and b[k - 1] + 1 == start else start - k
        k = bisect_left(b, end)
        e16: int | None = None if k and b[k - 1] + 1 == end else end - k
        u16_ok = s16 is not None and e16 is not None and 0 <= s16 < e16 <= len(text) and text[s16:e16] == claimed
        if cp_ok and not u16_ok:
            units.observe(CODEPOINT)
            return _trim_whitespace(text, span)
        if u16_ok and not cp_ok and s16 is not None and e16 is not None:
            units.observe(UTF16)
            return _trim_whitespace(text, replace(span, start=s16, end=e16), (_CONVERTED[UTF16],))
    options, considered = _readings(prof, start, end, utf8)
    if claimed is not None:
        if not claimed:
            return SpanCheck(None, "empty span")
        options = {u: r for u, r in options.items() if text[r[0] : r[1]] == claimed}
        if not options:  # no reading matches: the other known causes
            return _repair(text, span, {})
    elif not options:
        return SpanCheck(None, "offsets outside the text")
    ranges = set(options.values())
    if len(ranges) == 1:
        unit = next(iter(options)) if len(options) == 1 else (CODEPOINT if CODEPOINT in options else min(options))
        if len(options) == 1 and considered > 1 and (claimed is not None or unit != CODEPOINT):
            # it matched (or fits the text) under exactly one of several different readings: a proof.
            # A text-less span proves only what no other reading allows (e.g. past the code-point end).
            units.observe(unit)
        chosen = options[unit]
    else:
        decided, _ = units.decide(options, hint, tokens)
        if decided is None:
            return SpanCheck(None, UNITS_AMBIGUOUS)
        unit, chosen = decided, options[decided]
    if unit == CODEPOINT:
        return _trim_whitespace(text, span)
    moved = replace(span, start=chosen[0], end=chosen[1])
    return _trim_whitespace(text, moved, (_CONVERTED[unit],))


def _repair(text: str, span: Span, candidates: dict[tuple[int, int], str]) -> SpanCheck:
    """The claimed text is not at the offsets (in any unit tried): ``\\r\\n``, then a unique occurrence."""
    start, end = span.start, span.end
    claimed = span.text
    assert claimed is not None
    if _profile(text).has_crlf:
        sc, ec = _crlf_as_one_to_codepoint(text, start), _crlf_as_one_to_codepoint(text, end)
        if sc is not None and ec is not None and text[sc:ec] == claimed:
            candidates.setdefault((sc, ec), _CRLF)
        normalised = claimed.replace("\n", "\r\n")
        if sc is not None and text[sc : sc + len(normalised)] == normalised and normalised != claimed:
            candidates.setdefault((sc, sc + len(normalised)), _CRLF)
    if len(candidates) == 1:
        (new_start, new_end), note = next(iter(candidates.items()))
        return _trim_whitespace(text, replace(span, start=new_start, end=new_end), (note,))
    if len(candidates) > 1:
        return SpanCheck(None, "offsets ambiguous (several repairs match)")

    # Last resort: the claimed text occurs exactly once in the whole document.
    first = text.find(claimed)
    if first != -1 and text.find(claimed, first + 1) == -1:
        moved = replace(span, start=first, end=first + len(claimed))
        return _trim_whitespace(text, moved, ("moved to the only occurrence of its text",))
    if first == -1:
        return SpanCheck(None, "span text not found in the document")
    return SpanCheck(None, "span text does not match its offsets and occurs several times")


def _trim_whitespace(text: str, span: Span, repairs: tuple[str, ...] = ()) -> SpanCheck:
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end:
        return SpanCheck(None, "span covers only whitespace")
    if (start, end) != (span.start, span.end):
        trimmed = replace(span, start=start, end=end, text=text[start:end])
        repairs = (*repairs, "whitespace trimmed")
        return SpanCheck(trimmed, repairs[0], repairs)
    if span.text is not None and span.text != text[start:end]:
        span = replace(span, text=text[start:end])
    # tuple.__new__ skips the NamedTuple's Python-level __new__: this line runs once per span
    return _new_check(SpanCheck, (span, repairs[0] if repairs else None, repairs))


_new_check = tuple.__new__


# -- for adapters: a tool's spans read in the unit their document's evidence shows --------------------------

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_boundaries(text: str) -> TokenBoundaries:
    """Where words and punctuation start and end (code points): a tokenizer-free stand-in for spaCy's tokens."""
    starts: set[int] = set()
    ends: set[int] = set()
    for match in _WORD.finditer(text):
        starts.add(match.start())
        ends.add(match.end())
    return starts, ends


def read_spans(
    text: str, spans: Iterable[Span], *, hint: str | None, units: OffsetUnits | None = None
) -> list[SpanCheck]:
    """Check a document's spans as a tool stored them, deciding their unit per document, not per tool.

    For tools that store offsets without the span's text (doccano, Argilla): ``hint`` is the unit the
    tool usually writes (doccano's UI: ``"utf16"``; Argilla: ``"codepoint"``), but a document written by
    another client (a file of code points uploaded through the tool's own import) is read in the unit its
    spans fit word boundaries under; a span that no evidence places is dropped as ``offset units
    ambiguous`` rather than moved on a guess. Returns one :class:`SpanCheck` per span, in order; a
    kept span claims the text it covers. ``units`` carries one source's evidence across documents: give
    it only when one writer made them all (its tally outranks the word-boundary fit).
    """
    items = list(spans)
    ctx = (units or OffsetUnits()).document()
    tokens = word_boundaries(text) if not text.isascii() else None
    if tokens is not None:
        ctx.vote_by_tokens(text, items, tokens, hint=hint)
    out = []
    for span in items:
        checked = check_span(text, span, units=ctx, hint=hint, tokens=tokens)
        if checked.span is not None and checked.span.text is None:
            checked = checked._replace(span=replace(checked.span, text=text[checked.span.start : checked.span.end]))
        out.append(checked)
    return out
