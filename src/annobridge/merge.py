"""Turn several annotations of one document into one set of training labels.

Prodigy's answer semantics apply to every tool:

* ``ignore`` and ``skip`` answers are dropped;
* a rejected *manual* annotation is dropped (manual answers are assumed complete
  when accepted, and say nothing usable when rejected);
* a rejected *binary* annotation is negative information: its spans become
  "incorrect spans" (spaCy's ``incorrect_spans_key``) and its labels 0.0.

Manual annotations are complete versions of the document; binary annotations
answer one question each (this span? this label?), and only answers to the same
question can conflict.

Every policy counts **one vote per annotator per question**: an annotator's
latest answer (by timestamp, then by list position) is their vote, and their
earlier answers to the same question are superseded, not extra votes. A
ground-truth annotation (a reviewer's decision) is its own voter even when the
tool files it under the name of an annotator whose version it adopted (Prodigy's
review output does).

Per span or per version
-----------------------

When the task is known (``merge_record(..., task=...)``, which the converter and
the export always pass), disagreeing manual versions are decided at the finest
grain the task allows:

* **ner / spans, ``majority`` and ``unanimous``: per span.** A manual annotation
  is complete, so every annotator votes on every span any of them proposed: yes
  when the span (same start, end and label) is in their version, no when it is
  not. ``majority`` keeps a span more than half of the annotators marked
  (exactly half: *disputed*; fewer: *outvoted*); ``unanimous`` keeps a span all
  of them marked (any other is *disputed*). The converter votes again after
  offset repair and token alignment, so "Maria " and "Maria", or a UTF-16 and a
  code-point span of one entity, are the same vote.
* **ner, the tokens outside every kept span** are *outside* (O) when the policy's
  bar says so — more than half of the annotators (``majority``), or all of them
  (``unanimous``), left the token outside all of their spans — and *missing*
  otherwise (spaCy's missing value, ``ent_iob`` 0: the model is taught nothing
  about them). So: kept spans win; a region where annotators proposed spans
  that differ in boundaries or label and none reached the bar is missing, not O;
  a span proposed by a minority against a majority that marked nothing there is
  O. Kept spans that overlap each other (only possible when one annotator's own
  spans overlap) are settled as for a single annotation: the longest wins, the
  rest are reported.
* **spans (``doc.spans``)**: kept spans go in the group; disputed and outvoted
  spans are left out and counted. spancat has no missing value, so a disputed
  span left out is a negative example there: the report says how many.
* A document is dropped only when nothing is left to learn: for ner, no kept
  entity and every (non-space) token missing; for spans, no kept span while some
  span is disputed. It is skipped under the policy's outcome name
  (:data:`TIE_MAJORITY`, :data:`DISAGREE_UNANIMOUS`).
* **textcat_multilabel, ``majority`` and ``unanimous``: per label.** A label
  absent from a manual version is a 0.0 vote; a tied or disputed label is left
  out of ``doc.cats`` (spaCy's multilabel textcat treats an absent label as
  missing), the others are kept. **Exclusive textcat** votes on the one label
  each version chose (which is the whole version).
* **``prefer:NAME``** keeps NAME's version wherever NAME answered. Per span that
  is the same thing: NAME's manual version is complete, so NAME votes on every
  span, and their vote decides it. Documents NAME did not answer fall back to the
  latest version, as a whole.
* **``latest`` and ``ground_truth``** stay whole-version policies: a reviewer's
  decision, or an annotator's latest edit, is a version of the whole document.
* **``dawid-skene``** (categories only: textcat, textcat_multilabel, binary
  accept/reject per label) weights each annotator by a reliability estimated
  over the whole pull (:mod:`annobridge.dawid_skene`); the export fits it in its
  survey pass and attaches it to the :class:`Policy` (``policy.model``). It is
  applied only where the votes on a question disagree. Questions it has no
  model for (without a task: whole versions, binary span questions) fall back
  to the plain majority.

Binary span answers count only for spans no manual annotator proposed (a manual
version is the complete answer; a binary one adds a question to it). Without a
task (``task=None``), manual versions are compared whole, spans and categories
together, and a disagreement is settled by one version for the whole document.

Outcomes a policy produces on purpose (a tie under ``majority``, a disagreement
under ``unanimous``, answers with equal timestamps under ``latest``) are named
in :data:`POLICY_REASONS`: they are reported, but they are not data errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .errors import UsageError
from .model import Annotation, Answer, Record, Span, TaskKind

if TYPE_CHECKING:
    from .dawid_skene import CategoryModel

__all__ = [
    "DISAGREE_UNANIMOUS",
    "PER_SPAN_POLICIES",
    "POLICIES",
    "POLICY_REASONS",
    "TIE_DAWID_SKENE",
    "TIE_MAJORITY",
    "TIE_TIMESTAMPS",
    "CategoryBallots",
    "MergeSkip",
    "Merged",
    "Policy",
    "Resolution",
    "SpanVote",
    "category_ballots",
    "latest_votes",
    "merge_record",
    "vote_spans",
]

#: names accepted by ``--merge``; ``prefer:NAME`` prefers annotator NAME
POLICIES = ("ground_truth", "latest", "majority", "unanimous", "prefer:NAME", "dawid-skene")
#: policies that decide disagreeing manual versions per span (ner, spans) and per label (textcat_multilabel)
PER_SPAN_POLICIES = frozenset({"majority", "unanimous"})

#: ``majority``: the most common answer is shared by several versions
TIE_MAJORITY = "annotators tied (majority)"
#: ``unanimous``: the annotators do not all agree
DISAGREE_UNANIMOUS = "annotators disagree (unanimous)"
#: ``latest`` (also ``ground_truth`` and ``prefer:NAME`` when they fall back to latest): the most recent
#: disagreeing answers carry the same timestamp (or none), so "latest" would be a guess by list order
TIE_TIMESTAMPS = "tie: equal timestamps (latest)"
#: ``dawid-skene``: the reliability-weighted votes give two answers exactly the same probability
TIE_DAWID_SKENE = "annotators tied (dawid-skene)"

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
        TIE_DAWID_SKENE,
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
    #: per-span merging only: each manual voter's spans (the converter votes again on them after offset
    #: repair and token alignment); None when one version was taken whole
    span_votes: list[list[Span]] | None = None
    #: per-span merging: spans the policy could not decide (a tie, a disagreement), as given
    disputed_spans: list[Span] = field(default_factory=list)
    #: per-span merging: spans proposed by fewer than half of the annotators (``majority``)
    outvoted_spans: list[Span] = field(default_factory=list)
    #: per-span merging: character ranges outside every kept span that the policy leaves missing (not O)
    missing: list[tuple[int, int]] = field(default_factory=list)


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
    """A parsed ``--merge`` value. ``model`` is the fitted reliability model of ``dawid-skene``."""

    def __init__(self, spec: str, model: CategoryModel | None = None) -> None:
        name, _, arg = spec.partition(":")
        if name not in ("ground_truth", "latest", "majority", "unanimous", "prefer", "dawid-skene"):
            raise UsageError(f"Unknown merge policy {spec!r}; choose one of {', '.join(POLICIES)}")
        if name == "prefer" and not arg:
            raise UsageError("The prefer policy needs an annotator: --merge prefer:alice")
        self.name, self.annotator = name, arg
        self.model = model

    @property
    def label(self) -> str:
        """The policy as the user wrote it (``prefer:alice``)."""
        return f"prefer:{self.annotator}" if self.name == "prefer" else self.name

    def resolve(self, items: Sequence[tuple[Annotation, T]], key: Callable[[T], Hashable]) -> Resolution:
        """Pick one value among disagreeing votes (one per annotator), or say why none is picked."""
        if self.name == "dawid-skene":
            # questions it has no model for (spans, a manual version whole): the plain majority
            return Policy("majority").resolve(items, key)
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


def _span_version(annotation: Annotation) -> frozenset[tuple[int, int, str]]:
    return frozenset(s.key for s in annotation.spans)


def _category_version(annotation: Annotation) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((label, value) for label, value in annotation.categories.items() if value))


def _version_key(task: TaskKind | None) -> Callable[[Annotation], Hashable]:
    """What two manual versions must share to agree: what the task trains on (without a task: everything)."""
    if task is None:
        return _manual_version
    return _span_version if task.is_span_task else _category_version


#: the one question a manual annotation answers: the whole document
_DOCUMENT = "document"


def _resolved_per_span(policy: str) -> str:
    return f"resolved per span by {policy}"


def _partly_resolved(policy: str, what: str) -> str:
    return f"partly resolved per span by {policy} ({what})"


# -- per-span votes ---------------------------------------------------------------------------

SpanKey = tuple[int, int, str]


@dataclass
class SpanVote:
    """What a per-span policy made of several complete versions.

    Positions are whatever the keys count in: characters (``merge_record``) or tokens (the converter,
    after alignment). ``kept`` / ``disputed`` / ``outvoted`` are in first-proposed order.
    """

    kept: list[SpanKey] = field(default_factory=list)
    #: the policy's bar was not reached either way: a tie (majority) or a disagreement (unanimous)
    disputed: list[SpanKey] = field(default_factory=list)
    #: fewer than half of the annotators proposed it (majority)
    outvoted: list[SpanKey] = field(default_factory=list)
    #: positions outside every kept span that are not known to be outside: missing, not O
    missing: set[int] = field(default_factory=set)


def vote_spans(versions: Sequence[Collection[SpanKey]], policy: str | Policy) -> SpanVote:
    """Decide every proposed span by the votes of complete versions (one per annotator), and the positions between.

    A span absent from a version is a "no" vote from its annotator. ``majority``: kept when more than
    half said yes, disputed at exactly half, outvoted below; a position outside every kept span is
    outside when more than half of the versions leave it outside all their spans. ``unanimous``: kept
    when every version has it, every other span disputed; a position is outside only when no version
    covers it. Every other position covered by some version is missing.
    """
    pol = policy if isinstance(policy, Policy) else Policy(policy)
    if pol.name not in PER_SPAN_POLICIES:
        raise ValueError(f"vote_spans decides per span under {' or '.join(sorted(PER_SPAN_POLICIES))}, not {pol.label}")
    n = len(versions)
    yes: Counter[SpanKey] = Counter()
    cover: Counter[int] = Counter()
    for version in versions:
        keys = set(version)
        yes.update(keys)
        covered: set[int] = set()
        for start, end, _ in keys:
            covered.update(range(start, end))
        cover.update(covered)
    vote = SpanVote()
    unanimous = pol.name == "unanimous"
    for key, n_yes in yes.items():
        if (n_yes == n) if unanimous else (2 * n_yes > n):
            vote.kept.append(key)
        elif unanimous or 2 * n_yes == n:
            vote.disputed.append(key)
        else:
            vote.outvoted.append(key)
    inside: set[int] = set()
    for start, end, _ in vote.kept:
        inside.update(range(start, end))
    for position, n_in in cover.items():
        if position in inside:
            continue
        outside_known = n_in == 0 if unanimous else 2 * (n - n_in) > n
        if not outside_known:
            vote.missing.add(position)
    return vote


def ranges(positions: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted positions as maximal (start, end) runs, end exclusive."""
    runs: list[tuple[int, int]] = []
    for position in sorted(positions):
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


