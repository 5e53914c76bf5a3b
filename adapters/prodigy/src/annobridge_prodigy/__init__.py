"""``prodigy:`` - Prodigy task JSONL and Prodigy databases (SQLite, PostgreSQL).

URL forms::

    prodigy:annotations.jsonl                      tasks, one per line (db-out / db-in format)
    prodigy:prodigy.db?dataset=news                a dataset in Prodigy's SQLite database
    prodigy+postgresql://user@host:5432/prodigy?dataset=news
                                                   the same on PostgreSQL (password from
                                                   $PRODIGY_DB_PASSWORD or the config file)

Prodigy itself is not needed (nor used): this adapter reads and writes its
formats. A pull yields one record per ``_input_hash`` with every answer to it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shlex
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field

from annobridge.kit import (
    Adapter,
    AdapterConfig,
    AdapterOptions,
    AdapterURL,
    Annotation,
    AnnotationLedger,
    Answer,
    BadLine,
    Capabilities,
    Document,
    ImportResult,
    LabelSchema,
    LineIndex,
    MissingDependencyError,
    Prediction,
    Record,
    ReviewItem,
    TaskKind,
    UsageError,
    append_json_lines,
    decode_line,
    hookimpl,
    is_json_array_file,
    read_json_items,
    read_json_lines,
    rewrite_json_lines,
)

from .db import ProdigyDB, session_name
from .hashes import TASK_KEYS, input_hash, set_hashes, task_hash
from .tasks import TaskError, TaskGrouper, document_task, line_key

__all__ = ["ProdigyAdapter", "input_hash", "set_hashes", "task_hash"]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_PG_TRANSPORTS = ("postgresql", "postgres")
_ANSWER_PARAM = {"accept": "accept", "reject": "reject", "ignore": "ignore", "none": None}


class ProdigyOptions(AdapterOptions):
    """The URL's query options (``?dataset=news``), or the same keys in ``[prodigy]`` of the config file."""

    dataset: str | None = Field(None, description="the dataset in Prodigy's database")
    answer: Literal["accept", "reject", "ignore", "none"] = Field(
        "none", description="written tasks become annotations with this answer, as db-in --answer does")
    connect_timeout: int = Field(10, ge=1, description="PostgreSQL: seconds to wait for a connection")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        None, description="PostgreSQL: libpq's sslmode")


