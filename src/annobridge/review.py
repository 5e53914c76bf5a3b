"""Adjudication: send documents to a reviewer with every annotator's version, read the decisions back.

The round trip, with any two tools::

    annobridge review SOURCE DEST --task ner --only conflicts     # 1. out, one version per annotator
    # 2. an adjudicator decides in DEST's own interface
    annobridge export SOURCE --adjudicated DEST --merge ground_truth --task ner --out corpus   # 3. in

Step 1 (:func:`review`) reads SOURCE, keeps each annotator's latest manual answer per document (the same
vote :mod:`annobridge.merge` counts), picks the documents to review (``conflicts``: annotators disagree;
``all``; or a seeded ``sample``), and hands them to DEST's :meth:`Adapter.push_review`: Label Studio gets one
prediction per annotator (``model_version`` = the annotator), Prodigy the input its ``review`` recipe
takes, other tools what their interface can show (see their docs). Every source record is accounted for in
the :class:`ReviewReport`: sent, or not sent with the reason.

Step 3 (:class:`Adjudicated`) wraps SOURCE: each record gains DEST's decision for it as a ground-truth
annotation, so ``--merge ground_truth`` takes the reviewer's version where there is one and the policy's
fallback elsewhere. A decision is what the reviewer wrote in DEST: its ground-truth annotations when the
tool marks them (Prodigy's review output, a starred Label Studio annotation), else every human annotation
there (a review project holds only the reviewer's work; the annotators' versions are predictions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .adapter import Adapter, ImportResult, labels_for, redact
from .errors import UsageError
from .merge import latest_votes
from .model import Annotation, Answer, Document, LabelSchema, Prediction, Record, TaskKind

__all__ = [
    "REVIEW_META_KEY",
    "Adjudicated",
    "ReviewItem",
    "ReviewReport",
    "annotator_versions",
    "review",
    "version_summary",
]

#: document meta key a review puts on every document it sends: who said what, readable in any tool that shows meta
REVIEW_META_KEY = "annobridge_review"

Only = Literal["conflicts", "all"]

#: reasons a source record is not sent for review
AGREED = "annotators agree"
ONE_ANNOTATOR = "fewer than two annotators"
NO_VERSIONS = "no accepted manual annotation"
NOT_SAMPLED = "not in the sample"


@dataclass
class ReviewItem:
    """One document for the adjudicator: every annotator's version as a prediction named after them."""

    document: Document
    #: annotator -> their version (``model_version`` is the annotator's name), in annotator order
    versions: dict[str, Prediction]
    #: True when the versions disagree
    conflict: bool


@dataclass
class ReviewReport:
    """Every source record: sent for review, or not, with the reason."""

    records: int = 0
    #: documents whose annotators disagree (sent or not)
    conflicts: int = 0
    sent: ImportResult = field(default_factory=ImportResult)
    #: reason -> how many records were not sent for it
    not_sent: dict[str, int] = field(default_factory=dict)
    #: records the source could not read, as (where, reason)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: where the adjudicator's decisions will be (for ``export --adjudicated``), once documents were sent
    decisions_at: str | None = None
    #: what the reviewer runs to start, when the tool needs a command (Prodigy's review recipe)
    reviewer_command: str | None = None

    @property
    def balanced(self) -> bool:
        return self.records == self.sent.total + sum(self.not_sent.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "conflicts": self.conflicts,
            "sent": {"created": self.sent.created, "existing": self.sent.existing, "failed": len(self.sent.failed)},
            "failed": [{"id": doc_id, "reason": why} for doc_id, why in self.sent.failed],
            "not_sent": dict(self.not_sent),
            "unreadable": [{"where": where, "reason": why} for where, why in self.unreadable],
            "balanced": self.balanced,
            "decisions_at": self.decisions_at and redact(self.decisions_at),
            "reviewer_command": self.reviewer_command and redact(self.reviewer_command),
        }


def annotator_versions(record: Record, task: TaskKind) -> dict[str, Prediction]:
    """Each annotator's latest accepted manual answer, as a Prediction with ``model_version`` = annotator.

    Ground-truth annotations (an earlier review's decision) are not an annotator's version. Binary answers
    (one question each) are not whole versions of the document and are left out.
    """
    manual = [a for a in record.annotations if a.mode != "binary" and not a.ground_truth]
    votes, _ = latest_votes(("document", a, a) for a in manual)
    versions: dict[str, Prediction] = {}
    for _, ann, _ in sorted(votes, key=lambda v: v[1].annotator):
        if ann.answer != Answer.ACCEPT:
            continue
        spans = [replace(s, score=None) for s in ann.spans] if task.is_span_task else []
        categories = {} if task.is_span_task else dict(ann.categories)
        versions[ann.annotator] = Prediction(ann.annotator, spans=spans, categories=categories)
    return versions


def _version_key(prediction: Prediction) -> tuple[frozenset[tuple[int, int, str]], tuple[tuple[str, float], ...]]:
    return frozenset(s.key for s in prediction.spans), tuple(sorted(prediction.categories.items()))


def version_summary(document: Document, prediction: Prediction) -> str:
    """One line a reviewer can read in any tool: ``ORG "Acme"; PER "Bob"`` or ``positive, urgent``."""
    if prediction.spans:
        return "; ".join(
            f"{s.label} {document.text[s.start : s.end]!r}" for s in sorted(prediction.spans, key=lambda s: s.start)
        )
    chosen = [label for label, value in sorted(prediction.categories.items()) if value >= 0.5]
    return ", ".join(chosen) or "(nothing)"


