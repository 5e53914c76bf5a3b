"""Records -> spaCy ``Doc`` objects ready for a DocBin.

* ner: ``doc.ents``; tokens outside every span are *outside* (O) when the
  annotation was complete (manual), *missing* when it was partial (binary).
  Rejected binary spans go to ``doc.spans[incorrect_spans_key]``.
* spans: ``doc.spans[schema.spans_key]``, overlaps allowed.
* textcat: every label in ``doc.cats``, exactly one 1.0.
* textcat_multilabel: the labels the annotators judged, 0.0 or 1.0.

Disagreeing manual versions under a per-span policy (``majority``, ``unanimous``;
see :mod:`annobridge.merge`) are voted on again here, after every proposed span
was checked and aligned to tokens: a kept span is an entity; for ner, a token
outside every kept span is O only when the policy's bar says it is outside, and
*missing* (``ent_iob`` 0, what spaCy's ``Example`` reads as unknown) otherwise;
for spans, disputed spans are left out of the group. The counts come back on the
:class:`ConversionResult` (``disputed_spans``, ``outvoted_spans``,
``missing_tokens``).

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
from .merge import DISAGREE_UNANIMOUS, TIE_MAJORITY, Merged, MergeSkip, Policy, merge_record, ranges, vote_spans
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
    #: per-span merging: spans the policy could not decide, by label (left out / their tokens missing)
    disputed_spans: Counter[str] = field(default_factory=Counter)
    #: per-span merging: spans a majority of the annotators did not mark, by label
    outvoted_spans: Counter[str] = field(default_factory=Counter)
    #: per-span merging (ner): tokens left missing (neither an entity nor O)
    missing_tokens: int = 0


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
        if self.policy.name == "dawid-skene" and schema.task.is_span_task:
            raise UsageError(
                "--merge dawid-skene weighs annotators on categories: use it with --task textcat or "
                "textcat_multilabel (for ner / spans: majority or unanimous decide per span)"
            )
        self.incorrect_spans_key = incorrect_spans_key
        self._labels = set(schema.labels)
        #: the source's offset-unit evidence, grown by every record converted (see annobridge.offsets)
        self.units = offset_units if isinstance(offset_units, OffsetUnits) else OffsetUnits(offset_units)

    def convert(self, record: Record) -> ConversionResult:
        merged = merge_record(record, self.policy, task=self.schema.task)
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
        if result.conflict is None:
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
        for span, placed in zip(spans, self._align_each(doc, text, spans, ctx, hint_of, events, doc_id), strict=True):
            if placed is None:
                continue
            sp, key, repaired = placed
            earlier = seen.get(key)
            if earlier is not None:
                why = DUPLICATE_REPAIRED_MERGED if repaired or earlier else DUPLICATE_MERGED
                events.append(SpanEvent("adjusted", why, doc_id, span.start, span.end, span.label))
                seen[key] = earlier or repaired
                continue
            seen[key] = repaired
            aligned.append(sp)
        return aligned

    def _align_each(
        self,
        doc: Doc,
        text: str,
        spans: Sequence[Span],
        ctx: DocumentUnits | None,
        hint_of: Callable[[Span], str | None],
        events: list[SpanEvent],
        doc_id: str,
    ) -> list[tuple[SpacySpan, tuple[int, int, str], bool] | None]:
        """Each span checked and aligned to tokens: (span, its final character key, was it repaired), or None."""
        out: list[tuple[SpacySpan, tuple[int, int, str], bool] | None] = []
        char_span = doc.char_span
        for span, checked in zip(spans, self._check(text, doc, spans, ctx, hint_of), strict=True):
            fixed = checked[0]
            if fixed is None:
                events.append(
                    SpanEvent("dropped", checked.note or "not usable", doc_id, span.start, span.end, span.label)
                )
                out.append(None)
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
                out.append(None)
                continue
            out.append((sp, key, repaired))
        return out

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
        if merged.span_votes is not None:
            return self._voted_spans(record, merged, doc, ctx, hint_of, events)
        positives = self._align(doc, text, merged.spans, ctx, hint_of, events, record.id)
        if self.schema.task == TaskKind.SPANS:
            doc.spans[self.schema.spans_key] = positives
            labels = [s.label_ for s in positives]
            return self._result(doc, None, events, labels=labels)
        return self._entities(record, merged, doc, positives, ctx, hint_of, events)

    def _entities(
        self,
        record: Record,
        merged: Merged,
        doc: Doc,
        positives: list[SpacySpan],
        ctx: DocumentUnits | None,
        hint_of: Callable[[Span], str | None],
        events: list[SpanEvent],
        missing: set[int] | None = None,
    ) -> ConversionResult:
        """``doc.ents`` from the positive spans; ``missing``: token indices to leave missing (per-span votes)."""
        text = record.text
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
        missing_tokens = 0
        if missing:
            for s in kept:
                missing.difference_update(range(s.start, s.end))
            missing_tokens = len(missing)
            if not kept and all(doc[i].is_space or i in missing for i in range(len(doc))):
                # every token disputed: nothing to learn, skipped under the policy's own outcome
                reason = DISAGREE_UNANIMOUS if self.policy.name == "unanimous" else TIE_MAJORITY
                result = self._result(None, reason, events)
                result.conflict = f"dropped: {reason}"
                return result
        if missing:
            doc.set_ents(kept, missing=[doc[a:b] for a, b in ranges(missing)], default="outside")
        else:
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
        result = self._result(doc, None, events, labels=labels, incorrect_spans=len(incorrect))
        result.missing_tokens = missing_tokens
        return result

    def _voted_spans(
        self,
        record: Record,
        merged: Merged,
        doc: Doc,
        ctx: DocumentUnits | None,
        hint_of: Callable[[Span], str | None],
        events: list[SpanEvent],
    ) -> ConversionResult:
        """Per-span votes of complete versions, on the spans as checked and aligned to this doc's tokens."""
        votes = merged.span_votes or []
        candidates: dict[tuple[int, int, str], Span] = {}
        for version in votes:
            for span in version:
                candidates.setdefault(span.key, span)
        given = list(candidates.values())
        placed = self._align_each(doc, record.text, given, ctx, hint_of, events, record.id)
        token_key: dict[tuple[int, int, str], tuple[int, int, str]] = {}
        token_span: dict[tuple[int, int, str], SpacySpan] = {}
        for span, where in zip(given, placed, strict=True):
            if where is not None:
                sp = where[0]
                key = (sp.start, sp.end, sp.label_)
                token_key[span.key] = key
                token_span.setdefault(key, sp)
        versions = [{token_key[s.key] for s in version if s.key in token_key} for version in votes]
        vote = vote_spans(versions, self.policy)
        positives = [token_span[k] for k in vote.kept]
        # binary answers about spans no manual annotator proposed: decided by their own votes (merge_record)
        extra = [s for s in merged.spans if s.key not in candidates]
        if extra:
            positives.extend(self._align(doc, record.text, extra, ctx, hint_of, events, record.id))
        disputed = Counter(label for _, _, label in vote.disputed)
        outvoted = Counter(label for _, _, label in vote.outvoted)
        how = self.policy.label
        if self.schema.task == TaskKind.SPANS:
            if not positives and disputed:
                reason = DISAGREE_UNANIMOUS if self.policy.name == "unanimous" else TIE_MAJORITY
                result = self._result(None, reason, events)
                result.conflict = f"dropped: {reason}"
            else:
                doc.spans[self.schema.spans_key] = positives
                result = self._result(doc, None, events, labels=[s.label_ for s in positives])
                result.conflict = (
                    f"partly resolved per span by {how} (disputed spans left out)"
                    if disputed
                    else f"resolved per span by {how}"
                )
        else:
            result = self._entities(record, merged, doc, positives, ctx, hint_of, events, missing=set(vote.missing))
            if result.doc is not None:
                result.conflict = (
                    f"partly resolved per span by {how} (disputed regions missing)"
                    if result.missing_tokens
                    else f"resolved per span by {how}"
                )
        result.disputed_spans = disputed
        result.outvoted_spans = outvoted
        return result

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
