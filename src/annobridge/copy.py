"""Move a project between tools: documents, predictions and every annotator's annotations.

``copy(source, dest, task="ner")`` pulls SOURCE and writes into DEST, in three parts, each counted:

* documents (with their meta), imported where missing;
* predictions, with their scores and model versions;
* annotations, each written as its annotator (``--annotators map.csv`` renames source annotators to
  destination users), with its answer and ground-truth flag, where DEST can write annotations
  (:attr:`Capabilities.write_annotations`); refused with the reason where it cannot.

Idempotent: what DEST already holds counts as "already there", so a re-run copies nothing twice. With the
cursor a copy leaves (``since``), a re-run reads only what changed in SOURCE since then.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .adapter import Adapter, ImportResult, labels_for
from .errors import UsageError
from .model import LabelSchema, Record, TaskKind

__all__ = ["CopyReport", "copy_project", "read_annotator_map"]


@dataclass
class CopyReport:
    """What a copy did: per part, copied / already there / refused (with the reasons)."""

    records: int = 0
    documents: ImportResult = field(default_factory=ImportResult)
    predictions: ImportResult = field(default_factory=ImportResult)
    annotations: ImportResult = field(default_factory=ImportResult)
    #: annotations in the source, and of those how many were renamed by the annotator map
    annotations_read: int = 0
    renamed: int = 0
    #: records the source could not read, as (where, reason)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: pass as ``since`` next time to copy only what changed
    cursor: Any = None

    @property
    def refused(self) -> int:
        return len(self.documents.failed) + len(self.predictions.failed) + len(self.annotations.failed)

    @property
    def balanced(self) -> bool:
        """Every annotation read is copied, already there, or refused."""
        return self.annotations_read == self.annotations.total

    def to_dict(self) -> dict[str, Any]:
        def part(result: ImportResult) -> dict[str, Any]:
            reasons = Counter(why for _, why in result.failed)
            return {"copied": result.created, "already_there": result.existing, "refused": len(result.failed),
                    "refused_by_reason": dict(reasons.most_common())}

        return {
            "records": self.records,
            "documents": part(self.documents),
            "predictions": part(self.predictions),
            "annotations": part(self.annotations),
            "annotations_read": self.annotations_read,
            "renamed": self.renamed,
            "unreadable": [{"where": w, "reason": r} for w, r in self.unreadable],
            "balanced": self.balanced,
            "cursor": None if self.cursor is None else str(self.cursor),
        }


def read_annotator_map(path: str | Path) -> dict[str, str]:
    """``source name,destination user`` per line (a header line ``source,destination`` is allowed)."""
    mapping: dict[str, str] = {}
    with Path(path).open(encoding="utf-8-sig", newline="") as fh:
        for n, row in enumerate(csv.reader(fh), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) != 2 or not all(cells):
                raise UsageError(f"{path}, line {n}: expected 'source name,destination user', got {row!r}")
            if n == 1 and [c.lower() for c in cells] == ["source", "destination"]:
                continue
            if cells[0] in mapping and mapping[cells[0]] != cells[1]:
                raise UsageError(f"{path}, line {n}: {cells[0]!r} is mapped twice")
            mapping[cells[0]] = cells[1]
    return mapping


def copy_project(
    source: Adapter,
    dest: Adapter,
    *,
    task: TaskKind | str,
    labels: Collection[str] | None = None,
    annotators: Mapping[str, str] | None = None,
    since: Any = None,
) -> CopyReport:
    """Copy SOURCE's documents, predictions and annotations into DEST (see the module docstring)."""
    task = TaskKind(task)
    source.require("pull", to="read the project to copy")
    dest.require("import_documents", to="copy documents")
    rename = dict(annotators or {})
    report = CopyReport()
    records: list[Record] = list(source.pull(since=since))
    report.records = len(records)
    report.unreadable = list(source.skipped)
    report.cursor = source.cursor
    schema = LabelSchema(task, sorted(labels) if labels else labels_for(source, records, task))

    # annotations first: a tool can create a missing document with its annotations in one bulk write
    writes = [(record.document, ann) for record in records for ann in record.annotations]
    report.annotations_read = len(writes)
    renamed = [(doc, replace(ann, annotator=rename.get(ann.annotator, ann.annotator))) for doc, ann in writes]
    report.renamed = sum(1 for (_, a), (_, b) in zip(writes, renamed, strict=True) if a.annotator != b.annotator)
    if renamed and dest.capabilities.write_annotations:
        report.annotations = dest.write_annotations(renamed, schema=schema)
    elif renamed:
        why = f"the {dest.scheme} adapter cannot write annotations as their annotators"
        report.annotations.failed = [(doc.id, why) for doc, _ in renamed]
    documents = dest.import_documents([r.document for r in records], schema=schema)
    # the documents the annotations brought in are there now: new to DEST all the same
    moved = min(report.annotations.documents_created, documents.existing)
    documents.created += moved
    documents.existing -= moved
    report.documents = documents
    refused_docs = {doc_id for doc_id, _ in documents.failed}
    predictions = [(r.document, p) for r in records for p in r.predictions]
    if predictions and not dest.capabilities.push_predictions:
        why = f"the {dest.scheme} adapter cannot take predictions"
        report.predictions.failed = [(d.id, why) for d, _ in predictions]
    elif predictions:
        report.predictions.failed = [(d.id, "document refused") for d, _ in predictions if d.id in refused_docs]
        report.predictions.merge(dest.push_predictions((d, p) for d, p in predictions if d.id not in refused_docs))
    return report
