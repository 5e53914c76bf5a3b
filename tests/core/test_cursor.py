"""The kit's AnnotationLedger / PullCursor: incremental pulls yield exactly what changed, deletions named."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from annobridge.cursor import AnnotationLedger, PullCursor
from annobridge.errors import UsageError
from annobridge.model import Annotation, Document, Record

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def record(doc: str, *annotations: tuple[str, datetime]) -> Record:
    return Record(Document(doc, "text"), [Annotation(f"user-{aid}", updated_at=at, native_ids={"annotation_id": aid})
                                          for aid, at in annotations])


def pull(ledger: AnnotationLedger, records: list[Record]) -> list[tuple[str, list[str], list[str]]]:
    out = []
    for rec in records:
        gone = ledger.update(rec.id, rec)
        if ledger.incremental and not rec.annotations and not gone:
            continue
        out.append((rec.id, [str(a.native_ids["annotation_id"]) for a in rec.annotations], gone))
    return out


def test_exact_changes_deletions_and_same_second_edits() -> None:
    full = AnnotationLedger.resume(None, owner=7)
    assert pull(full, [record("a", ("1", T0)), record("b", ("2", T0))]) == [("a", ["1"], []), ("b", ["2"], [])]
    cursor = json.loads(json.dumps(full.cursor(T0, owner=7)))  # survives JSON, as the AL loop stores it
    assert cursor["complete"] is True
    # a changed annotation within the same second as the watermark, a new one, a deleted one
    later = AnnotationLedger.resume(cursor, owner=7)
    changed = pull(later, [record("a", ("1", T0 + timedelta(microseconds=5))), record("b"), record("c", ("3", T0))])
    assert changed == [("a", ["1"], []), ("b", [], ["2"]), ("c", ["3"], [])]
    again = AnnotationLedger.resume(later.cursor(T0, owner=7), owner=7)
    assert pull(again, [record("a", ("1", T0 + timedelta(microseconds=5))), record("b"), record("c", ("3", T0))]) == []


def test_a_timestamp_alone_falls_back_to_timestamps() -> None:
    ledger = AnnotationLedger.resume(T0.isoformat(), owner=7)
    assert ledger.incremental and not ledger.complete
    assert pull(ledger, [record("a", ("1", T0 - timedelta(seconds=1))), record("b", ("2", T0 + timedelta(seconds=1)))]
                ) == [("b", ["2"], [])]


def test_cursor_prints_its_watermark_and_refuses_another_owner() -> None:
    cursor = AnnotationLedger().cursor(T0, owner=7)
    assert isinstance(cursor, PullCursor) and str(cursor) == "2026-12-01T12:00:00.000000Z"
    with pytest.raises(UsageError, match="belongs to 7, not 8"):
        AnnotationLedger.resume(cursor, owner=8)
    with pytest.raises(UsageError, match="neither a JSON cursor nor a date"):
        AnnotationLedger.resume("{not json", owner=7)
