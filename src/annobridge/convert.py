"""Records -> spaCy ``Doc`` objects ready for a DocBin.

* ner: ``doc.ents``; tokens outside every span are *outside* (O) when the
  annotation was complete (manual), *missing* when it was partial (binary).
  Rejected binary spans go to ``doc.spans[incorrect_spans_key]``.
* spans: ``doc.spans[schema.spans_key]``, overlaps allowed.
* textcat: every label in ``doc.cats``, exactly one 1.0.
* textcat_multilabel: the labels the annotators judged, 0.0 or 1.0.

Each span is first checked against the text it claims (:mod:`annobridge.offsets`)
and then aligned to tokens: strict first, then the chosen alignment mode.
Whatever is changed or dropped is reported, never done silently: every repair a
span gets is one :class:`SpanEvent` (and one ``"adjusted: why"`` string in
``span_notes``), named with its document. Spans that become identical after
repair (one annotator's UTF-16 span and another's code-point span of the same
entity, a duplicate inside one annotation) are merged into one and counted
(``duplicate after repair merged`` / ``duplicate span merged``), not dropped as
overlaps.

Offset units are learnt per converter (one per export, :attr:`DocConverter.units`):
a record's spans with text are checked first and are evidence for its spans
without; an ambiguous document is decided by which reading puts its spans on
the tokenizer's boundaries; ``Annotation.meta["offset_units"]`` (an adapter's
claim) comes after that evidence. See :mod:`annobridge.offsets`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan
from spacy.util import filter_spans

from .errors import UsageError
from .merge import Merged, MergeSkip, Policy, merge_record
from .model import LabelSchema, Record, Span, TaskKind
from .offsets import UNITS, UNITS_AMBIGUOUS, DocumentUnits, OffsetUnits, SpanCheck, candidate_ranges, check_span

__all__ = [
    "ALIGN_MODES",
    "DUPLICATE_MERGED",
    "DUPLICATE_REPAIRED_MERGED",
    "ConversionResult",
    "DocConverter",
    "SpanEvent",
]

Align = Literal["strict", "contract", "expand"]
ALIGN_MODES: tuple[str, ...] = ("strict", "contract", "expand")
INCORRECT_SPANS_KEY = "incorrect_spans"
#: two spans identical after offset repair / token alignment, kept once
DUPLICATE_REPAIRED_MERGED = "duplicate after repair merged"
#: two spans identical as given (within one annotation, or agreeing binary questions), kept once
DUPLICATE_MERGED = "duplicate span merged"


class SpanEvent(NamedTuple):
    """One thing done to one span: a repair (``adjusted``) or its loss (``dropped``)."""

    #: "adjusted" or "dropped" (the same words as the prefix of a ``span_notes`` string)
    kind: str
    #: the repair kind or drop reason, e.g. "utf16 offsets converted", "offset units ambiguous"
    why: str
    #: the record's id (``Record.id``)
    doc_id: str
    #: the span as the source gave it (for "overlaps a longer entity": as aligned to the tokens)
    start: int
    end: int
    label: str

    @property
    def note(self) -> str:
        """The ``span_notes`` form: ``"adjusted: why"`` / ``"dropped: why"``."""
        return f"{self.kind}: {self.why}"


@dataclass
class ConversionResult:
    doc: Doc | None
    #: why the record yields no doc (None when it does)
    reason: str | None = None
    #: "adjusted: <why>" / "dropped: <why>", one per repair or drop (the same items as span_events)
    span_notes: list[str] = field(default_factory=list)
    conflict: str | None = None
    labels: list[str] = field(default_factory=list)
    merged: Merged | None = None
    #: rejected spans written to doc.spans[incorrect_spans_key]
    incorrect_spans: int = 0
    #: the record's id
    doc_id: str | None = None
    #: every repair and drop with its document and the span as given (span_notes, with more detail)
    span_events: list[SpanEvent] = field(default_factory=list)
    #: answers superseded by the same annotator's later answer to the same question (not votes)
    superseded: int = 0


class DocConverter:
    def __init__(
        self,
        nlp: Language,
        schema: LabelSchema,
        *,
        align: str = "expand",
        policy: str | Policy = "ground_truth",
        incorrect_spans_key: str = INCORRECT_SPANS_KEY,
        offset_units: str | OffsetUnits | None = None,
    ) -> None:
        """``offset_units``: what the whole source claims its offsets count in (a unit name, used like an
        annotation's ``meta["offset_units"]``), or an :class:`OffsetUnits` to share evidence with."""
        if align not in ALIGN_MODES:
            raise UsageError(f"--align must be one of {', '.join(ALIGN_MODES)}, not {align!r}")
        if schema.task == TaskKind.TEXTCAT and len(schema.labels) < 2:
            raise UsageError(
                "Exclusive textcat needs at least two labels "
                f"(got {schema.labels or 'none'}); binary yes/no data fits --task textcat_multilabel."
            )
        self.nlp = nlp
        self.schema = schema
        self.align: Align = align  # type: ignore[assignment]
        self.policy = policy if isinstance(policy, Policy) else Policy(policy)
        self.incorrect_spans_key = incorrect_spans_key
        self._labels = set(schema.labels)
        #: the source's offset-unit evidence, grown by every record converted (see annobridge.offsets)
        self.units = offset_units if isinstance(offset_units, OffsetUnits) else OffsetUnits(offset_units)

    def convert(self, record: Record) -> ConversionResult:
        merged = merge_record(record, self.policy)
        if isinstance(merged, MergeSkip):
            return ConversionResult(
                None, merged.reason, conflict=merged.conflict, doc_id=record.id, superseded=merged.superseded
            )
        if not record.text.strip():
            return ConversionResult(None, "empty text", merged=merged, doc_id=record.id, superseded=merged.superseded)
        if self.schema.task.is_span_task:
            result = self._spans(record, merged)
        else:
            result = self._cats(record.text, merged)
        result.conflict = merged.conflict
        result.merged = merged
        result.doc_id = record.id
        result.superseded = merged.superseded
        return result

    # -- spans ---------------------------------------------------------------

    def _check(
        self,
        text: str,
        doc: Doc,
        spans: Sequence[Span],
        ctx: DocumentUnits | None,
        hint_of: Callable[[Span], str | None],
    ) -> list[SpanCheck]:
        """Check every span against the text: spans with text first (their proofs are evidence), then the rest.

        ``ctx`` is None for ASCII text, where every unit reads the same: nothing to learn or decide.
        """
        labels = self._labels
        if ctx is None:
            return [
                SpanCheck(None, f"label {span.label!r} not in the label set")
                if labels and span.label not in labels
                else check_span(text, span)
                for span in spans
            ]
        checks: list[SpanCheck | None] = [None] * len(spans)
        pending: list[int] = []
        for i, span in enumerate(spans):
            if labels and span.label not in labels:
                checks[i] = SpanCheck(None, f"label {span.label!r} not in the label set")
            elif span.text is not None:
                checked = check_span(text, span, units=ctx, hint=hint_of(span))
                if checked.note == UNITS_AMBIGUOUS:
                    pending.append(i)  # again below, with the whole document's evidence
                else:
                    checks[i] = checked
            else:
                pending.append(i)
        if pending:
            options = (candidate_ranges(text, spans[i], units=ctx, hint=hint_of(spans[i])) for i in pending)
            undecided = [o for o in options if len(set(o.values())) > 1]
            if undecided:
                # only now, for documents that need it: token boundaries cost one pass over the tokens
                starts: set[int] = set()
                ends: set[int] = set()
                for token in doc:
                    idx = token.idx
                    starts.add(idx)
                    ends.add(idx + len(token))
                ctx.vote_by_tokens(text, undecided, (starts, ends))
            for i in pending:
                checks[i] = check_span(text, spans[i], units=ctx, hint=hint_of(spans[i]))
        return [c for c in checks if c is not None]

    def _align(
        self,
        doc: Doc,
        text: str,
        spans: Sequence[Span],
        ctx: DocumentUnits | None,
        hint_of: Callable[[Span], str | None],
        events: list[SpanEvent],
        doc_id: str,
    ) -> list[SpacySpan]:
        # ``text`` is passed in: ``doc.text`` rebuilds the string from every token on each access
        aligned: list[SpacySpan] = []
        seen: dict[tuple[int, int, str], bool] = {}  # final (start, end, label) -> was it repaired
        char_span = doc.char_span
        for span, checked in zip(spans, self._check(text, doc, spans, ctx, hint_of), strict=True):
            fixed = checked[0]
            if fixed is None:
                events.append(
                    SpanEvent("dropped", checked.note or "not usable", doc_id, span.start, span.end, span.label)
                )
                continue
            repairs = checked[2]
            repaired = bool(repairs)
            for repair in repairs:
                events.append(SpanEvent("adjusted", repair, doc_id, span.start, span.end, span.label))
            label = fixed.label
            sp = char_span(fixed.start, fixed.end, label=label)
            if sp is not None:
                key = (fixed.start, fixed.end, label)  # strict: the span's own offsets
            elif self.align != "strict":
                sp = char_span(fixed.start, fixed.end, label=label, alignment_mode=self.align)
                if sp is not None and len(sp):
                    why = f"aligned to token boundaries ({self.align})"
                    events.append(SpanEvent("adjusted", why, doc_id, span.start, span.end, span.label))
                    repaired = True
                    key = (sp.start_char, sp.end_char, label)
                else:
                    sp = None
            if sp is None:
                why = "does not align with token boundaries"
                events.append(SpanEvent("dropped", why, doc_id, span.start, span.end, span.label))
                continue
            earlier = seen.get(key)
            if earlier is not None:
                why = DUPLICATE_REPAIRED_MERGED if repaired or earlier else DUPLICATE_MERGED
                events.append(SpanEvent("adjusted", why, doc_id, span.start, span.end, span.label))
                seen[key] = earlier or repaired
                continue
            seen[key] = repaired
            aligned.append(sp)
        return aligned

    @staticmethod
    def _hints(record: Record) -> Callable[[Span], str | None]:
        """Which unit each span's annotation claims (``Annotation.meta["offset_units"]``)."""
        hints = [_hint(a.meta) for a in record.annotations]
        if len(set(hints)) <= 1:
            only = hints[0] if hints else None
            return lambda span: only
        by_span = {id(s): h for a, h in zip(record.annotations, hints, strict=True) if h for s in a.spans}
        return lambda span: by_span.get(id(span))

    def _spans(self, record: Record, merged: Merged) -> ConversionResult:
        text = record.text
        doc = self.nlp.make_doc(text)
        events: list[SpanEvent] = []
        # unit evidence and hints matter only where units read differently: not in ASCII text
        ascii_only = text.isascii()
        ctx = None if ascii_only else self.units.document()
        hint_of = _no_hint if ascii_only else self._hints(record)
        positives = self._align(doc, text, merged.spans, ctx, hint_of, events, record.id)
        if self.schema.task == TaskKind.SPANS:
            doc.spans[self.schema.spans_key] = positives
            labels = [s.label_ for s in positives]
            return self._result(doc, None, events, labels=labels)
        kept = filter_spans(positives)
        if len(kept) < len(positives):
            kept_set = {(s.start_char, s.end_char, s.label_) for s in kept}
            for s in positives:
                if (s.start_char, s.end_char, s.label_) not in kept_set:
                    events.append(
                        SpanEvent(
                            "dropped",
                            "overlaps a longer entity (ner allows no overlaps)",
                            record.id,
                            s.start_char,
                            s.end_char,
                            s.label_,
                        )
                    )
        doc.set_ents(kept, default="outside" if merged.complete else "missing")
        labels = [s.label_ for s in kept]
        incorrect = (
            self._align(doc, text, merged.incorrect_spans, ctx, hint_of, events, record.id)
            if merged.incorrect_spans
            else []
        )
        if incorrect:
            doc.spans[self.incorrect_spans_key] = incorrect
        elif not merged.complete and not kept:
            # binary answers that left nothing: when the policy dropped the questions, say so by name
            reason = (
                Counter(why for _, why in merged.dropped_spans).most_common(1)[0][0]
                if merged.dropped_spans
                else "nothing to learn (no usable spans)"
            )
            return self._result(None, reason, events)
        return self._result(doc, None, events, labels=labels, incorrect_spans=len(incorrect))

    @staticmethod
    def _result(
        doc: Doc | None,
        reason: str | None,
        events: list[SpanEvent],
        labels: list[str] | None = None,
        incorrect_spans: int = 0,
    ) -> ConversionResult:
        return ConversionResult(
            doc,
            reason,
            [e.note for e in events],
            labels=labels or [],
            incorrect_spans=incorrect_spans,
            span_events=events,
        )

    # -- categories ------------------------------------------------------------

    def _cats(self, text: str, merged: Merged) -> ConversionResult:
        cats = {label: value for label, value in merged.categories.items() if value in (0.0, 1.0)}
        unknown = [label for label in cats if self._labels and label not in self._labels]
        if unknown:
            return ConversionResult(None, f"label not in the label set: {', '.join(sorted(unknown))}")
        # categories the policy left undecided (a tie, a disagreement): the outcome's own name, not "none judged"
        tied = Counter(merged.dropped_categories.values()).most_common(1)[0][0] if merged.dropped_categories else None
        if self.schema.task == TaskKind.TEXTCAT:
            positives = [label for label, value in cats.items() if value == 1.0]
            if len(positives) != 1:
                if not positives and tied:
                    return ConversionResult(None, tied)
                reason = (
                    "exclusive textcat needs exactly one label, got none"
                    if not positives
                    else f"exclusive textcat needs exactly one label, got {len(positives)}"
                )
                return ConversionResult(None, reason)
            cats = {label: 0.0 for label in self.schema.labels} | {positives[0]: 1.0}
        elif not cats:
            return ConversionResult(None, tied or "no category judged")
        doc = self.nlp.make_doc(text)
        doc.cats = cats
        return ConversionResult(doc, None, labels=[label for label, value in cats.items() if value == 1.0])


def _no_hint(span: Span) -> None:
    return None


def _hint(meta: dict[str, object]) -> str | None:
    value = meta.get("offset_units") if meta else None
    return value if isinstance(value, str) and value in UNITS else None
