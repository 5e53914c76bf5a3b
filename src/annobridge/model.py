"""The one data model every adapter translates into.

Offsets are Python code points, end exclusive (what ``str`` slicing and spaCy's
``Doc.char_span`` use). Adapters for tools that count in UTF-16 or bytes convert
before building these objects, or leave the claimed ``text`` on the span so the
exporter can verify and repair it.

Every class has ``to_dict`` / ``from_dict`` that round-trip losslessly through
JSON: that is annobridge's own interchange format (the ``jsonl:`` adapter).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = [
    "Annotation",
    "Answer",
    "Document",
    "LabelSchema",
    "Prediction",
    "Record",
    "Span",
    "TaskKind",
    "content_id",
]


class Answer(str, Enum):
    """What an annotator said about a task (Prodigy's vocabulary plus ``skip``)."""

    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"
    SKIP = "skip"


_ANSWERS = {answer.value: answer for answer in Answer}


class TaskKind(str, Enum):
    NER = "ner"
    SPANS = "spans"
    TEXTCAT = "textcat"
    TEXTCAT_MULTILABEL = "textcat_multilabel"

    @property
    def is_span_task(self) -> bool:
        return self in (TaskKind.NER, TaskKind.SPANS)


def content_id(text: str) -> str:
    """A stable id for a document that has none: a hash of its text."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def _dt_to_json(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt_from_json(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)):
        from datetime import timezone

        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {} and v != []}


@dataclass(slots=True)
class Span:
    """A labelled character range. ``text`` is what the source claims the range covers."""

    start: int
    end: int
    label: str
    score: float | None = None
    text: str | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.start, self.end, self.label)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"start": self.start, "end": self.end, "label": self.label}
        if self.score is not None:
            data["score"] = self.score
        if self.text is not None:
            data["text"] = self.text
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        # positional arguments: this runs once per span on every pull, keywords cost ~30% more
        return cls(int(data["start"]), int(data["end"]), str(data["label"]), data.get("score"), data.get("text"))


@dataclass(slots=True)
class Document:
    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, text: str, id: str | None = None, meta: dict[str, Any] | None = None) -> Document:
        return cls(id=str(id) if id is not None else content_id(text), text=text, meta=dict(meta or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Document:
        text = data["text"]
        doc_id = data.get("id")
        return cls(
            id=str(doc_id) if doc_id is not None else content_id(text), text=text, meta=dict(data.get("meta") or {})
        )


@dataclass(slots=True)
class Annotation:
    """One annotator's judgement of one document.

    ``mode`` says how to read what is absent: ``manual`` annotations are complete
    (a token not in a span is outside; a category not chosen is 0.0), ``binary``
    ones answer one question (accept or reject the given span / label) and say
    nothing about the rest.
    """

    annotator: str
    spans: list[Span] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)
    answer: Answer = Answer.ACCEPT
    mode: str = "manual"
    ground_truth: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    native_ids: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def timestamp(self) -> datetime | None:
        return self.updated_at or self.created_at

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "annotator": self.annotator,
                "spans": [s.to_dict() for s in self.spans],
                "categories": self.categories,
                "answer": self.answer.value,
                "mode": self.mode,
                "ground_truth": self.ground_truth or None,
                "created_at": _dt_to_json(self.created_at),
                "updated_at": _dt_to_json(self.updated_at),
                "native_ids": self.native_ids,
                "meta": self.meta,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Annotation:
        get = data.get
        categories = get("categories")
        native_ids, meta = get("native_ids"), get("meta")
        answer = get("answer", "accept")
        return cls(
            str(get("annotator", "")),
            [Span.from_dict(s) for s in get("spans", ())],
            {str(k): float(v) for k, v in categories.items()} if categories else {},
            _ANSWERS.get(answer) or Answer(answer),
            str(get("mode", "manual")),
            bool(get("ground_truth", False)),
            _dt_from_json(get("created_at")),
            _dt_from_json(get("updated_at")),
            dict(native_ids) if native_ids else {},
            dict(meta) if meta else {},
        )


@dataclass(slots=True)
class Prediction:
    """A model's pre-annotation: spans and/or category scores, with the model's version."""

    model_version: str
    spans: list[Span] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    created_at: datetime | None = None
    native_ids: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "model_version": self.model_version,
                "spans": [s.to_dict() for s in self.spans],
                "categories": self.categories,
                "score": self.score,
                "created_at": _dt_to_json(self.created_at),
                "native_ids": self.native_ids,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prediction:
        return cls(
            model_version=str(data.get("model_version", "")),
            spans=[Span.from_dict(s) for s in data.get("spans", ())],
            categories={str(k): float(v) for k, v in (data.get("categories") or {}).items()},
            score=data.get("score"),
            created_at=_dt_from_json(data.get("created_at")),
            native_ids=dict(data.get("native_ids") or {}),
        )


@dataclass(slots=True)
class Record:
    """A document with everything known about it: annotations and predictions."""

    document: Document
    annotations: list[Annotation] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    native_ids: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def text(self) -> str:
        return self.document.text

    def to_dict(self) -> dict[str, Any]:
        data = self.document.to_dict()
        if self.annotations:
            data["annotations"] = [a.to_dict() for a in self.annotations]
        if self.predictions:
            data["predictions"] = [p.to_dict() for p in self.predictions]
        if self.native_ids:
            data["native_ids"] = self.native_ids
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        native_ids = data.get("native_ids")
        return cls(
            Document.from_dict(data),
            [Annotation.from_dict(a) for a in data.get("annotations", ())],
            [Prediction.from_dict(p) for p in data.get("predictions", ())],
            dict(native_ids) if native_ids else {},
        )


@dataclass(slots=True)
class LabelSchema:
    """What a project asks annotators: the task kind and its labels."""

    task: TaskKind
    labels: list[str] = field(default_factory=list)
    spans_key: str = "sc"

    def __post_init__(self) -> None:
        self.task = TaskKind(self.task)

    @property
    def exclusive(self) -> bool:
        return self.task == TaskKind.TEXTCAT

    @property
    def allows_overlap(self) -> bool:
        return self.task == TaskKind.SPANS

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task.value, "labels": list(self.labels), "spans_key": self.spans_key}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSchema:
        return cls(
            task=TaskKind(data["task"]), labels=list(data.get("labels", ())), spans_key=data.get("spans_key", "sc")
        )

    @classmethod
    def infer(cls, task: TaskKind | str, records: Iterable[Record]) -> LabelSchema:
        """Collect the labels the task uses (span labels or category labels) seen in annotations and predictions."""
        kind = TaskKind(task)
        labels: set[str] = set()
        for record in records:
            items: list[Annotation | Prediction] = [*record.annotations, *record.predictions]
            for item in items:
                if kind.is_span_task:
                    labels.update(s.label for s in item.spans)
                else:
                    labels.update(item.categories)
        return cls(task=kind, labels=sorted(labels))
