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

Every policy counts **one vote per annotator per question**: an annotator's
latest answer (by timestamp, then by list position) is their vote, and their
earlier answers to the same question are superseded, not extra votes. A
ground-truth annotation (a reviewer's decision) is its own voter even when the
tool files it under the name of an annotator whose version it adopted (Prodigy's
review output does).

Outcomes a policy produces on purpose (a tie under ``majority``, a disagreement
under ``unanimous``, answers with equal timestamps under ``latest``) are named
in :data:`POLICY_REASONS`: they are reported, but they are not data errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeVar

from .errors import UsageError
from .model import Annotation, Answer, Record, Span

__all__ = [
    "DISAGREE_UNANIMOUS",
    "POLICIES",
    "POLICY_REASONS",
    "TIE_MAJORITY",
    "TIE_TIMESTAMPS",
    "MergeSkip",
    "Merged",
    "Resolution",
    "latest_votes",
    "merge_record",
]

#: names accepted by ``--merge``; ``prefer:NAME`` prefers annotator NAME
POLICIES = ("ground_truth", "latest", "majority", "unanimous", "prefer:NAME")

#: ``majority``: the most common answer is shared by several versions
TIE_MAJORITY = "annotators tied (majority)"
#: ``unanimous``: the annotators do not all agree
DISAGREE_UNANIMOUS = "annotators disagree (unanimous)"
#: ``latest`` (also ``ground_truth`` and ``prefer:NAME`` when they fall back to latest): the most recent
#: disagreeing answers carry the same timestamp (or none), so "latest" would be a guess by list order
TIE_TIMESTAMPS = "tie: equal timestamps (latest)"

#: skip reasons that follow from the answer semantics or a deliberate merge policy, not from bad
#: data: the export reports them but they do not make it exit 1
POLICY_REASONS = frozenset(
    {
        "no annotations",
        "only ignored or skipped answers",
        "only rejected manual annotations",
        "nothing to learn (no usable spans)",
        TIE_MAJORITY,
        DISAGREE_UNANIMOUS,
        TIE_TIMESTAMPS,
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
T = TypeVar("T")
Q = TypeVar("Q", bound=Hashable)


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
    #: answers superseded by the same annotator's later answer to the same question (not counted as votes)
    superseded: int = 0
    #: binary span questions the policy left undecided, with the reason (one of POLICY_REASONS)
    dropped_spans: list[tuple[Span, str]] = field(default_factory=list)
    #: binary category questions the policy left undecided: label -> reason (one of POLICY_REASONS)
    dropped_categories: dict[str, str] = field(default_factory=dict)


@dataclass
class MergeSkip:
    reason: str
    conflict: str | None = None
    #: as in :attr:`Merged.superseded`
    superseded: int = 0


class Resolution(NamedTuple):
    """What a policy made of disagreeing votes."""

    #: the chosen value, None when the question (or document) is dropped
    value: Any
    #: how it was settled, for the report's ``conflicts``: "resolved by ..." or "dropped: <reason>"
    how: str
    #: the skip reason when dropped (one of POLICY_REASONS), else None
    reason: str | None = None


def _ts(annotation: Annotation) -> datetime:
    ts = annotation.timestamp
    if ts is None:
        return _EPOCH
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _latest(items: Sequence[tuple[Annotation, T]]) -> tuple[Annotation, T]:
    # the last of equals wins: within one annotator's answers a later list position is a later write
    best = items[0]
    for item in items[1:]:
        if _ts(item[0]) >= _ts(best[0]):
            best = item
    return best


def _latest_or_tie(items: Sequence[tuple[Annotation, T]], key: Callable[[T], Hashable]) -> T | None:
    """The most recent value, or None when the most recent answers disagree and share a timestamp.

    Missing timestamps count as equal: between two annotators list order says nothing (an SDK's
    bulk log can give every answer the same time), so it must not decide.
    """
    newest = max(_ts(a) for a, _ in items)
    top = [item for item in items if _ts(item[0]) == newest]
    if len({key(value) for _, value in top}) > 1:
        return None
    return top[-1][1]


def latest_votes(
    items: Iterable[tuple[Q, Annotation, T]],
) -> tuple[list[tuple[Q, Annotation, T]], int]:
    """One vote per (voter, question): ``items`` are (question, annotation, value) in list order.

    Returns the surviving items in first-seen order and how many were superseded. The voter is the
    annotator, kept apart for ground-truth annotations (see the module docstring).
    """
    best: dict[tuple[Q, str, bool], tuple[Q, Annotation, T]] = {}
    superseded = 0
    for item in items:
        question, ann, _ = item
        voter = (question, ann.annotator, ann.ground_truth)
        seen = best.get(voter)
        if seen is None:
            best[voter] = item
            continue
        superseded += 1
        if _ts(ann) >= _ts(seen[1]):  # a later position breaks equal timestamps: same person, later write
            best[voter] = item
    return list(best.values()), superseded


class Policy:
    def __init__(self, spec: str) -> None:
        name, _, arg = spec.partition(":")
        if name not in ("ground_truth", "latest", "majority", "unanimous", "prefer"):
            raise UsageError(f"Unknown merge policy {spec!r}; choose one of {', '.join(POLICIES)}")
        if name == "prefer" and not arg:
            raise UsageError("The prefer policy needs an annotator: --merge prefer:alice")
        self.name, self.annotator = name, arg

    def resolve(self, items: Sequence[tuple[Annotation, T]], key: Callable[[T], Hashable]) -> Resolution:
        """Pick one value among disagreeing votes (one per annotator), or say why none is picked."""
        if self.name == "unanimous":
            return Resolution(None, f"dropped: {DISAGREE_UNANIMOUS}", DISAGREE_UNANIMOUS)
        if self.name == "majority":
            votes = Counter(key(value) for _, value in items)
            (top, top_n), *rest = votes.most_common()
            if rest and rest[0][1] == top_n:
                return Resolution(None, f"dropped: {TIE_MAJORITY}", TIE_MAJORITY)
            chosen = next(value for _, value in items if key(value) == top)
            return Resolution(chosen, "resolved by majority")
        if self.name == "prefer":
            theirs = [item for item in items if item[0].annotator == self.annotator]
            if theirs:
                return self._latest(theirs, key, f"resolved by preferring {self.annotator}")
            return self._latest(items, key, "resolved by latest (preferred annotator absent)")
        if self.name == "ground_truth":
            truth = [item for item in items if item[0].ground_truth]
            if truth:
                return self._latest(truth, key, "resolved by ground truth")
        return self._latest(items, key, "resolved by latest")

    @staticmethod
    def _latest(items: Sequence[tuple[Annotation, T]], key: Callable[[T], Hashable], how: str) -> Resolution:
        chosen = _latest_or_tie(items, key)
        if chosen is None:
            return Resolution(None, f"dropped: {TIE_TIMESTAMPS}", TIE_TIMESTAMPS)
        return Resolution(chosen, how)


def _manual_version(annotation: Annotation) -> tuple[frozenset[tuple[int, int, str]], tuple[tuple[str, float], ...]]:
    return (frozenset(s.key for s in annotation.spans), tuple(sorted(annotation.categories.items())))


#: the one question a manual annotation answers: the whole document
_DOCUMENT = "document"


def merge_record(record: Record, policy: str | Policy = "ground_truth") -> Merged | MergeSkip:
    """Merge a record's annotations into one set of labels, or say why there is nothing to learn."""
    pol = policy if isinstance(policy, Policy) else Policy(policy)
    if not record.annotations:
        return MergeSkip("no annotations")
    if len(record.annotations) == 1:  # the common case, kept cheap: nothing to merge
        only = record.annotations[0]
        if only.answer == Answer.ACCEPT and only.mode != "binary":
            return Merged(list(only.spans), [], dict(only.categories), True, [only.annotator])
    # An annotator's latest manual answer is their one version, whatever it says: a later ignore or
    # reject withdraws an earlier accept. Binary answers are votes per question (_merge_binary).
    manual_votes, superseded = latest_votes((_DOCUMENT, a, a) for a in record.annotations if a.mode != "binary")
    binary = [a for a in record.annotations if a.mode == "binary" and a.answer not in (Answer.IGNORE, Answer.SKIP)]
    usable = [a for _, a, _ in manual_votes if a.answer not in (Answer.IGNORE, Answer.SKIP)]
    if not usable and not binary:
        return MergeSkip("only ignored or skipped answers", superseded=superseded)
    manual = [a for a in usable if a.answer == Answer.ACCEPT]
    if not manual and not binary:
        return MergeSkip("only rejected manual annotations", superseded=superseded)

    merged = Merged(complete=bool(manual))
    conflicts: list[str] = []
    if manual:
        versions = [(a, a) for a in manual]
        if len(manual) > 1 and len({_manual_version(a) for a in manual}) > 1:
            resolution = pol.resolve(versions, key=_manual_version)
            conflicts.append(resolution.how)
            if resolution.value is None:
                return MergeSkip(resolution.reason or resolution.how, conflict=resolution.how, superseded=superseded)
            chosen: Annotation = resolution.value
        else:
            chosen = _latest(versions)[1]
        merged.spans = list(chosen.spans)
        merged.categories = dict(chosen.categories)
        merged.annotators = sorted({a.annotator for a in manual})

    if binary:
        superseded += _merge_binary(record.annotations, merged, pol, conflicts)
        merged.annotators = sorted(set(merged.annotators) | {a.annotator for a in binary})
    merged.superseded = superseded
    if conflicts:
        merged.conflict = Counter(conflicts).most_common(1)[0][0]
    return merged


def _merge_binary(annotations: list[Annotation], merged: Merged, pol: Policy, conflicts: list[str]) -> int:
    """Decide each binary question; returns how many answers were superseded by a later one."""
    span_items: list[tuple[tuple[int, int, str], Annotation, tuple[Answer, Span]]] = []
    cat_items: list[tuple[str, Annotation, tuple[Answer, float]]] = []
    for ann in annotations:
        if ann.mode != "binary":
            continue
        # ignored answers take part in superseding (a later ignore withdraws an earlier vote), then drop out
        for span in ann.spans:
            span_items.append((span.key, ann, (ann.answer, span)))
        for label, value in ann.categories.items():
            # the categories are the question asked; the answer says whether it holds
            cat_items.append((label, ann, (ann.answer, value)))
    span_votes, superseded = latest_votes(span_items)
    cat_votes, cat_superseded = latest_votes(cat_items)

    by_span: dict[tuple[int, int, str], list[tuple[Annotation, tuple[bool, Span]]]] = {}
    for key, ann, (answer, span) in span_votes:
        if answer in (Answer.ACCEPT, Answer.REJECT):
            by_span.setdefault(key, []).append((ann, (answer == Answer.ACCEPT, span)))
    by_label: dict[str, list[tuple[Annotation, tuple[bool, None]]]] = {}
    for label, ann, (answer, value) in cat_votes:
        if answer in (Answer.ACCEPT, Answer.REJECT):
            by_label.setdefault(label, []).append((ann, (answer == Answer.ACCEPT and value > 0.0, None)))

    manual_keys = {s.key for s in merged.spans}
    for key, votes in by_span.items():
        decision = _decide(votes, pol, conflicts)
        if isinstance(decision, str):
            if key not in manual_keys:
                merged.dropped_spans.append((votes[-1][1][1], decision))
            continue
        if key in manual_keys:
            continue
        accepted, span = decision
        (merged.spans if accepted else merged.incorrect_spans).append(span)
    for label, cvotes in by_label.items():
        cdecision = _decide(cvotes, pol, conflicts)
        if label in merged.categories:
            continue
        if isinstance(cdecision, str):
            merged.dropped_categories[label] = cdecision
        else:
            merged.categories[label] = 1.0 if cdecision[0] else 0.0
    return superseded + cat_superseded


def _accepted(value: tuple[bool, Any]) -> bool:
    return value[0]


def _decide(votes: list[tuple[Annotation, tuple[bool, T]]], pol: Policy, conflicts: list[str]) -> tuple[bool, T] | str:
    """The decided (accepted, value), or the reason the question is dropped."""
    if len({accepted for _, (accepted, _) in votes}) == 1:
        return _latest(votes)[1]
    resolution = pol.resolve(votes, key=_accepted)
    conflicts.append(resolution.how)
    if resolution.value is None:
        return resolution.reason or resolution.how
    chosen: tuple[bool, T] = resolution.value
    return chosen