def _merge_per_span(manual: list[Annotation], pol: Policy) -> Merged:
    """Per-span merge of disagreeing complete versions, on the offsets as given (the converter votes again)."""
    by_key: dict[SpanKey, Span] = {}
    for ann in manual:
        for span in ann.spans:
            by_key.setdefault(span.key, span)
    vote = vote_spans([[s.key for s in a.spans] for a in manual], pol)
    missing = ranges(vote.missing)
    # a document where nothing is left (no kept span, every token missing) is dropped by the converter, which
    # decides on tokens after alignment (DocConverter); here the votes are only described
    if vote.disputed or vote.missing:
        conflict = _partly_resolved(pol.label, "disputed spans")
    else:
        conflict = _resolved_per_span(pol.label)
    return Merged(
        spans=[by_key[k] for k in vote.kept],
        complete=True,
        conflict=conflict,
        span_votes=[list(a.spans) for a in manual],
        disputed_spans=[by_key[k] for k in vote.disputed],
        outvoted_spans=[by_key[k] for k in vote.outvoted],
        missing=missing,
    )


def _merge_per_label(manual: list[Annotation], pol: Policy, merged: Merged, conflicts: list[str]) -> None:
    """Multi-label categories of disagreeing complete versions, one label at a time (absent = 0.0)."""
    labels: dict[str, None] = {}
    for ann in manual:
        labels.update(dict.fromkeys(ann.categories))
    n = len(manual)
    unanimous = pol.name == "unanimous"
    tie = DISAGREE_UNANIMOUS if unanimous else TIE_MAJORITY
    for label in labels:
        n_yes = sum(1 for a in manual if a.categories.get(label, 0.0) >= 0.5)
        if n_yes in (0, n):
            merged.categories[label] = 1.0 if n_yes else 0.0
        elif unanimous or 2 * n_yes == n:
            merged.dropped_categories[label] = tie
        else:
            merged.categories[label] = 1.0 if 2 * n_yes > n else 0.0
    if merged.dropped_categories:
        conflicts.append(_partly_resolved(pol.label, "disputed labels"))
    else:
        conflicts.append(f"resolved per label by {pol.label}")


