"""Turn several annotations of one document into one set of training labels.

Prodigy's answer semantics apply to every tool:

* ``ignore`` and ``skip`` answers are dropped;
* a rejected *manual* annotation is dropped (manual answers are assumed complete
  when accepted, and say nothing usable when rejected);
* a rejected *binary* annotation is negative information: its spans become
  "incorrect spans" (spaCy's ``incorrect_spans_key``) and its labels 0.0.

Manual annotations are whole versions of the document; when annotators
disagree, a named policy picks one. Binary annotations answer one question each
(this span? this label?); only answers to the same question can conflict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from .errors import UsageError
from .model import Annotation, Answer, Record, Span

__all__ = ["POLICIES", "POLICY_REASONS", "MergeSkip", "Merged", "merge_record"]

#: names accepted by ``--merge``; ``prefer:NAME`` prefers annotator NAME
POLICIES = ("ground_truth", "latest", "majority", "unanimous", "prefer:NAME")

#: skip reasons that follow from the answer semantics or a deliberate merge policy, not from bad
#: data: the export reports them but they do not make it exit 1
POLICY_REASONS = frozenset(
    {
        "no annotations",
        "only ignored or skipped answers",
        "only rejected manual annotations",
        "nothing to learn (no usable spans)",
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
T = TypeVar("T")


@dataclass
class Merged:
    spans: list[Span] = field(default_factory=list)
    incorrect_spans: list[Span] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)
    #: True when unlabelled tokens are known to be outside any entity (manual data)
    complete: bool = True
    annotators: list[str] = field(default_factory=list)
    #: how a disagreement was settled, e.g. "resolved by latest"; None when all agreed
    conflict: str | None = None


@dataclass
class MergeSkip:
    reason: str
    conflict: str | None = None


def _ts(annotation: Annotation) -> datetime:
    ts = annotation.timestamp
    if ts is None:
        return _EPOCH
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _latest(items: Sequence[tuple[Annotation, T]]) -> tuple[Annotation, T]:
    # max() keeps the first of equals; later list position wins ties, like a later write
    best = items[0]
    for item in items[1:]:
        if _ts(item[0]) >= _ts(best[0]):
            best = item
    return best


class Policy:
    def __init__(self, spec: str) -> None:
        name, _, arg = spec.partition(":")
        if name not in ("ground_truth", "latest", "majority", "unanimous", "prefer"):
            raise UsageError(f"Unknown merge policy {spec!r}; choose one of {', '.join(POLICIES)}")
        if name == "prefer" and not arg:
            raise UsageError("The prefer policy needs an annotator: --merge prefer:alice")
        self.name, self.annotator = name, arg

    def resolve(self, items: Sequence[tuple[Annotation, T]], key: Callable[[T], Hashable]) -> tuple[T | None, str]:
        """Pick one value among disagreeing ones; returns (value or None to drop, how)."""
        if self.name == "unanimous":
            return None, "dropped: annotators disagree (unanimous)"
        if self.name == "majority":
            votes = Counter(key(value) for _, value in items)
            (top, top_n), *rest = votes.most_common()
            if rest and rest[0][1] == top_n:
                return None, "dropped: no majority (tie)"
            chosen = next(value for _, value in items if key(value) == top)
            return chosen, "resolved by majority"
        if self.name == "prefer":
            theirs = [item for item in items if item[0].annotator == self.annotator]
            if theirs:
                return _latest(theirs)[1], f"resolved by preferring {self.annotator}"
            return _latest(items)[1], "resolved by latest (preferred annotator absent)"
        if self.name == "ground_truth":
            truth = [item for item in items if item[0].ground_truth]
            if truth:
                return _latest(truth)[1], "resolved by ground truth"
        return _latest(items)[1], "resolved by latest"


def _manual_version(annotation: Annotation) -> tuple[frozenset[tuple[int, int, str]], tuple[tuple[str, float], ...]]:
    return (frozenset(s.key for s in annotation.spans), tuple(sorted(annotation.categories.items())))


def merge_record(record: Record, policy: str | Policy = "ground_truth") -> Merged | MergeSkip:
    """Merge a record's annotations into one set of labels, or say why there is nothing to learn."""
    pol = policy if isinstance(policy, Policy) else Policy(policy)
    if not record.annotations:
        return MergeSkip("no annotations")
    if len(record.annotations) == 1:  # the common case, kept cheap: nothing to merge
        only = record.annotations[0]
        if only.answer == Answer.ACCEPT and only.mode != "binary":
            return Merged(list(only.spans), [], dict(only.categories), True, [only.annotator])
    usable = [a for a in record.annotations if a.answer not in (Answer.IGNORE, Answer.SKIP)]
    if not usable:
        return MergeSkip("only ignored or skipped answers")
    manual = [a for a in usable if a.mode != "binary" and a.answer == Answer.ACCEPT]
    binary = [a for a in usable if a.mode == "binary"]
    if not manual and not binary:
        return MergeSkip("only rejected manual annotations")

    merged = Merged(complete=bool(manual))
    conflicts: list[str] = []
    if manual:
        versions = [(a, a) for a in manual]
        if len(manual) > 1 and len({_manual_version(a) for a in manual}) > 1:
            resolved = pol.resolve(versions, key=_manual_version)
            chosen, how = resolved
            conflicts.append(how)
            if chosen is None:
                return MergeSkip(how.removeprefix("dropped: "), conflict=how)
        else:
            chosen = _latest(versions)[1]
        merged.spans = list(chosen.spans)
        merged.categories = dict(chosen.categories)
        merged.annotators = sorted({a.annotator for a in manual})

    if binary:
        _merge_binary(binary, merged, pol, conflicts)
        merged.annotators = sorted(set(merged.annotators) | {a.annotator for a in binary})
    if conflicts:
        merged.conflict = Counter(conflicts).most_common(1)[0][0]
    return merged


def _merge_binary(binary: list[Annotation], merged: Merged, pol: Policy, conflicts: list[str]) -> None:
    span_votes: dict[tuple[int, int, str], list[tuple[Annotation, tuple[bool, Span]]]] = {}
    cat_votes: dict[str, list[tuple[Annotation, tuple[bool, Span | None]]]] = {}
    for ann in binary:
        accepted = ann.answer == Answer.ACCEPT
        for span in ann.spans:
            span_votes.setdefault(span.key, []).append((ann, (accepted, span)))
        for label, value in ann.categories.items():
            # the categories are the question asked; the answer says whether it holds
            cat_votes.setdefault(label, []).append((ann, (accepted and value > 0.0, None)))

    manual_keys = {s.key for s in merged.spans}
    for key, votes in span_votes.items():
        decision = _decide(votes, pol, conflicts)
        if decision is None or key in manual_keys:
            continue
        accepted, span = decision
        (merged.spans if accepted else merged.incorrect_spans).append(span)
    for label, cvotes in cat_votes.items():
        cdecision = _decide(cvotes, pol, conflicts)
        if cdecision is not None and label not in merged.categories:
            merged.categories[label] = 1.0 if cdecision[0] else 0.0


def _accepted(value: tuple[bool, Any]) -> bool:
    return value[0]


def _decide(votes: list[tuple[Annotation, tuple[bool, T]]], pol: Policy, conflicts: list[str]) -> tuple[bool, T] | None:
    if len({accepted for _, (accepted, _) in votes}) == 1:
        return _latest(votes)[1]
    resolved = pol.resolve(votes, key=_accepted)
    chosen, how = resolved
    conflicts.append(how)
    return chosen
