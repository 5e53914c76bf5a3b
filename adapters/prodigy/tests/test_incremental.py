"""Incremental pulls from Prodigy's database: exact with the whole cursor, where timestamps alone are not."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import UrlFactory

from annobridge import open_adapter
from annobridge_prodigy import set_hashes


def _answer(text: str, ts: int | None, who: str = "alice") -> dict[str, object]:
    task: dict[str, object] = {"text": text, "answer": "accept", "_view_id": "ner_manual", "spans": [],
                               "_annotator_id": who, "_session_id": who}
    if ts is not None:
        task["_timestamp"] = ts
    return task


def test_whole_cursor_misses_nothing_timestamps_would(db_url: UrlFactory, tmp_path: Path) -> None:
    url = db_url("incr")
    with open_adapter(url) as db:
        db.add_tasks([_answer("first text", 1_700_000_000)], answer=None)  # type: ignore[attr-defined]
        assert len(list(db.pull())) == 1
        cursor = json.dumps(db.cursor)
        watermark = str(db.cursor)
        # the same second as the last answer, and one saved with no _timestamp at all
        db.add_tasks([_answer("second text", 1_700_000_000), _answer("third text", None)], answer=None)  # type: ignore[attr-defined]
        exact = {r.text for r in db.pull(since=cursor)}
        assert exact == {"second text", "third text"}
        # a timestamp alone (what a printed --since carries) cannot see them: the reason for --cursor-file
        assert {r.text for r in db.pull(since=watermark)} == set()
        # and the next exact pull, from the newest cursor, has nothing new
        cursor = json.dumps(db.cursor)
        assert list(db.pull(since=cursor)) == []
        # a corrected manual answer keeps the stream's task hash: still new
        streamed = set_hashes(_answer("first text", 1_700_000_000))
        fixed = {**streamed, "spans": [{"start": 0, "end": 5, "label": "X"}]}  # same hashes, other spans
        db.add_tasks([fixed], answer=None)  # type: ignore[attr-defined]
        (again,) = db.pull(since=cursor)
        assert [s.key for a in again.annotations for s in a.spans] == [(0, 5, "X")]
