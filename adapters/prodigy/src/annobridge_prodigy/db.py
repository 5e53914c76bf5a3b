"""Prodigy's database tables (``dataset``, ``example``, ``link``) on SQLite and PostgreSQL.

The layout is Prodigy's peewee schema: an ``example`` row per annotation with
the task as UTF-8 JSON bytes, linked many-to-many to named ``dataset`` rows.
Reads select the named columns only, so tables with extra columns still work.
Writes mirror ``prodigy db-in``: each example is linked to the named dataset
and to a session dataset named after the time of the write.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annobridge.kit import AdapterError, UsageError

__all__ = ["Example", "ProdigyDB", "session_name"]

_SQLITE_DDL = (
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
_POSTGRES_DDL = (
    'CREATE TABLE IF NOT EXISTS "dataset" ("id" SERIAL NOT NULL PRIMARY KEY, "name" VARCHAR(255) NOT NULL, '
    '"created" INTEGER NOT NULL, "meta" BYTEA NOT NULL, "session" BOOLEAN NOT NULL)',
    'CREATE UNIQUE INDEX IF NOT EXISTS "dataset_name" ON "dataset" ("name")',
    'CREATE TABLE IF NOT EXISTS "example" ("id" SERIAL NOT NULL PRIMARY KEY, "input_hash" BIGINT NOT NULL, '
    '"task_hash" BIGINT NOT NULL, "content" BYTEA NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "link" ("id" SERIAL NOT NULL PRIMARY KEY, '
    '"example_id" INTEGER NOT NULL REFERENCES "example" ("id"), '
    '"dataset_id" INTEGER NOT NULL REFERENCES "dataset" ("id"))',
    'CREATE INDEX IF NOT EXISTS "link_example_id" ON "link" ("example_id")',
    'CREATE INDEX IF NOT EXISTS "link_dataset_id" ON "link" ("dataset_id")',
)


@dataclass(frozen=True)
class Example:
    id: int
    input_hash: int
    task_hash: int
    content: bytes


def session_name(now: float | None = None) -> str:
    """A session dataset name like the ones ``db-in`` creates (``2024-05-01_12-30-05``)."""
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now))


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"unexpected content type {type(value).__name__}")


class ProdigyDB:
    """A connection to a Prodigy database; ``where`` names it in messages (never with a password)."""

    def __init__(self, conn: Any, dialect: str, where: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self._link_cols: tuple[str, str] | None = None

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def sqlite(cls, path: str | Path, *, create: bool = False) -> ProdigyDB:
        path = Path(path).expanduser()
        if not path.exists() and not create:
            raise UsageError(f"No Prodigy database at {path}")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path))
        return cls(conn, "sqlite", str(path))

    @classmethod
    def postgresql(cls, where: str, **settings: Any) -> ProdigyDB:
        import psycopg

        try:
            conn = psycopg.connect(**{k: v for k, v in settings.items() if v is not None})
        except psycopg.OperationalError as exc:
            # psycopg's message names host/user/db, never the password
            raise AdapterError(f"Cannot connect to PostgreSQL at {where}: {str(exc).strip()}") from None
        return cls(conn, "postgresql", where)

    def close(self) -> None:
        self.conn.close()

    # -- helpers ----------------------------------------------------------------------

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s") if self.dialect == "postgresql" else query

    def _execute(self, query: str, params: Iterable[Any] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self._sql(query), tuple(params))
        return cur

    def _commit(self) -> None:
        self.conn.commit()

    def _rows(self, query: str, params: Iterable[Any] = ()) -> list[Any]:
        """All rows of a read, its transaction ended (PostgreSQL would otherwise hold it open)."""
        rows = self._execute(query, params).fetchall()
        self._commit()
        return list(rows)

    def has_tables(self) -> bool:
        if self.dialect == "sqlite":
            rows = self._rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self._rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {"dataset", "example", "link"} <= {r[0] for r in rows}

    def _columns(self, table: str) -> set[str]:
        if self.dialect == "sqlite":
            return {row[1] for row in self._rows(f'PRAGMA table_info("{table}")')}
        rows = self._rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ?",
            (table,),
        )
        return {r[0] for r in rows}

    def _link_columns(self) -> tuple[str, str]:
        """``link``'s foreign-key column names (peewee appends ``_id``; tolerate other spellings)."""
        if self._link_cols is None:
            cols = self._columns("link")
            example = "example_id" if "example_id" in cols else "example"
            dataset = "dataset_id" if "dataset_id" in cols else "dataset"
            if example not in cols or dataset not in cols:
                raise AdapterError(f"{self.where}: table 'link' has no example/dataset columns ({sorted(cols)})")
            self._link_cols = (example, dataset)
        return self._link_cols

    def create_tables(self) -> None:
        if self.has_tables():
            return
        for statement in _SQLITE_DDL if self.dialect == "sqlite" else _POSTGRES_DDL:
            self._execute(statement)
        self._commit()

    # -- datasets ---------------------------------------------------------------------

    def datasets(self, *, sessions: bool = False) -> list[str]:
        if not self.has_tables():
            return []
        rows = self._rows('SELECT "name", "session" FROM "dataset" ORDER BY "id"')
        return [str(name) for name, session in rows if sessions or not session]

    def dataset_id(self, name: str) -> int | None:
        if not self.has_tables():
            return None
        rows = self._rows('SELECT "id" FROM "dataset" WHERE "name" = ?', (name,))
        return int(rows[0][0]) if rows else None

    def require_dataset(self, name: str) -> int:
        found = self.dataset_id(name)
        if found is None:
            names = self.datasets()
            listing = ", ".join(names) if names else "none"
            raise UsageError(f"No dataset {name!r} in the Prodigy database {self.where} (datasets: {listing})")
        return found

    def add_dataset(self, name: str, meta: Mapping[str, Any] | None = None, *, session: bool = False) -> int:
        """Return the dataset's id, creating it (Prodigy's naming rules apply) when missing."""
        if not name or "," in name or any(ch.isspace() for ch in name):
            raise UsageError(f"Invalid dataset name {name!r}: Prodigy names may not be empty or contain commas/spaces")
        found = self.dataset_id(name)
        if found is not None:
            return found
        meta_bytes = json.dumps(dict(meta or {}), ensure_ascii=False).encode("utf-8")
        params = (name, int(time.time()), meta_bytes, bool(session) if self.dialect == "postgresql" else int(session))
        if self.dialect == "postgresql":
            cur = self._execute(
                'INSERT INTO "dataset" ("name", "created", "meta", "session") VALUES (?, ?, ?, ?) RETURNING "id"',
                params,
            )
            new_id = int(cur.fetchone()[0])
        else:
            cur = self._execute(
                'INSERT INTO "dataset" ("name", "created", "meta", "session") VALUES (?, ?, ?, ?)', params
            )
            new_id = int(cur.lastrowid)
        self._commit()
        return new_id

    # -- examples ---------------------------------------------------------------------

    def _linked(self, columns: str, tail: str = "") -> str:
        """``SELECT columns`` of the examples linked to one dataset (its id the parameter; ``e`` is ``example``)."""
        ex_col, ds_col = self._link_columns()
        return f'SELECT {columns} FROM "example" e JOIN "link" l ON l."{ex_col}" = e."id" WHERE l."{ds_col}" = ?{tail}'

    def examples(self, dataset: str) -> Iterator[Example]:
        """The dataset's examples in insertion order (the order ``db-out`` writes them)."""
        dataset_id = self.require_dataset(dataset)  # first: a missing dataset is named, with the ones there are
        query = self._linked('e."id", e."input_hash", e."task_hash", e."content"', ' ORDER BY e."id"')
        for row in self._execute(query, (dataset_id,)):
            yield Example(int(row[0]), int(row[1]), int(row[2]), _as_bytes(row[3]))
        self._commit()

    def hashes(self, dataset: str) -> tuple[set[int], set[int]]:
        """(input hashes, task hashes) of a dataset's examples; empty when it does not exist."""
        dataset_id = self.dataset_id(dataset)
        if dataset_id is None:
            return set(), set()
        rows = self._rows(self._linked('e."input_hash", e."task_hash"'), (dataset_id,))
        return {int(r[0]) for r in rows}, {int(r[1]) for r in rows}

    def count_inputs(self, dataset: str) -> int:
        dataset_id = self.require_dataset(dataset)
        rows = self._rows(self._linked('COUNT(DISTINCT e."input_hash")'), (dataset_id,))
        return int(rows[0][0])

    def add_examples(self, tasks: Iterable[Mapping[str, Any]], datasets: list[str]) -> int:
        """Insert one example per task (never deduplicated, as in Prodigy) linked to ``datasets``.

        Every task must already carry ``_input_hash`` and ``_task_hash``. One transaction.
        """
        ids = [self.dataset_id(name) for name in datasets]
        missing = [name for name, i in zip(datasets, ids, strict=True) if i is None]
        if missing:
            raise UsageError(f"No dataset {missing[0]!r} in {self.where}; create it first")
        dataset_ids = [i for i in ids if i is not None]
        ex_col, ds_col = self._link_columns()
        insert_example = self._sql('INSERT INTO "example" ("input_hash", "task_hash", "content") VALUES (?, ?, ?)')
        if self.dialect == "postgresql":
            insert_example += ' RETURNING "id"'
        links: list[tuple[int, int]] = []
        count = 0
        cur = self.conn.cursor()
        try:
            for task in tasks:
                content = json.dumps(task, ensure_ascii=False).encode("utf-8")
                cur.execute(insert_example, (int(task["_input_hash"]), int(task["_task_hash"]), content))
                example_id = int(cur.fetchone()[0]) if self.dialect == "postgresql" else int(cur.lastrowid)
                links.extend((example_id, dataset_id) for dataset_id in dataset_ids)
                count += 1
            cur.executemany(self._sql(f'INSERT INTO "link" ("{ex_col}", "{ds_col}") VALUES (?, ?)'), links)
        except BaseException:
            self.conn.rollback()
            raise
        self._commit()
        return count