def _in_sample(doc_id: str, sample: int | None, population: int, seed: int) -> bool:
    return sample is None or _sample_rank(doc_id, seed) < sample / max(population, 1)


def _sample_rank(doc_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def review_items(
    records: Iterable[Record],
    task: TaskKind,
    report: ReviewReport,
    *,
    only: Only = "conflicts",
) -> Iterator[ReviewItem]:
    """The records to review as ReviewItems; the rest are counted in ``report.not_sent``."""
    for record in records:
        report.records += 1
        versions = annotator_versions(record, task)
        conflict = len(versions) > 1 and len({_version_key(p) for p in versions.values()}) > 1
        report.conflicts += conflict
        reason = None
        if not versions:
            reason = NO_VERSIONS
        elif only == "conflicts" and len(versions) < 2:
            reason = ONE_ANNOTATOR
        elif only == "conflicts" and not conflict:
            reason = AGREED
        if reason is not None:
            report.not_sent[reason] = report.not_sent.get(reason, 0) + 1
            continue
        doc = record.document
        meta = dict(doc.meta)
        meta[REVIEW_META_KEY] = {name: version_summary(doc, pred) for name, pred in versions.items()}
        yield ReviewItem(Document(doc.id, doc.text, meta), versions, conflict)


def review(
    source: Adapter,
    dest: Adapter,
    *,
    task: TaskKind | str,
    labels: Collection[str] | None = None,
    only: Only = "conflicts",
    sample: int | None = None,
    seed: int = 0,
) -> ReviewReport:
    """Send SOURCE's documents to DEST for adjudication (see the module docstring); returns what happened.

    ``only="conflicts"`` sends documents whose annotators' latest versions differ; ``"all"`` every document
    with at least one version. ``sample`` keeps about that many of those, chosen by a seeded hash of the
    document id (the same documents on every run, so a re-run adds nothing twice). Idempotent: DEST's
    adapter counts documents and versions already there as ``existing``.
    """
    task = TaskKind(task)
    if only not in ("conflicts", "all"):
        raise UsageError(f"--only must be conflicts or all, not {only!r}")
    if sample is not None and sample < 1:
        raise UsageError("--sample must be at least 1")
    source.require("pull", to="read annotations for review")
    dest.require("import_documents", "push_predictions", to="send documents for review")
    report = ReviewReport()
    items = list(review_items(source.pull(), task, report, only=only))
    report.unreadable = list(source.skipped)
    if sample is not None and len(items) > sample:
        ranked = sorted(items, key=lambda item: _sample_rank(item.document.id, seed))
        report.not_sent[NOT_SAMPLED] = len(items) - sample
        items = ranked[:sample]
    # the versions are what the reviewer will see: their labels, when the source's project does not say
    sent = [Record(item.document, predictions=list(item.versions.values())) for item in items]
    schema = LabelSchema(task, sorted(labels) if labels else labels_for(source, sent, task))
    if items:
        report.sent = dest.push_review(items, schema=schema)
        report.decisions_at, report.reviewer_command = dest.review_decisions(schema)
    return report


class Adjudicated(Adapter):
    """SOURCE's records, each with DEST's adjudication added as a ground-truth annotation.

    Export it with ``--merge ground_truth``. Counts and skips are SOURCE's (the same lists, so an export
    report covers both); a decision for a document SOURCE does not have is reported as skipped.
    """

    scheme = "adjudicated"
    description = "a source with an adjudication tool's decisions as ground truth"

    def __init__(self, source: Adapter, decisions: Adapter) -> None:
        super().__init__(source.url, source.config)
        self.source, self.decisions_from = source, decisions
        self.skipped = source.skipped
        self.span_notes = source.span_notes
        self._decisions: dict[str, list[Annotation]] | None = None

    def decisions(self) -> dict[str, list[Annotation]]:
        """Document id -> the adjudicator's annotations (read from DEST once)."""
        if self._decisions is None:
            self.decisions_from.require("pull", to="read adjudications")
            found: dict[str, list[Annotation]] = {}
            where = redact(str(self.decisions_from.url))
            for record in self.decisions_from.pull():
                truth = [a for a in record.annotations if a.ground_truth]
                chosen = truth or list(record.annotations)
                if chosen:
                    found[record.id] = [
                        replace(a, ground_truth=True, meta={**a.meta, "adjudicated_in": where}) for a in chosen
                    ]
            for place, why in self.decisions_from.skipped:
                self.skip(f"adjudication {place}", why)
            self._decisions = found
        return self._decisions

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        decisions = self.decisions()
        seen: set[str] = set()
        for record in self.source.pull(answers=answers, since=since):
            extra = decisions.get(record.id)
            if extra:
                seen.add(record.id)
                record = replace(record, annotations=[*record.annotations, *extra])
            yield record
        self.cursor = self.source.cursor
        if since is None:
            for doc_id in sorted(set(decisions) - seen):
                self.skip(f"adjudication {doc_id}", "adjudicated document is not in the source")

    def require(self, *flags: str, to: str) -> None:
        self.source.require(*flags, to=to)

    def count(self) -> int | None:
        return self.source.count()

    def source_schema(self) -> LabelSchema | None:
        return self.source.source_schema()

    def server_version(self) -> str | None:
        return self.source.server_version()

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.decisions_from.close()
