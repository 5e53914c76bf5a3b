"""Records -> spaCy ``Doc`` objects ready for a DocBin.

* ner: ``doc.ents``; tokens outside every span are *outside* (O) when the
  annotation was complete (manual), *missing* when it was partial (binary).
  Rejected binary spans go to ``doc.spans[incorrect_spans_key]``.
* spans: ``doc.spans[schema.spans_key]``, overlaps allowed.
* textcat: every label in ``doc.cats``, exactly one 1.0.
* textcat_multilabel: the labels the annotators judged, 0.0 or 1.0.

Each span is first checked against the text it claims (:mod:`annobridge.offsets`)
and then aligned to tokens: strict first, then the chosen alignment mode.
Whatever is changed or dropped is reported, never done silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan
from spacy.util import filter_spans

from .errors import UsageError
from .merge import Merged, MergeSkip, Policy, merge_record
from .model import LabelSchema, Record, Span, TaskKind
from .offsets import check_span

__all__ = ["ALIGN_MODES", "ConversionResult", "DocConverter"]

Align = Literal["strict", "contract", "expand"]
ALIGN_MODES: tuple[str, ...] = ("strict", "contract", "expand")
INCORRECT_SPANS_KEY = "incorrect_spans"


@dataclass
class ConversionResult:
    doc: Doc | None
    #: why the record yields no doc (None when it does)
    reason: str | None = None
    #: "adjusted: <why>" / "dropped: <why>" per span that was not taken as given
    span_notes: list[str] = field(default_factory=list)
    conflict: str | None = None
    labels: list[str] = field(default_factory=list)
    merged: Merged | None = None
    #: rejected spans written to doc.spans[incorrect_spans_key]
    incorrect_spans: int = 0


class DocConverter:
    def __init__(
        self,
        nlp: Language,
        schema: LabelSchema,
        *,
        align: str = "expand",
        policy: str | Policy = "ground_truth",
        incorrect_spans_key: str = INCORRECT_SPANS_KEY,
    ) -> None:
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

    def convert(self, record: Record) -> ConversionResult:
        merged = merge_record(record, self.policy)
        if isinstance(merged, MergeSkip):
            return ConversionResult(None, merged.reason, conflict=merged.conflict)
        if not record.text.strip():
            return ConversionResult(None, "empty text", merged=merged)
        if self.schema.task.is_span_task:
            result = self._spans(record.text, merged)
        else:
            result = self._cats(record.text, merged)
        result.conflict = merged.conflict
        result.merged = merged
        return result

    # -- spans ---------------------------------------------------------------

    def _align(self, doc: Doc, text: str, spans: Iterable[Span], notes: list[str]) -> list[SpacySpan]:
        # ``text`` is passed in: ``doc.text`` rebuilds the string from every token on each access
        aligned: list[SpacySpan] = []
        for span in spans:
            if self._labels and span.label not in self._labels:
                notes.append(f"dropped: label {span.label!r} not in the label set")
                continue
            checked = check_span(text, span)
            if checked.span is None:
                notes.append(f"dropped: {checked.note}")
                continue
            if checked.note:
                notes.append(f"adjusted: {checked.note}")
            fixed = checked.span
            sp = doc.char_span(fixed.start, fixed.end, label=fixed.label)
            if sp is None and self.align != "strict":
                sp = doc.char_span(fixed.start, fixed.end, label=fixed.label, alignment_mode=self.align)
                if sp is not None and len(sp):
                    notes.append(f"adjusted: aligned to token boundaries ({self.align})")
                else:
                    sp = None
            if sp is None:
                notes.append("dropped: does not align with token boundaries")
                continue
            aligned.append(sp)
        return aligned

    def _spans(self, text: str, merged: Merged) -> ConversionResult:
        doc = self.nlp.make_doc(text)
        notes: list[str] = []
        positives = self._align(doc, text, merged.spans, notes)
        if self.schema.task == TaskKind.SPANS:
            unique = {(s.start, s.end, s.label): s for s in positives}
            doc.spans[self.schema.spans_key] = list(unique.values())
            labels = [s.label_ for s in unique.values()]
        else:
            kept = filter_spans(positives)
            if len(kept) < len(positives):
                notes.extend(
                    ["dropped: overlaps a longer entity (ner allows no overlaps)"] * (len(positives) - len(kept))
                )
            doc.set_ents(kept, default="outside" if merged.complete else "missing")
            labels = [s.label_ for s in kept]
            incorrect = self._align(doc, text, merged.incorrect_spans, notes) if merged.incorrect_spans else []
            if incorrect:
                doc.spans[self.incorrect_spans_key] = incorrect
            elif not merged.complete and not kept:
                return ConversionResult(None, "nothing to learn (no usable spans)", notes)
            return ConversionResult(doc, None, notes, labels=labels, incorrect_spans=len(incorrect))
        return ConversionResult(doc, None, notes, labels=labels)

    # -- categories ------------------------------------------------------------

    def _cats(self, text: str, merged: Merged) -> ConversionResult:
        cats = {label: value for label, value in merged.categories.items() if value in (0.0, 1.0)}
        unknown = [label for label in cats if self._labels and label not in self._labels]
        if unknown:
            return ConversionResult(None, f"label not in the label set: {', '.join(sorted(unknown))}")
        if self.schema.task == TaskKind.TEXTCAT:
            positives = [label for label, value in cats.items() if value == 1.0]
            if len(positives) != 1:
                reason = (
                    "exclusive textcat needs exactly one label, got none"
                    if not positives
                    else f"exclusive textcat needs exactly one label, got {len(positives)}"
                )
                return ConversionResult(None, reason)
            cats = {label: 0.0 for label in self.schema.labels} | {positives[0]: 1.0}
        elif not cats:
            return ConversionResult(None, "no category judged")
        doc = self.nlp.make_doc(text)
        doc.cats = cats
        return ConversionResult(doc, None, labels=[label for label, value in cats.items() if value == 1.0])