def merge_record(
    record: Record, policy: str | Policy = "ground_truth", task: TaskKind | str | None = None
) -> Merged | MergeSkip:
    """Merge a record's annotations into one set of labels, or say why there is nothing to learn.

    ``task`` says what the labels are for: with a span task, ``majority`` and ``unanimous`` decide
    disagreeing manual versions per span; with ``textcat_multilabel`` per label; without one, versions
    are compared whole (see the module docstring).
    """
    pol = policy if isinstance(policy, Policy) else Policy(policy)
    kind = TaskKind(task) if task is not None else None
    if pol.name == "dawid-skene" and kind is not None and kind.is_span_task:
        raise UsageError("--merge dawid-skene decides categories: use it with --task textcat or textcat_multilabel")
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
    if pol.name == "dawid-skene":
        return _merge_dawid_skene(record, pol, manual, superseded)

    merged = Merged(complete=bool(manual))
    conflicts: list[str] = []
    #: spans a manual annotator proposed: binary answers about them do not count (manual versions are complete)
    manual_keys: set[SpanKey] | None = None
    if manual:
        versions = [(a, a) for a in manual]
        version_key = _version_key(kind)
        chosen = _latest(versions)[1]
        if len(manual) > 1 and len({version_key(a) for a in manual}) > 1:
            if kind is not None and kind.is_span_task and pol.name in PER_SPAN_POLICIES:
                merged = per_span = _merge_per_span(manual, pol)
                conflicts.append(per_span.conflict or _resolved_per_span(pol.label))
                manual_keys = {s.key for a in manual for s in a.spans}
            elif kind == TaskKind.TEXTCAT_MULTILABEL and pol.name in PER_SPAN_POLICIES:
                _merge_per_label(manual, pol, merged, conflicts)
                merged.spans = list(chosen.spans)
            else:
                resolution = pol.resolve(versions, key=version_key)
                conflicts.append(resolution.how)
                if resolution.value is None:
                    return MergeSkip(
                        resolution.reason or resolution.how, conflict=resolution.how, superseded=superseded
                    )
                chosen = resolution.value
                merged.spans = list(chosen.spans)
                merged.categories = dict(chosen.categories)
        else:
            merged.spans = list(chosen.spans)
            merged.categories = dict(chosen.categories)
        merged.annotators = sorted({a.annotator for a in manual})

    if binary:
        superseded += _merge_binary(record.annotations, merged, pol, conflicts, manual_keys)
        merged.annotators = sorted(set(merged.annotators) | {a.annotator for a in binary})
    merged.superseded = superseded
    if conflicts:
        merged.conflict = Counter(conflicts).most_common(1)[0][0]
    return merged


