"""The adapter contract (annobridge.testing) for ``prodigy:``: a task JSONL file, a SQLite and a PostgreSQL database.

Prodigy itself cannot be installed (proprietary, not on PyPI), so annotating is done the way Prodigy does it:
``ner.manual`` takes the task from its input stream (what ``import_documents`` wrote), the annotator marks spans
on its ``tokens``, and the answered task is stored

* in a database exactly as ``Database.add_examples`` stores it: one ``example`` row (``input_hash``,
  ``task_hash``, the task as compact ASCII-escaped JSON bytes, as ujson/srsly write it), linked to the dataset and
  to the session dataset ``<dataset>-<session>`` (``session=True``) that a named multi-user session uses;
* in a JSONL file as a ``prodigy db-out`` line (same JSON, one line), appended after the input tasks.

The answered task keeps the stream's ``_input_hash`` and ``_task_hash`` (Prodigy hashes a task when it is
streamed and never recomputes a hash a task carries) and gains what a real ``ner_manual`` export has
(``tests/data/prodigy/ner_tweets_sample.jsonl``, ``restaurant_reviews_review.jsonl``): ``_view_id``, ``spans``
with ``token_start`` / ``token_end`` (inclusive) and no ``text``, ``answer``, ``_timestamp`` (Unix seconds),
``_annotator_id`` and ``_session_id`` (both ``<dataset>-<session>``). Offsets are code points, as Prodigy's.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from annobridge.adapter import Adapter
from annobridge.model import Document, Span
from annobridge.testing import AdapterContract, ContractBackend

DATASET = "contract"
SESSIONS = ("alice", "bob", "carol")
#: what the adapter reports as the annotator: Prodigy's ``_annotator_id`` of a named session
ANNOTATORS = (f"{DATASET}-alice", f"{DATASET}-bob", f"{DATASET}-carol")
#: a lone surrogate is not Unicode: no JSON encoder Prodigy uses can store it as UTF-8
BAD_DOCUMENT = Document.create("broken \ud800 text", id="contract-bad")
#: ``_timestamp`` has one-second resolution: an incremental pull needs the next second
SETTLE = 1.05


def _prodigy_json(task: dict[str, Any]) -> str:
    """A task as Prodigy serialises it (srsly/ujson: compact, non-ASCII escaped)."""
    return json.dumps(task, separators=(",", ":"))


def annotated_task(
    stream_task: dict[str, Any], session_id: str, spans: list[Span], cats: dict[str, float]
) -> dict[str, Any]:
    """What ``ner.manual`` stores when ``session_id`` accepts ``stream_task`` with ``spans`` marked."""
    assert not cats, "the contract annotates spans (ner); this backend is a ner.manual session"
    task = json.loads(json.dumps(stream_task))  # the stream's task, hashes and all, as the web app sends it back
    tokens = task["tokens"]
    by_start = {t["start"]: t["id"] for t in tokens}
    by_end = {t["end"]: t["id"] for t in tokens}
    marked = []
    for span in spans:
        # the UI marks whole tokens: a span that is not on token boundaries could not be made
        assert span.text == task["text"][span.start : span.end], span
        marked.append(
            {
                "start": span.start,
                "end": span.end,
                "token_start": by_start[span.start],
                "token_end": by_end[span.end],
                "label": span.label,
            }
        )
    task.pop("answer", None)
    task.update(
        {
            "_is_binary": False,
            "_view_id": "ner_manual",
            "spans": marked,
            "answer": "accept",
            "_timestamp": int(time.time()),
            "_annotator_id": session_id,
            "_session_id": session_id,
        }
    )
    return task


def _stream_task(tasks: list[dict[str, Any]], doc_id: str) -> dict[str, Any]:
    """The unanswered input task ``import_documents`` wrote for ``doc_id``."""
    found = [t for t in tasks if t.get("annobridge_id", str(t.get("_input_hash"))) == doc_id and "answer" not in t]
    assert len(found) == 1, (doc_id, len(found))
    return found[0]


# -- JSONL: db-out lines -----------------------------------------------------------------


def annotate_jsonl(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
    path = Path(adapter.url.path)
    tasks = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    task = annotated_task(_stream_task(tasks, doc_id), annotator, spans, cats)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(_prodigy_json(task) + "\n")


class TestProdigyJsonlContract(AdapterContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> ContractBackend:
        return ContractBackend(
            url=f"prodigy:{tmp_path / 'contract.jsonl'}",
            annotate=annotate_jsonl,
            bad_document=BAD_DOCUMENT,
            settle=SETTLE,
            annotators=ANNOTATORS,
        )


# -- databases: Database.add_examples ----------------------------------------------------

Connect = Callable[[], Any]


def _db_annotate(connect: Connect, dataset: str, placeholder: str) -> Callable[..., None]:
    """``annotate`` for a Prodigy database reached through a DB-API connection (sqlite3 or psycopg)."""

    def sql(query: str) -> str:
        return query.replace("?", placeholder)

    def annotate(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
        conn = connect()
        try:
            cur = conn.cursor()
            # the stream: ner.manual reading the imported tasks (a ``dataset:`` source)
            cur.execute(
                sql(
                    'SELECT e."content" FROM "example" e JOIN "link" l ON l."example_id" = e."id" '
                    'JOIN "dataset" d ON d."id" = l."dataset_id" WHERE d."name" = ? ORDER BY e."id"'
                ),
                (dataset,),
            )
            tasks = [json.loads(bytes(row[0]).decode("utf-8")) for row in cur.fetchall()]
            task = annotated_task(_stream_task(tasks, doc_id), annotator, spans, cats)
            # Database.add_dataset(session_id, session=True), once per session
            cur.execute(sql('SELECT "id" FROM "dataset" WHERE "name" = ?'), (annotator,))
            row = cur.fetchone()
            if row is None:
                session = True if placeholder == "%s" else 1  # BooleanField: a bool, or 1 in SQLite
                cur.execute(
                    sql('INSERT INTO "dataset" ("name", "created", "meta", "session") VALUES (?, ?, ?, ?)'),
                    (annotator, int(time.time()), b"{}", session),
                )
                cur.execute(sql('SELECT "id" FROM "dataset" WHERE "name" = ?'), (annotator,))
                row = cur.fetchone()
            session_id = int(row[0])
            cur.execute(sql('SELECT "id" FROM "dataset" WHERE "name" = ?'), (dataset,))
            dataset_id = int(cur.fetchone()[0])
            # Database.add_examples([task], datasets=[dataset, session_id])
            insert = 'INSERT INTO "example" ("input_hash", "task_hash", "content") VALUES (?, ?, ?)'
            postgres = placeholder == "%s"
            cur.execute(
                sql(insert + (' RETURNING "id"' if postgres else "")),
                (task["_input_hash"], task["_task_hash"], _prodigy_json(task).encode("utf-8")),
            )
            example_id = int(cur.fetchone()[0]) if postgres else int(cur.lastrowid)
            for linked in (dataset_id, session_id):
                cur.execute(sql('INSERT INTO "link" ("example_id", "dataset_id") VALUES (?, ?)'), (example_id, linked))
            conn.commit()
        finally:
            conn.close()

    return annotate


class TestProdigySqliteContract(AdapterContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> ContractBackend:
        path = tmp_path / "prodigy.db"
        return ContractBackend(
            url=f"prodigy:{path}?dataset={DATASET}",
            annotate=_db_annotate(lambda: sqlite3.connect(str(path)), DATASET, "?"),
            bad_document=BAD_DOCUMENT,
            settle=SETTLE,
            annotators=ANNOTATORS,
        )


@pytest.mark.postgres
class TestProdigyPostgresContract(AdapterContract):
    @pytest.fixture
    def backend(self, pg_database: dict[str, Any]) -> ContractBackend:
        import psycopg

        # one database per test session (dropped at its end): a fresh dataset per test
        dataset = f"contract_{uuid.uuid4().hex[:10]}"
        first, second, third = (f"{dataset}-{name}" for name in SESSIONS)
        settings = {k: pg_database[k] for k in ("host", "port", "user", "dbname")}
        return ContractBackend(
            url=(
                f"prodigy+postgresql://{settings['user']}@{settings['host']}:{settings['port']}/{settings['dbname']}"
                f"?dataset={dataset}"
            ),
            annotate=_db_annotate(lambda: psycopg.connect(**settings), dataset, "%s"),
            bad_document=BAD_DOCUMENT,
            settle=SETTLE,
            annotators=(first, second, third),
        )
