"""Stand-in for the annotators: save a round of Prodigy answers into a Prodigy SQLite database.

    python scripts/annotate.py assets/annotations.db fashion_brands assets/round1.jsonl

Writes what Prodigy's web app writes when annotators save their answers: one ``example`` row per answer
(the task as UTF-8 JSON, stamped with ``_timestamp``, Unix seconds), linked to the dataset and to a
session dataset named after the time, in Prodigy's own tables (created when the file is new). Prodigy
itself is not needed. An answer already saved (the same task, annotator and spans) is not saved twice,
so running a round again adds nothing.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

#: Prodigy's SQLite schema (its peewee models: dataset, example, link)
SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "dataset" ("id" INTEGER NOT NULL PRIMARY KEY, "name" VARCHAR(255) NOT NULL, '
    '"created" INTEGER NOT NULL, "meta" BLOB NOT NULL, "session" INTEGER NOT NULL)',
    'CREATE UNIQUE INDEX IF NOT EXISTS "dataset_name" ON "dataset" ("name")',
    'CREATE TABLE IF NOT EXISTS "example" ("id" INTEGER NOT NULL PRIMARY KEY, "input_hash" INTEGER NOT NULL, '
    '"task_hash" INTEGER NOT NULL, "content" BLOB NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "link" ("id" INTEGER NOT NULL PRIMARY KEY, "example_id" INTEGER NOT NULL, '
    '"dataset_id" INTEGER NOT NULL, FOREIGN KEY ("example_id") REFERENCES "example" ("id"), '
    'FOREIGN KEY ("dataset_id") REFERENCES "dataset" ("id"))',
    'CREATE INDEX IF NOT EXISTS "link_example_id" ON "link" ("example_id")',
    'CREATE INDEX IF NOT EXISTS "link_dataset_id" ON "link" ("dataset_id")',
)


def _dataset_id(conn: sqlite3.Connection, name: str, *, session: bool, now: int) -> int:
    row = conn.execute('SELECT "id" FROM "dataset" WHERE "name" = ?', (name,)).fetchone()
    if row is not None:
        return int(row[0])
    meta = json.dumps({"description": None, "author": None} if not session else {}).encode("utf-8")
    cur = conn.execute(
        'INSERT INTO "dataset" ("name", "created", "meta", "session") VALUES (?, ?, ?, ?)',
        (name, now, meta, int(session)),
    )
    return int(cur.lastrowid or 0)


def _key(task: dict[str, Any]) -> str:
    """What makes two saved answers the same answer: everything but the time it was saved."""
    return json.dumps({k: v for k, v in task.items() if k != "_timestamp"}, sort_keys=True, ensure_ascii=False)


def save(db: Path, dataset: str, answers: list[dict[str, Any]], now: float | None = None) -> int:
    """Save ``answers`` into ``dataset`` of the Prodigy database ``db``; returns how many were new."""
    stamp = int(time.time() if now is None else now)
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db))
    try:
        with conn:  # one transaction: a round is saved whole or not at all
            for statement in SCHEMA:
                conn.execute(statement)
            dataset_id = _dataset_id(conn, dataset, session=False, now=stamp)
            saved = {
                _key(json.loads(bytes(content)))
                for (content,) in conn.execute(
                    'SELECT e."content" FROM "example" e JOIN "link" l ON l."example_id" = e."id" '
                    'WHERE l."dataset_id" = ?',
                    (dataset_id,),
                )
            }
            fresh = [a for a in answers if _key(a) not in saved]
            if not fresh:
                return 0
            session_name = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(stamp))
            session_id = _dataset_id(conn, session_name, session=True, now=stamp)
            for answer in fresh:
                task = {**answer, "_timestamp": stamp}
                cur = conn.execute(
                    'INSERT INTO "example" ("input_hash", "task_hash", "content") VALUES (?, ?, ?)',
                    (int(task["_input_hash"]), int(task["_task_hash"]), json.dumps(task).encode("utf-8")),
                )
                link = 'INSERT INTO "link" ("example_id", "dataset_id") VALUES (?, ?)'
                for linked in (dataset_id, session_id):
                    conn.execute(link, (cur.lastrowid, linked))
            return len(fresh)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("db", type=Path, help="Prodigy SQLite database (created if missing)")
    parser.add_argument("dataset", help="Prodigy dataset name")
    parser.add_argument("answers", type=Path, help="Prodigy answers, one JSON task a line")
    args = parser.parse_args(argv)
    answers = [json.loads(line) for line in args.answers.read_text(encoding="utf-8").splitlines() if line.strip()]
    count = save(args.db, args.dataset, answers)
    print(f"{count} new answers saved to {args.dataset} in {args.db} ({len(answers) - count} were there already)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
