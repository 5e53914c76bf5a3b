"""Incremental pulls, exactly: which annotations a previous pull saw, so the next one yields only what changed.

A tool's timestamps alone make an incremental pull that misses deletions and changes within the clock's
resolution. :class:`AnnotationLedger` keeps, per record, each annotation's id and version (its
``updated_at``); :class:`PullCursor` carries it from one pull to the next as a JSON-serialisable dict
whose ``str`` is just the watermark, short enough for a command line (``annobridge pull --since``):
a timestamp passed back that way gives a timestamp-based pull, the whole dict an exact one.

An adapter's pull, in outline::

    ledger = AnnotationLedger.resume(since, owner=project_id)
    listing = ((native_key, self._record(item)) for item in self._read(ledger.since))  # the tool's own listing
    yield from ledger.changes(listing, answers)                # only what is new, changed or deleted
    self.cursor = ledger.cursor(watermark, owner=project_id)

(:meth:`AnnotationLedger.changes` is :meth:`~AnnotationLedger.update` per record plus the rules around it.)

A tool that keeps no usable timestamps (doccano: labels are listed per example only, and an example's
``updated_at`` does not move when its labels do) can still pull incrementally by comparing what it sees
with what the previous pull saw: :class:`DigestCursor` keeps a short digest per item (an example, an
(example, annotator) pair) and a little state of the adapter's own (the tool's cheap counters, to tell
"nothing changed" without reading anything), as one opaque, versioned string::

    cursor = DigestCursor.resume(since, kind="doccano", owner=project_id)
    for item in self._read():
        if cursor.changed(item_key, what_the_item_says):       # records the digest either way
            yield record                                       # new or changed since the cursor
    self.cursor = cursor.encode()
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .adapter import as_utc, filter_answers, since_datetime
from .atomic import atomic_write_bytes
from .errors import UsageError
from .model import Annotation, Answer, Record

__all__ = ["INLINE_CURSOR_MAX", "AnnotationLedger", "DigestCursor", "PullCursor", "digest", "utc_iso"]


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
    #: the newest ``timestamp`` (``updated_at``, else ``created_at``) of the annotations :meth:`update` has seen
    #: (from ``since``): a watermark for tools whose server clock cannot be read
    newest: datetime | None = None
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
        if isinstance(since, str) and not since.lstrip().startswith("{"):
            since = since_datetime(since)  # a bare date, checked: a bad one is a UsageError saying what is accepted
        if isinstance(since, str):
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
        ledger.newest = ledger.since
        return ledger

    def update(self, key: str, record: Record) -> list[str]:
        """Keep in ``record`` only the annotations new or changed since the cursor (all, on a full pull), and
        record what it holds now. Returns the ids of annotations the cursor knew and the record no longer has."""
        now = {self.annotation_id(a): _stamp(a) for a in record.annotations}
        for annotation in record.annotations:
            stamp = as_utc(annotation.timestamp)
            if stamp is not None and (self.newest is None or stamp > self.newest):
                self.newest = stamp
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

    def changes(
        self,
        listing: Iterable[tuple[str, Record | None]],
        answers: Collection[Answer] | None = None,
        *,
        deleted_id: Callable[[str], Any] = str,
    ) -> Iterator[Record]:
        """The records of a pull from the tool's ``(record key, record)`` listing (None: an item that gave no
        record), each through :meth:`update`: annotations deleted since the cursor are named, as ``deleted_id``
        makes them, in ``record.native_ids["deleted_annotation_ids"]``; an incremental pull leaves out records
        with nothing new, changed or deleted; then only the ``answers`` asked for are kept."""
        for key, record in listing:
            if record is None:
                continue
            gone = self.update(key, record)
            if gone:
                record.native_ids["deleted_annotation_ids"] = [deleted_id(x) for x in gone]
            if self.incremental and not record.annotations and not gone:
                continue
            yield filter_answers(record, answers)

    def _after_since(self, annotation: Annotation) -> bool:
        stamp = as_utc(annotation.timestamp)
        return self.since is None or (stamp is not None and stamp > self.since)

    def cursor(self, watermark: datetime | str | None, *, owner: Any = None) -> PullCursor:
        """The cursor for the next pull: complete when this pull was full or started complete."""
        mark = utc_iso(watermark) if isinstance(watermark, datetime) else watermark
        return PullCursor(watermark=mark, owner=owner, complete=self.complete, seen=self.seen)


# -- digest cursors -------------------------------------------------------------------------------------

#: cursors longer than this are kept in a cache file and referred to by hash (the CLI prints cursors)
INLINE_CURSOR_MAX = 2000


def digest(value: Any, size: int = 12) -> str:
    """A short, stable hex digest of a JSON-serialisable value (keys sorted): equal values, equal digests."""
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:size]


def cursor_cache_dir(kind: str) -> Path:
    """Where the long cursors of ``kind`` are kept: ``$XDG_CACHE_HOME/annobridge/<kind>-cursors``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "annobridge" / f"{kind}-cursors"