def _merge_binary(
    annotations: list[Annotation],
    merged: Merged,
    pol: Policy,
    conflicts: list[str],
    manual_keys: set[SpanKey] | None = None,
) -> int:
    """Decide each binary question; returns how many answers were superseded by a later one.

    ``manual_keys``: the spans manual versions answered (default: the merged manual spans).
    """
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

    if manual_keys is None:
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


# -- category ballots and dawid-skene --------------------------------------------------------------


def voter_name(annotation: Annotation) -> str:
    """Who a vote belongs to: the annotator, with a reviewer's ground-truth decision a voter of its own."""
    return f"{annotation.annotator} (ground truth)" if annotation.ground_truth else annotation.annotator


@dataclass
class CategoryBallots:
    """One record's category votes, one per voter per question, by the answer semantics above."""

    #: voter -> the categories of their latest accepted manual version (complete: an absent label is 0.0)
    manual: dict[str, dict[str, float]] = field(default_factory=dict)
    #: label -> voter -> accepted, for binary answers of voters without a manual version
    binary: dict[str, dict[str, bool]] = field(default_factory=dict)
    superseded: int = 0

    def labels(self) -> list[str]:
        """The labels this record's votes mention, first seen first."""
        seen: dict[str, None] = {}
        for categories in self.manual.values():
            seen.update(dict.fromkeys(categories))
        seen.update(dict.fromkeys(self.binary))
        return list(seen)

    def exclusive(self) -> dict[str, str]:
        """voter -> the one label they chose (exclusive textcat); voters who chose none or several do not vote."""
        votes: dict[str, str] = {}
        for voter, categories in self.manual.items():
            positive = [label for label, value in categories.items() if value >= 0.5]
            if len(positive) == 1:
                votes[voter] = positive[0]
        accepted: dict[str, list[str]] = {}
        for label, answers in self.binary.items():
            for voter, yes in answers.items():
                if yes and voter not in self.manual:
                    accepted.setdefault(voter, []).append(label)
        votes.update({voter: labels[0] for voter, labels in accepted.items() if len(labels) == 1})
        return votes

    def label_votes(self, label: str) -> dict[str, bool]:
        """voter -> does ``label`` hold (multi-label): every manual voter, and binary answers to that label."""
        votes = {voter: categories.get(label, 0.0) >= 0.5 for voter, categories in self.manual.items()}
        for voter, yes in self.binary.get(label, {}).items():
            votes.setdefault(voter, yes)
        return votes