class ProdigyAdapter(Adapter):
    scheme = "prodigy"
    description = "Prodigy task JSONL, or a dataset in Prodigy's SQLite/PostgreSQL database"
    url_example = "prodigy:prodigy.db?dataset=news"
    capabilities = Capabilities.all_except()  # test_contract.py checks each claim it can observe
    Options = ProdigyOptions

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None) -> None:
        super().__init__(url, config)
        self.dataset: str | None = self.options.dataset or None
        transport = (url.transport or "").lower()
        if transport in _PG_TRANSPORTS:
            self.kind = "postgresql"
        elif transport == "sqlite" or url.path.lower().endswith(_SQLITE_SUFFIXES):
            self.kind = "sqlite"
        elif transport:
            raise UsageError(f"Unknown Prodigy transport {transport!r}: use prodigy+postgresql:// or a .db file")
        else:
            self.kind = "jsonl"
        if self.kind == "postgresql" and importlib.util.find_spec("psycopg") is None:
            raise MissingDependencyError(self.scheme, "psycopg", "annobridge-prodigy[postgres]")
        if self.kind != "postgresql" and not url.path:
            raise UsageError("prodigy: needs a path, e.g. prodigy:annotations.jsonl or prodigy:prodigy.db?dataset=news")
        self.path = Path(url.path).expanduser() if self.kind != "postgresql" else None
        answer = self.options.answer
        #: ``?answer=accept`` mirrors ``db-in --answer accept``: written tasks become annotations.
        #: The default writes none, so an import never turns documents or predictions into labels.
        self.write_answer = _ANSWER_PARAM[answer]
        self._db: ProdigyDB | None = None
        self._tables_checked = False
        self._index: LineIndex | None = None

    # -- connections ------------------------------------------------------------------

    @property
    def is_db(self) -> bool:
        return self.kind != "jsonl"

    def _where(self) -> str:
        if self.kind == "postgresql":
            return f"{self.url.host or 'localhost'}:{self.url.port or 5432}{self.url.path or '/prodigy'}"
        return str(self.path)

    def db(self, *, create: bool = False) -> ProdigyDB:
        if self._db is None:
            if self.kind == "sqlite":
                assert self.path is not None
                self._db = ProdigyDB.sqlite(self.path, create=create)
            else:
                self._db = ProdigyDB.postgresql(self._where(), **self._pg_settings())
        if create and not self._tables_checked:
            self._db.create_tables()
            self._tables_checked = True
        return self._db

    def _pg_settings(self) -> dict[str, Any]:
        parts = urlsplit("x:" + self.url.raw.partition(":")[2])
        password = unquote(parts.password) if parts.password else None
        if password is None:
            secret = self.config.secret("password", env="PRODIGY_DB_PASSWORD")
            password = secret.reveal() if secret else None
        dbname = unquote(parts.path.lstrip("/")) or self.config.get("dbname", default="prodigy")
        settings: dict[str, Any] = {
            "host": parts.hostname or self.config.get("host", env="PGHOST", default="127.0.0.1"),
            "port": parts.port or int(self.config.get("port", env="PGPORT", default=5432)),
            "user": unquote(parts.username) if parts.username else self.config.get("user", env="PGUSER"),
            "dbname": dbname,
            "password": password,
            "connect_timeout": self.options.connect_timeout,
        }
        if self.options.sslmode is not None:
            settings["sslmode"] = self.options.sslmode
        return settings

    def _dataset(self, description: str = "created by annobridge") -> tuple[ProdigyDB, str]:
        """The database and the named dataset in it, both created when missing (for a write)."""
        dataset = self._need_dataset()
        db = self.db(create=True)
        db.add_dataset(dataset, {"description": description})
        return db, dataset

    def _need_dataset(self) -> str:
        if self.dataset:
            return self.dataset
        names: list[str] = []
        try:
            names = self.db().datasets()
        except UsageError:
            pass
        listing = ", ".join(names) if names else "none yet"
        raise UsageError(f"{self.url}: say which dataset, e.g. ?dataset=news (datasets: {listing})")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._tables_checked = False

    # -- reading ----------------------------------------------------------------------

    def _db_tasks(self) -> Iterator[tuple[str, Any]]:
        """(where, parsed JSON or the reason it is unusable) for every example of the dataset."""
        dataset = self._need_dataset()
        for example in self.db().examples(dataset):
            yield f"{dataset}:example {example.id}", decode_line(example.content, objects_only=False, what="content")

    def _file_index(self) -> LineIndex:
        """The line index of the JSONL file, built once per file state (``count`` and ``pull`` share it)."""
        assert self.path is not None
        if not self.path.exists():
            raise UsageError(f"No such file: {self.path}")
        index = self._index
        if index is None or not index.fresh():
            index = self._index = LineIndex.build(self.path, line_key)
        return index

    def _is_json_array(self) -> bool:
        return self.path is not None and is_json_array_file(self.path)

    def _records(self) -> Iterator[Record]:
        """One record per ``_input_hash``, in order of first appearance, every answer to it merged.

        A database or a ``.json`` array is grouped in memory (the database hands its examples over
        unsorted; a JSON array is in memory anyway). A JSONL file is not held: a :class:`LineIndex`
        knows which lines belong together, and only one input's lines are parsed at a time.
        """
        named: set[str] = set()
        if self.is_db or self._is_json_array():
            groups: Iterable[Iterable[tuple[str, Any]]] = [self._db_tasks() if self.is_db else self._json_array_tasks()]
        else:
            groups = self._file_index().groups()
        for group in groups:
            grouper = TaskGrouper(self.skip)
            for where, task in group:
                grouper.add(task, where)
            for record in grouper.records.values():
                yield _unique_id(record, named)

    def _json_array_tasks(self) -> Iterator[tuple[str, Any]]:
        assert self.path is not None
        if not self.path.exists():
            raise UsageError(f"No such file: {self.path}")
        try:
            yield from read_json_items(self.path, objects_only=False)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        """Every input with its answers; with ``since``, only answers new since then.

        The cursor (:class:`annobridge.kit.PullCursor`) knows every answer a pull saw, so passing it back
        whole (``pull --cursor-file``) is exact: an answer saved in the same second as the last one, or
        saved without a ``_timestamp``, is not missed, and removed answers are named. Its ``str`` is the
        newest ``_timestamp`` (a timestamp-only pull, as Prodigy's own timestamps allow).
        """
        owner = f"{self._where()}?dataset={self.options.dataset}" if self.is_db else self._where()
        # a naive datetime is taken as UTC (Prodigy's _timestamp is Unix time)
        ledger = AnnotationLedger.resume(since, owner=owner, annotation_id=_answer_id)
        yield from ledger.changes(((record.id, record) for record in self._records()), answers)
        self.cursor = ledger.cursor(ledger.newest, owner=owner)

    def count(self) -> int | None:
        if self.is_db:
            return self.db().count_inputs(self._need_dataset())
        if self.path is None or not self.path.exists():
            return 0
        if self._is_json_array():
            grouper = TaskGrouper(lambda where, reason: None)
            for where, task in self._json_array_tasks():
                grouper.add(task, where)
            return len(grouper.records)
        return self._file_index().count()

    # -- writing ----------------------------------------------------------------------

    def ensure_project(self, schema: LabelSchema) -> Any:
        self._check_writable()
        if not self.is_db:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
            return self.path
        dataset = self._need_dataset()
        meta = {"description": "created by annobridge", "task": schema.task.value, "labels": list(schema.labels)}
        return self.db(create=True).add_dataset(dataset, meta)

    def _file_hashes(self) -> tuple[dict[int, bool], set[int]]:
        """Input hashes in the stream file (True when an unanswered task has it) and task hashes."""
        inputs: dict[int, bool] = {}
        tasks: set[int] = set()
        assert self.path is not None
        if not self.path.exists():
            return inputs, tasks
        for _, data in read_json_lines(self.path):
            if isinstance(data, BadLine):
                continue
            ih = data.get("_input_hash")
            if isinstance(ih, int) and not isinstance(ih, bool):
                inputs[ih] = inputs.get(ih, False) or "answer" not in data
            if isinstance(data.get("_task_hash"), int):
                tasks.add(data["_task_hash"])
        return inputs, tasks

    def _check_writable(self) -> None:
        if self.kind == "jsonl" and self.path is not None and self.path.name.endswith((".gz", ".json")):
            raise UsageError(f"{self.path}: annobridge writes Prodigy tasks as plain .jsonl only")

    def write_documents(
        self, items: Iterator[tuple[Document, Prediction | None]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        self._check_writable()
        result = ImportResult()
        built = result.translated(items, lambda doc, prediction: document_task(doc, prediction, schema),
                                  errors=TaskError)
        if self.is_db:
            self._write_db(built, result, by_task=False)
        else:
            self._append_new_inputs([(doc, task, task) for doc, task in built], result)
        return result

    def _append_new_inputs(self, built: list[tuple[Document, dict[str, Any], dict[str, Any]]],
                           result: ImportResult) -> None:
        """Append to the stream file the lines ``(document, its task, the line)`` whose input it lacks yet."""
        known, _ = self._file_hashes()
        new: list[dict[str, Any]] = []
        for doc, task, line in built:
            result.native_ids[doc.id] = task["_input_hash"]
            if task["_input_hash"] in known:
                result.existing += 1
                continue
            known[task["_input_hash"]] = True
            new.append(line)
            result.created += 1
        assert self.path is not None
        append_json_lines(self.path, new)

    def _write_db(self, built: list[tuple[Document, dict[str, Any]]], result: ImportResult, *, by_task: bool) -> None:
        db, dataset = self._dataset()
        inputs, tasks = db.hashes(dataset)
        new: list[dict[str, Any]] = []
        for doc, task in built:
            result.native_ids[doc.id] = task["_input_hash"]
            if self.write_answer is not None:
                task.setdefault("answer", self.write_answer)
            if task["_task_hash"] in tasks or (not by_task and task["_input_hash"] in inputs):
                result.existing += 1
                continue
            if task["_input_hash"] in inputs:
                result.existing += 1
            else:
                result.created += 1
            inputs.add(task["_input_hash"])
            tasks.add(task["_task_hash"])
            new.append(task)
        if new:
            self._append(new)

    def add_tasks(self, tasks: Iterable[dict[str, Any]], *, answer: str | None = "accept") -> int:
        """Store Prodigy tasks as they are, like ``prodigy db-in``: hashes are added where missing
        (existing ones are kept), ``answer`` where missing; nothing is deduplicated. Returns how many."""
        self._check_writable()
        prepared: list[dict[str, Any]] = []
        for task in tasks:
            task = dict(task)
            set_hashes(task)
            if answer is not None:
                task.setdefault("answer", answer)
            prepared.append(task)
        return self._append(prepared)

    def _append(self, tasks: list[dict[str, Any]]) -> int:
        """Store finished tasks as they are: in the dataset and a new session (as Prodigy saves answers), or
        appended to the JSONL file. Returns how many."""
        if self.is_db:
            db, dataset = self._dataset()
            session = session_name()
            db.add_dataset(session, {"description": "annobridge import session"}, session=True)
            return db.add_examples(tasks, [dataset, session])
        assert self.path is not None
        return append_json_lines(self.path, tasks)

    def push_predictions(self, items: Iterable[tuple[Document, Prediction]]) -> ImportResult:
        self._check_writable()
        result = ImportResult()
        built = result.translated(items, document_task, errors=TaskError)
        if self.is_db:
            self._write_db(built, result, by_task=True)
            return result
        # a stream file holds one task per input for ner.correct / textcat.correct: replace, do not append
        pending: dict[int, dict[str, Any]] = {}
        for doc, task in built:
            result.native_ids[doc.id] = task["_input_hash"]
            if task["_input_hash"] in pending:
                result.existing += 1
            pending[task["_input_hash"]] = task
        replaced: set[int] = set()

        def edit(data: Any) -> list[dict[str, Any]] | None:
            ih = data.get("_input_hash") if isinstance(data, dict) else None
            if not (isinstance(ih, int) and ih in pending and "answer" not in data):
                return None  # kept byte for byte, lines that do not parse too
            if ih in replaced:
                return []  # a second unanswered copy of the same input is dropped
            replaced.add(ih)
            result.existing += 1
            return [pending[ih]]

        def new_inputs() -> list[dict[str, Any]]:
            added = [task for ih, task in pending.items() if ih not in replaced]
            result.created += len(added)
            return added

        assert self.path is not None
        rewrite_json_lines(self.path, edit, then=new_inputs)  # the file is rewritten whole, atomically
        return result


    def push_review(self, items: Iterable[ReviewItem], *, schema: LabelSchema) -> ImportResult:
        """Documents for Prodigy's ``review`` recipe, one result per document.

        A database dataset gets each annotator's version as an accepted example of theirs (``_annotator_id``
        and ``_session_id`` = the annotator): the input ``prodigy review GOLD THIS_DATASET`` reads, which
        shows the versions side by side and saves the decision as review output (read back as ground truth).
        A JSONL file gets the review recipe's own task format: one task per document with its ``versions``.
        """
        self._check_writable()
        view = _REVIEW_VIEWS[schema.task.value]
        result = ImportResult()
        built = result.translated(
            ((item.document, item.versions) for item in items),
            lambda doc, versions: [_version_task(doc, name, pred, schema) for name, pred in versions.items()],
            errors=TaskError,
        )
        if self.is_db:
            db, dataset = self._dataset("documents for review, created by annobridge")
            have = {(ex.task_hash, _annotator_of(ex.content)) for ex in db.examples(dataset)}
            new: list[dict[str, Any]] = []
            for doc, tasks in built:
                result.native_ids[doc.id] = tasks[0]["_input_hash"]
                fresh = [t for t in tasks if (t["_task_hash"], t["_annotator_id"]) not in have]
                have.update((t["_task_hash"], t["_annotator_id"]) for t in fresh)
                new.extend(fresh)
                if fresh:
                    result.created += 1
                else:
                    result.existing += 1
            if new:
                db.add_examples(new, [dataset])
            return result
        self._append_new_inputs([(doc, tasks[0], _review_task(tasks, view)) for doc, tasks in built], result)
        return result


    def write_annotations(
        self, items: Iterable[tuple[Document, Annotation]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        """Each annotation as its annotator's saved example (see :func:`_annotation_task`), once."""
        self._check_writable()
        if schema is None:
            raise UsageError("Writing Prodigy annotations needs the task (--task): it picks the interface")
        result = ImportResult()
        tasks = [task for _, task in result.translated(items, lambda doc, ann: _annotation_task(doc, ann, schema),
                                                       errors=TaskError)]
        if self.is_db:
            db, dataset = self._dataset()
            saved = [json.loads(ex.content) for ex in db.examples(dataset)]
        else:
            assert self.path is not None
            saved = [d for _, d in read_json_lines(self.path) if isinstance(d, dict)] if self.path.exists() else []
        have = {_answer_key(data) for data in saved}
        inputs = {data.get("_input_hash") for data in saved}
        new = []
        for task in tasks:
            key = _answer_key(task)
            if key in have:
                result.existing += 1
                continue
            have.add(key)
            new.append(task)
            result.created += 1
            if task["_input_hash"] not in inputs:  # the document arrives with this annotation
                inputs.add(task["_input_hash"])
                result.documents_created += 1
        if new:
            self._append(new)
        return result

    def set_annotators_per_doc(self, n: int) -> str:
        """Prodigy reads overlap from its own ``prodigy.json`` when a recipe starts: say what to put there."""
        setting = '"feed_overlap": false' if n == 1 else f'"annotations_per_task": {n}'
        return (
            f"Prodigy: put {{{setting}}} in prodigy.json (not together with \"feed_overlap\": true), and have "
            "each annotator open the app with their own session name (?session=NAME)"
        )

    def review_decisions(self, schema: LabelSchema) -> tuple[str, str | None]:
        """``prodigy review`` saves its decisions in a dataset of their own: ``<dataset>_gold`` here."""
        view = _REVIEW_VIEWS[schema.task.value]
        if self.is_db:
            dataset = self._need_dataset()
            gold = f"{dataset}_gold"
            raw = self.url.raw
            decisions = raw.replace(f"dataset={dataset}", f"dataset={gold}") if f"dataset={dataset}" in raw else raw
            return decisions, shlex.join(["prodigy", "review", gold, dataset, "--view-id", view])
        # a stream file in the review format: any recipe that shows the review interface can take it
        assert self.path is not None
        gold_file = self.path.with_name(f"{self.path.stem}_gold.jsonl")
        # `prodigy mark` serves until stopped (Ctrl-C); then the decisions go to the file export reads
        name = f"{self.path.stem}_gold"
        mark = shlex.join(["prodigy", "mark", name, str(self.path), "--view-id", "review"])
        return f"prodigy:{gold_file}", f"{mark}; prodigy db-out {shlex.quote(name)} > {shlex.quote(str(gold_file))}"


#: the interface each task's versions are shown in (``--view-id`` of ``prodigy review``)
_REVIEW_VIEWS = {"ner": "ner_manual", "spans": "spans_manual", "textcat": "choice", "textcat_multilabel": "choice"}


def _version_task(doc: Document, annotator: str, version: Prediction, schema: LabelSchema) -> dict[str, Any]:
    """One annotator's version as the accepted example Prodigy would have saved for them."""
    ann = Annotation(annotator, spans=list(version.spans), categories=dict(version.categories))
    return _annotation_task(doc, ann, schema)


def _annotation_task(doc: Document, ann: Annotation, schema: LabelSchema) -> dict[str, Any]:
    """An annotation as the example Prodigy saves for its annotator (``_annotator_id`` = ``_session_id``).

    A manual answer takes the task's manual interface, a binary one the yes/no interface with its one
    question; ``skip`` becomes ``ignore`` (Prodigy's name for it); a ground-truth annotation is written as
    review output (``versions``), which is how Prodigy marks a decision.
    """
    binary = ann.mode == "binary"
    spans = [replace(s, score=None) for s in ann.spans] if schema.task.is_span_task else []
    categories = {} if schema.task.is_span_task else dict(ann.categories)
    if binary and categories and len(categories) == 1:
        schema = LabelSchema(schema.task, list(categories))  # one question: "is it LABEL?"
    task = document_task(doc, Prediction(ann.annotator, spans=spans, categories=categories), schema)
    task["meta"].pop("model", None)  # a person's answer, not a model's
    task["meta"].pop("score", None)
    for span in task.get("spans", ()):
        span.pop("source", None)
    answer = "ignore" if ann.answer == Answer.SKIP else ann.answer.value
    if "options" in task:
        task["accept"] = [label for label, value in sorted(categories.items()) if value >= 0.5]
    elif "label" in task and not binary:
        answer = "accept" if categories.get(task["label"], 0.0) >= 0.5 else "reject"
    task["answer"] = answer
    task["_annotator_id"] = task["_session_id"] = ann.annotator
    if "label" in task:
        view = "classification"
    elif schema.task.is_span_task:
        view = ("ner" if schema.task == TaskKind.NER else "spans") if binary else _REVIEW_VIEWS[schema.task.value]
    else:
        view = "choice"
    task["_view_id"] = view
    if ann.timestamp is not None:
        task["_timestamp"] = int(ann.timestamp.timestamp())
    # the task hash tells versions apart: Prodigy's covers spans and options, so the chosen labels join it
    task["_task_hash"] = task_hash(task, task["_input_hash"], keys=(*TASK_KEYS, "accept"))
    if ann.ground_truth:
        task.update({"_view_id": "review", "view_id": view, "versions": []})
    return task


def _answer_id(ann: Annotation) -> str:
    """An answer's identity within its input (Prodigy has no answer ids): the question, who, what they said
    (spans and labels: a corrected manual answer keeps the stream's task hash), and when."""
    said = json.dumps([sorted(s.key for s in ann.spans), sorted(ann.categories.items())], ensure_ascii=False)
    digest = hashlib.sha1(said.encode("utf-8")).hexdigest()[:12]
    stamp = int(ann.created_at.timestamp()) if ann.created_at is not None else ""
    question = ann.native_ids.get("_task_hash")
    return f"{question}|{ann.annotator}|{ann.answer.value}|{int(ann.ground_truth)}|{digest}|{stamp}"


def _answer_key(task: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two saved examples the same answer: question, annotator, answer, decision or not."""
    return (task.get("_task_hash"), task.get("_annotator_id"), task.get("answer"), "versions" in task)


def _review_task(tasks: list[dict[str, Any]], view: str) -> dict[str, Any]:
    """The review recipe's task for one document: its versions, one per annotator, the first the default."""
    top = {k: v for k, v in tasks[0].items() if k not in ("answer", "_annotator_id", "_session_id")}
    versions = [{**t, "sessions": [t["_session_id"]], "default": i == 0} for i, t in enumerate(tasks)]
    return {**top, "_view_id": "review", "view_id": view, "versions": versions}


def _annotator_of(content: bytes) -> str | None:
    data = decode_line(content)
    value = data.get("_annotator_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _unique_id(record: Record, named: set[str]) -> Record:
    """Record ids stay unique: a saved ``annobridge_id`` that a second input carries too (e.g. a
    document split into sentences by a recipe, each sentence its own input) goes back to the hash."""
    fallback = str(record.native_ids["_input_hash"])
    if record.id != fallback:
        if record.id in named:
            record.document = replace(record.document, id=fallback)
        else:
            named.add(record.id)
    return record


@hookimpl
def register_adapters(register: Any) -> None:
    register(ProdigyAdapter)