class DigestCursor:
    """What a pull saw, as a digest per item, carried to the next pull in one opaque string.

    ``kind`` names the adapter inside the string (``doccano-cursor:v1:...``) and ``owner`` (a project or
    dataset id) is checked when a pull resumes from it. ``previous`` holds the digests of the cursor a pull
    started from (None on a full pull), ``digests`` those this pull records, ``state`` a small JSON dict of
    the adapter's own (resumed with the cursor; replace or update it before :meth:`encode`). A string longer
    than :data:`INLINE_CURSOR_MAX` characters is written to :func:`cursor_cache_dir` (compressed, atomically)
    and the cursor names that file: such a cursor works only on the machine that made it, and says so.
    """

    version = "v1"

    def __init__(self, kind: str, owner: Any, *, previous: Mapping[str, str] | None = None,
                 state: Mapping[str, Any] | None = None, owner_name: str = "project") -> None:
        self.kind, self.owner, self.owner_name = kind, owner, owner_name
        self.previous: dict[str, str] | None = dict(previous) if previous is not None else None
        self.digests: dict[str, str] = {}
        self.state: dict[str, Any] = dict(state or {})

    @property
    def prefix(self) -> str:
        return f"{self.kind}-cursor:{self.version}:"

    @classmethod
    def is_cursor(cls, value: Any, kind: str) -> bool:
        """Whether ``value`` (a pull's ``since``) is a cursor of ``kind``."""
        return isinstance(value, str) and value.startswith(f"{kind}-cursor:{cls.version}:")

    @property
    def incremental(self) -> bool:
        """True when the pull started from a cursor: only what changed since is new."""
        return self.previous is not None

    @classmethod
    def resume(cls, since: str | None, *, kind: str, owner: Any, owner_name: str = "project") -> DigestCursor:
        """The cursor a pull starts from: ``since`` None gives a full pull's (no previous digests)."""
        cursor = cls(kind, owner, owner_name=owner_name)
        if since is None:
            return cursor
        if not cls.is_cursor(since, kind):
            raise UsageError(f"Not a {kind} cursor: {str(since)[:40]!r}")
        body = since[len(cursor.prefix):]
        try:
            if body.startswith("file:"):
                path = cursor_cache_dir(kind) / f"{body[5:]}.json.z"
                if not path.exists():
                    raise UsageError(f"The state of this {kind} cursor is not on this machine ({path}); do a full pull")
                raw = zlib.decompress(path.read_bytes())
            else:
                raw = zlib.decompress(base64.urlsafe_b64decode(body))
            data = json.loads(raw)
        except (ValueError, zlib.error) as exc:
            raise UsageError(f"Unreadable {kind} cursor ({exc})") from None
        theirs = data.pop("owner", data.pop("project", None))  # "project": the key before the kit had this
        if theirs != owner:
            raise UsageError(f"This cursor belongs to {kind} {owner_name} {theirs}, not {owner}")
        cursor.previous = {str(k): str(v) for k, v in (data.pop("d", None) or {}).items()}
        cursor.state = data
        return cursor

    def changed(self, key: str, value: Any) -> bool:
        """Record ``value``'s digest for ``key``; True when the cursor had another one for it, or none."""
        new = digest(value)
        self.digests[key] = new
        return self.previous is None or self.previous.get(key) != new

    def forget(self, key: str) -> None:
        """Drop ``key`` from what this pull records (it holds nothing worth comparing any more)."""
        self.digests.pop(key, None)

    def carry_over(self) -> None:
        """Start this pull's digests from the previous ones (a pull that reads only some items)."""
        self.digests = dict(self.previous or {})

    def encode(self) -> str:
        """The cursor string for the next pull: this pull's digests and :attr:`state`."""
        state = {**self.state, "owner": self.owner, "d": self.digests}
        data = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        inline = self.prefix + base64.urlsafe_b64encode(zlib.compress(data, 9)).decode()
        if len(inline) <= INLINE_CURSOR_MAX:
            return inline
        # One digest per item: too long to print, so it goes to a cache file named by its content.
        name = hashlib.sha256(data).hexdigest()[:24]
        folder = cursor_cache_dir(self.kind)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"{name}.json.z", zlib.compress(data, 6))
        return f"{self.prefix}file:{name}"