def category_ballots(record: Record) -> CategoryBallots:
    """The record's category votes as every policy counts them (latest answer per voter and question)."""
    manual_votes, superseded = latest_votes((_DOCUMENT, a, a) for a in record.annotations if a.mode != "binary")
    return _ballots([a for _, a, _ in manual_votes if a.answer == Answer.ACCEPT], record.annotations, superseded)


def _ballots(manual: list[Annotation], annotations: list[Annotation], superseded: int) -> CategoryBallots:
    ballots = CategoryBallots(superseded=superseded)
    for ann in manual:
        ballots.manual[voter_name(ann)] = dict(ann.categories)
    items = [
        (label, ann, ann.answer)
        for ann in annotations
        if ann.mode == "binary"
        for label in ann.categories
    ]
    votes, binary_superseded = latest_votes(items)
    ballots.superseded += binary_superseded
    for label, ann, answer in votes:
        if answer in (Answer.ACCEPT, Answer.REJECT):
            value = ann.categories.get(label, 0.0) > 0.0
            ballots.binary.setdefault(label, {})[voter_name(ann)] = answer == Answer.ACCEPT and value
    return ballots


def _merge_dawid_skene(record: Record, pol: Policy, manual: list[Annotation], superseded: int) -> Merged | MergeSkip:
    model = pol.model
    if model is None:
        raise UsageError(
            "--merge dawid-skene needs annotator reliabilities fitted over the whole pull first: export() fits "
            "them in its survey pass (in Python: annobridge.dawid_skene.fit_category_model(records, task))"
        )
    ballots = _ballots(manual, record.annotations, superseded)
    merged = Merged(complete=bool(manual), superseded=ballots.superseded)
    merged.annotators = sorted({a.annotator for a in record.annotations if a.answer in (Answer.ACCEPT, Answer.REJECT)})
    if manual:
        merged.spans = list(_latest([(a, a) for a in manual])[1].spans)
    conflicts: list[str] = []
    if model.exclusive:
        choices = ballots.exclusive()
        if len(set(choices.values())) == 1:
            merged.categories = {next(iter(choices.values())): 1.0}
        elif choices:
            chosen = model.decide(choices)
            if chosen is None:
                conflicts.append(f"dropped: {TIE_DAWID_SKENE}")
                merged.dropped_categories = dict.fromkeys(set(choices.values()), TIE_DAWID_SKENE)
            else:
                conflicts.append("resolved by dawid-skene")
                merged.categories = {chosen: 1.0}
        for label, answers in ballots.binary.items():  # binary rejects: negative information
            if label not in merged.categories and answers and not any(answers.values()):
                merged.categories[label] = 0.0
    else:
        for label in ballots.labels():
            votes = ballots.label_votes(label)
            if not votes:
                continue
            if len(set(votes.values())) == 1:
                merged.categories[label] = 1.0 if next(iter(votes.values())) else 0.0
                continue
            decided = model.decide_label(label, votes)
            if decided is None:
                conflicts.append(f"dropped: {TIE_DAWID_SKENE}")
                merged.dropped_categories[label] = TIE_DAWID_SKENE
            else:
                conflicts.append("resolved by dawid-skene")
                merged.categories[label] = 1.0 if decided else 0.0
    if conflicts:
        merged.conflict = Counter(conflicts).most_common(1)[0][0]
    return merged
