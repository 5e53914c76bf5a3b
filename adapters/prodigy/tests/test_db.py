"""Prodigy's database tables on SQLite and on a real PostgreSQL server.

Each real export is written as ``prodigy db-in`` would (one example row per task,
linked to the dataset and to a session dataset), pulled back through the
adapter, and compared with a pull of the same JSONL file.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from annobridge import AdapterError, Document, LabelSchema, Prediction, Span, UsageError, open_adapter
from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge_prodigy import ProdigyAdapter

SHAPES = [
    "fashion_brands_training_head.jsonl",
    "ner_tweets_sample.jsonl",
    "reddit_product_ner_teach.jsonl",
    "reddit_insult_textcat_binary.jsonl",
    "nel_emerson_choice.jsonl",
    "restaurant_reviews_review.jsonl",
    "cooking_cats_train_head.jsonl",
]

UrlFactory = Callable[[str], str]


def _tasks(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _open(url: str) -> ProdigyAdapter:
    adapter = open_adapter(url)
    assert isinstance(adapter, ProdigyAdapter)
    return adapter


@pytest.mark.parametrize("name", SHAPES)
def test_db_in_round_trip(db_url: UrlFactory, data_dir: Path, tmp_path: Path, name: str) -> None:
    path = data_dir / name
    tasks = _tasks(path)
    with _open(db_url("shape")) as target:
        assert target.add_tasks(tasks) == len(tasks)
    expected = [r.to_dict() for r in _open(f"prodigy:{path}").pull()]
    if any("_task_hash" not in t or "answer" not in t for t in tasks):
        # db-in adds hashes and answer="accept" where missing: compare with the same tasks as a file
        with_hashes = tmp_path / "db_in.jsonl"
        _open(f"prodigy:{with_hashes}").add_tasks(tasks)
        written = _tasks(with_hashes)
        assert all(w["answer"] == t.get("answer", "accept") for w, t in zip(written, tasks, strict=True))
        expected = [r.to_dict() for r in _open(f"prodigy:{with_hashes}").pull()]
    with _open(db_url("shape")) as source:
        got = [r.to_dict() for r in source.pull()]
        assert source.skipped == []
        assert source.count() == len(expected)
    assert got == expected


def test_db_rows_are_what_db_in_writes(db_url: UrlFactory, data_dir: Path) -> None:
    tasks = _tasks(data_dir / "fashion_brands_training_head.jsonl")[:10]
    with _open(db_url("rows")) as adapter:
        adapter.add_tasks(tasks)
        db = adapter.db()
        dataset = adapter.dataset
        assert dataset is not None
        examples = list(db.examples(dataset))
        assert [json.loads(e.content.decode("utf-8")) for e in examples] == tasks
        assert [(e.input_hash, e.task_hash) for e in examples] == [(t["_input_hash"], t["_task_hash"]) for t in tasks]
        # db-in links every example to the dataset and to a session dataset as well
        sessions = [n for n in db.datasets(sessions=True) if n not in db.datasets()]
        assert len(sessions) >= 1
        ours = {e.id for e in examples}
        # (writes within the same second share a session name, as in Prodigy)
        assert any(ours <= {e.id for e in db.examples(s)} for s in sessions)
        assert dataset in db.datasets()


def test_missing_dataset_lists_the_datasets(db_url: UrlFactory, data_dir: Path) -> None:
    tasks = _tasks(data_dir / "nel_emerson_choice.jsonl")[:2]
    with _open(db_url("present")) as adapter:
        adapter.add_tasks(tasks)
        present = adapter.dataset
    with _open(db_url("absent")) as missing, pytest.raises(UsageError) as info:
        list(missing.pull())
    assert "No dataset" in str(info.value) and str(present) in str(info.value)


def test_import_and_push_are_idempotent(db_url: UrlFactory) -> None:
    docs = [Document.create("Anna flew to Rome."), Document.create("Nothing here.")]
    pred = Prediction("m", spans=[Span(0, 4, "PERSON"), Span(13, 17, "GPE")], score=0.8)
    with _open(db_url("idem")) as adapter:
        adapter.ensure_project(LabelSchema("ner", ["PERSON", "GPE"]))
        first = adapter.import_documents(docs)
        assert (first.created, first.existing) == (2, 0)
        second = adapter.import_documents(docs)
        assert (second.created, second.existing) == (0, 2)
        pushed = adapter.push_predictions([(docs[0], pred)])
        assert (pushed.created, pushed.existing) == (0, 1)
        again = adapter.push_predictions([(docs[0], pred)])
        assert (again.created, again.existing) == (0, 1)
        records = list(adapter.pull())
    assert [r.text for r in records] == [d.text for d in docs]
    # no answer was written (the default): documents and a prediction, no labels
    assert all(not r.annotations for r in records)
    (prediction,) = records[0].predictions
    assert [s.key for s in prediction.spans] == [s.key for s in pred.spans] and prediction.score == 0.8


def test_answer_param_mirrors_db_in(db_url: UrlFactory) -> None:
    doc = Document.create("Anna flew to Rome.")
    pred = Prediction("m", spans=[Span(0, 4, "PERSON")])
    with _open(db_url("accepted") + "&answer=accept") as adapter:
        adapter.push_predictions([(doc, pred)])
        (record,) = list(adapter.pull())
    (ann,) = record.annotations
    assert ann.answer.value == "accept" and [s.key for s in ann.spans] == [(0, 4, "PERSON")]


def test_sqlite_tolerates_extra_columns_and_bad_rows(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "prodigy.db"
    tasks = _tasks(data_dir / "cooking_cats_train_head.jsonl")[:3]
    with _open(f"prodigy:{path}?dataset=cooking") as adapter:
        adapter.add_tasks(tasks)
    conn = sqlite3.connect(path)
    conn.execute('ALTER TABLE "example" ADD COLUMN "flagged" INTEGER DEFAULT 0')
    conn.execute('ALTER TABLE "dataset" ADD COLUMN "feed" TEXT')
    conn.execute("INSERT INTO example (input_hash, task_hash, content) VALUES (1, 2, ?)", (b"\xff\xfe not utf-8",))
    bad_id = conn.execute("SELECT max(id) FROM example").fetchone()[0]
    conn.execute("INSERT INTO example (input_hash, task_hash, content) VALUES (3, 4, ?)", (b"{broken",))
    dataset_id = conn.execute("SELECT id FROM dataset WHERE name = 'cooking'").fetchone()[0]
    conn.execute("INSERT INTO link (example_id, dataset_id) VALUES (?, ?)", (bad_id, dataset_id))
    conn.execute("INSERT INTO link (example_id, dataset_id) VALUES (?, ?)", (bad_id + 1, dataset_id))
    conn.commit()
    conn.close()
    with _open(f"prodigy:{path}?dataset=cooking") as adapter:
        records = list(adapter.pull())
        assert [r.annotations[0].categories for r in records] == [t["cats"] for t in tasks]
        assert adapter.skipped == [
            (f"cooking:example {bad_id}", "content is not UTF-8"),
            (f"cooking:example {bad_id + 1}", "invalid JSON (Expecting property name enclosed in double quotes)"),
        ]


def test_sqlite_without_dataset_or_file() -> None:
    with pytest.raises(UsageError, match="No Prodigy database"):
        list(_open("prodigy:/nonexistent/dir/prodigy.db?dataset=x").pull())


@pytest.mark.postgres
def test_postgres_password_is_never_echoed(pg_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = "s3cret-" + uuid.uuid4().hex
    monkeypatch.setenv("PRODIGY_DB_PASSWORD", secret)
    url = f"prodigy+postgresql://postgres@127.0.0.1:{port}/prodigy?dataset=x&connect_timeout=2"
    adapter = ProdigyAdapter(AdapterURL.parse(url), AdapterConfig({}))
    with pytest.raises(AdapterError) as info:
        list(adapter.pull())
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert "Cannot connect to PostgreSQL" in str(info.value)
    assert adapter._pg_settings()["password"] == secret


@pytest.mark.postgres
def test_postgres_password_from_config_reaches_the_server(pg_database: dict[str, Any]) -> None:
    # trust auth accepts any password: this checks the settings path end to end, not authentication
    config = AdapterConfig({"password": "from-config"}, env={})
    url = (
        f"prodigy+postgresql://{pg_database['user']}@{pg_database['host']}:{pg_database['port']}/"
        f"{pg_database['dbname']}?dataset=cfg_{uuid.uuid4().hex[:6]}"
    )
    adapter = ProdigyAdapter(AdapterURL.parse(url), config)
    assert adapter._pg_settings()["password"] == "from-config"
    adapter.import_documents([Document.create("hello")])
    assert [r.text for r in adapter.pull()] == ["hello"]
    adapter.close()
