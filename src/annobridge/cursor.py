"""Incremental pulls, exactly: which annotations a previous pull saw, so the next one yields only what changed.

A tool's timestamps alone make an incremental pull that misses deletions and changes within the clock's
resolution. :class:`AnnotationLedger` keeps, per record, each annotation's id and version (its
``updated_at``); :class:`PullCursor` carries it from one pull to the next as a JSON-serialisable dict
whose ``str`` is just the watermark, short enough for a command line (``annobridge pull --since``):
a timestamp passed back that way gives a timestamp-based pull, the whole dict an exact one.

An adapter's pull, in outline::

    ledger = AnnotationLedger.resume(since, owner=project_id)
    for record in self._read(ledger.since):                    # the tool's own listing
        gone = ledger.update(native_key, record)
        if ledger.incremental and not record.annotations and not gone:
            continue                                           # nothing new here
        yield record
    self.cursor = ledger.cursor(watermark, owner=project_id)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .adapter import as_utc
from .errors import UsageError
from .model import Annotation, Record

__all__ = ["AnnotationLedger", "PullCursor", "utc_iso"]


class PullCursor(dict):  # type: ignore[type-arg]
    """The state an incremental pull starts from: ``watermark``, ``owner`` (project / dataset), ``complete``,
    ``seen``. Its ``str`` is just the watermark: passing that back as ``since`` gives a timestamp-based pull
    (exact tracking and named deletions need the whole dict, or its JSON)."""

    def __str__(self) -> str:
        return str(self.get("watermark", ""))

    def isoformat(self) -> str:
        return str(self)


def utc_iso(value: datetime) -> str:
    """UTC with microseconds and ``Z``: the form cursors keep (and Label Studio's filters take)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp(annotation: Annotation) -> str:
    return utc_iso(annotation.updated_at) if annotation.updated_at is not None else ""


@dataclass
class AnnotationLedger:
    """Per record key: annotation id -> version, as of the cursor a pull started from."""

    seen: dict[str, dict[str, str]] = field(default_factory=dict)
    #: from a full pull (or an exact pull on one): a record missing from ``seen`` had no annotations at all
    complete: bool = True
    #: True when this pull started from a cursor or a timestamp (only changes are yielded)
    incremental: bool = False
    since: datetime | None = None
    #: the id of an annotation within its record
    annotation_id: Callable[[Annotation], str] = field(
        default=lambda a: str(a.native_ids.get("annotation_id")), repr=False
    )

    @classmethod
    def resume(
        cls, since: Any, *, owner: Any = None, annotation_id: Callable[[Annotation], str] | None = None
    ) -> AnnotationLedger:
        """The ledger a pull with ``since`` starts from: None (a full pull), a :class:`PullCursor` or its JSON,
        or a timestamp (a datetime or ISO string: timestamps only, as after ``annobridge pull --since``)."""
        ledger = cls() if annotation_id is None else cls(annotation_id=annotation_id)
        if since is None:
            return ledger
        ledger.incremental = True
        if isinstance(since, str) and since.lstrip().startswith("{"):
            try:
                since = json.loads(since)
            except json.JSONDecodeError:
                raise UsageError("since: neither a JSON cursor nor a date") from None
        if isinstance(since, Mapping) and "watermark" in since:
            theirs = since.get("owner", since.get("project"))  # "project": cursors written before the kit had this
            if theirs not in (None, owner):
                raise UsageError(f"This cursor belongs to {theirs}, not {owner}.")
            ledger.seen = {str(k): dict(v) for k, v in (since.get("seen") or {}).items()}
            ledger.complete = bool(since.get("complete"))
            ledger.since = as_utc(since["watermark"])
        else:
            ledger.complete = False
            ledger.since = as_utc(since)
            if ledger.since is None:
                raise UsageError(f"since: not a cursor nor a date: {since!r}")
        return ledger

    def update(self, key: str, record: Record) -> list[str]:
        """Keep in ``record`` only the annotations new or changed since the cursor (all, on a full pull), and
        record what it holds now. Returns the ids of annotations the cursor knew and the record no longer has."""
        now = {self.annotation_id(a): _stamp(a) for a in record.annotations}
        gone: list[str] = []
        if self.incremental:
            before = self.seen.get(key)
            if before is not None or self.complete:
                known = before or {}
                record.annotations = [a for a in record.annotations if known.get(self.annotation_id(a)) != now[
                    self.annotation_id(a)]]
                gone = sorted(x for x in known if x not in now)
            else:  # no record of this one: fall back to timestamps
                record.annotations = [a for a in record.annotations if self._after_since(a)]
        if now:
            self.seen[key] = now
        else:
            self.seen.pop(key, None)
        return gone

    def _after_since(self, annotation: Annotation) -> bool:
        stamp = as_utc(annotation.timestamp)
        return self.since is None or (stamp is not None and stamp > self.since)

    def cursor(self, watermark: datetime | str | None, *, owner: Any = None) -> PullCursor:
        """The cursor for the next pull: complete when this pull was full or started complete."""
        mark = utc_iso(watermark) if isinstance(watermark, datetime) else watermark
        return PullCursor(watermark=mark, owner=owner, complete=self.complete, seen=self.seen)
