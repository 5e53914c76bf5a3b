"""Prodigy task dicts <-> annobridge records.

Reading: every shape Prodigy writes (manual and binary NER/spans, binary
textcat, choice, relations, ``review`` output) plus spaCy-side ``cats`` lines.
Tasks with the same ``_input_hash`` are one document; :class:`TaskGrouper`
collects them into one :class:`Record` each, first seen first.

Writing: :func:`document_task` builds a task as a recipe's input stream expects
it (``text``, ``meta``, hashes; pre-annotations as ``spans`` with ``tokens`` for
``ner.manual`` / ``spans.manual``, or ``label`` / ``options`` + ``accept``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from itertools import pairwise
from typing import Any

from annobridge.kit import (
    LONE_SURROGATE,
    Annotation,
    Answer,
    BadLine,
    Document,
    LabelSchema,
    Prediction,
    Record,
    Span,
    check_span,
    decode_line,
    has_lone_surrogate,
)

from .hashes import input_hash, is_hash, task_hash

__all__ = [
    "ID_KEY",
    "TaskError",
    "TaskGrouper",
    "document_input_hash",
    "document_task",
    "line_key",
    "parse_task",
    "tokenize",
]

#: interfaces whose accepted answer is the complete labelling of the text
MANUAL_VIEWS = frozenset(
    {"ner_manual", "spans_manual", "pos_manual", "relations", "dep", "choice", "image_manual", "audio_manual"}
)
#: interfaces that ask one yes/no question (a span, a label)
BINARY_VIEWS = frozenset({"ner", "spans", "pos", "classification", "text", "html", "image", "audio"})
ANSWERS = {a.value: a for a in (Answer.ACCEPT, Answer.REJECT, Answer.IGNORE)}
DEFAULT_ANNOTATOR = "prodigy"
DEFAULT_MODEL = "prodigy"
#: task keys copied to Annotation/Prediction native ids
NATIVE_KEYS = ("_input_hash", "_task_hash", "_session_id", "_view_id")
#: top-level task key holding the annobridge ``Document.id`` when it is not ``str(_input_hash)``. Prodigy
#: passes unknown task keys through its stream, web app and database untouched, so every answer to the
#: task carries it back; it is added after hashing, so it changes neither hash.
ID_KEY = "annobridge_id"


class TaskError(ValueError):
    """A line that is not a usable Prodigy task (the message is the skip reason)."""


# -- reading ---------------------------------------------------------------------------


@dataclass
class ParsedTask:
    input_hash: int
    document: Document
    #: the document id came from the task's ``annobridge_id`` (else it is ``str(input_hash)``)
    named: bool = False
    annotations: list[Annotation] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TaskError(f"{what} is not an integer ({value!r})")
    return value


def _parse_spans(task: Mapping[str, Any], text: str) -> list[Span]:
    raw = task.get("spans")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise TaskError("'spans' is not a list")
    tokens = task.get("tokens") if isinstance(task.get("tokens"), list) else None
    spans: list[Span] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise TaskError(f"span {index} is not an object")
        label = item.get("label")
        if not isinstance(label, str) or not label:
            raise TaskError(f"span {index} has no label")
        start, end = item.get("start"), item.get("end")
        if (start is None or end is None) and tokens is not None:
            # some recipes only keep token indices; token_end is inclusive
            try:
                start = tokens[_int(item["token_start"], "token_start")]["start"]
                end = tokens[_int(item["token_end"], "token_end")]["end"]
            except (KeyError, IndexError, TypeError) as exc:
                raise TaskError(f"span {index} has no character offsets and bad token indices ({exc})") from None
        start = _int(start, f"span {index} start")
        end = _int(end, f"span {index} end")
        claimed = item.get("text")
        if not isinstance(claimed, str):
            # nothing claimed: take the slice, so the exporter still sees out-of-range offsets as such
            claimed = text[start:end] if 0 <= start < end <= len(text) else None
        spans.append(Span(start=start, end=end, label=label, score=_number(item.get("score")), text=claimed))
    return spans


def _number(value: Any) -> float | None:
    """A score as a float; None for anything but a number (a bool is not one)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _options(task: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    options = task.get("options")
    if options is None:
        return None
    if not isinstance(options, list) or not all(isinstance(o, Mapping) and "id" in o for o in options):
        raise TaskError("'options' is not a list of objects with an 'id'")
    return options


def _choice_categories(task: Mapping[str, Any], options: list[Mapping[str, Any]]) -> dict[str, float]:
    chosen = task.get("accept")
    if chosen is None:
        chosen = []
    if not isinstance(chosen, list):
        raise TaskError("'accept' is not a list of option ids")
    picked = {str(c) for c in chosen}
    categories = {str(o["id"]): 1.0 if str(o["id"]) in picked else 0.0 for o in options}
    for extra in picked - categories.keys():
        categories[extra] = 1.0
    return categories


def _cats(task: Mapping[str, Any]) -> dict[str, float]:
    cats = task.get("cats")
    if not isinstance(cats, Mapping):
        raise TaskError("'cats' is not an object")
    try:
        return {str(k): float(v) for k, v in cats.items()}
    except (TypeError, ValueError):
        raise TaskError("'cats' values are not numbers") from None


def _mode(task: Mapping[str, Any], view: str | None) -> str:
    if "options" in task or "cats" in task:
        return "manual"
    if isinstance(task.get("label"), str):
        return "binary"
    if view in MANUAL_VIEWS:
        return "manual"
    if view in BINARY_VIEWS:
        return "binary"
    if isinstance(task.get("_is_binary"), bool):
        return "binary" if task["_is_binary"] else "manual"
    # pre-2019 exports carry no view id: manual NER came with tokens, ner.teach without
    return "manual" if "tokens" in task else "binary"


def _native(task: Mapping[str, Any], view: str | None = None) -> dict[str, Any]:
    ids = {k: task[k] for k in NATIVE_KEYS if task.get(k) is not None}
    if view and "_view_id" not in ids:
        ids["_view_id"] = view
    return ids


def _model_of(task: Mapping[str, Any], spans: list[Mapping[str, Any]] | None = None) -> str:
    meta = task.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("model"), str):
        return str(meta["model"])
    for item in spans or ():
        if isinstance(item, Mapping) and isinstance(item.get("source"), str):
            return str(item["source"])
    return DEFAULT_MODEL


def _meta_score(task: Mapping[str, Any]) -> float | None:
    meta = task.get("meta")
    value = meta.get("score") if isinstance(meta, Mapping) else None
    if value is None:
        value = task.get("score")
    return _number(value)


def _annotation(task: Mapping[str, Any], text: str, view_hint: str | None = None) -> Annotation:
    """One answered task (or one review version) as an Annotation."""
    answer_value = task.get("answer", "accept")
    answer = ANSWERS.get(answer_value) if isinstance(answer_value, str) else None
    if answer is None:
        raise TaskError(f"unknown answer {answer_value!r}")
    view = task.get("_view_id") if isinstance(task.get("_view_id"), str) else view_hint
    if view == "review":
        view = task.get("view_id") if isinstance(task.get("view_id"), str) else view_hint
    mode = _mode(task, view)
    spans: list[Span] = []
    categories: dict[str, float] = {}
    meta: dict[str, Any] = {}
    options = _options(task)
    if options is not None:
        categories = _choice_categories(task, options)
    elif "cats" in task:
        categories = _cats(task)
    elif isinstance(task.get("label"), str):
        categories = {task["label"]: 1.0 if answer == Answer.ACCEPT else 0.0}
        if task.get("spans"):
            meta["spans"] = task["spans"]  # context shown with the question, not an answer about spans
    else:
        spans = _parse_spans(task, text)
    if "relations" in task:
        meta["relations"] = task["relations"]
    if task.get("flagged"):
        meta["flagged"] = True
    annotator = task.get("_annotator_id") or task.get("_session_id") or DEFAULT_ANNOTATOR
    return Annotation(
        annotator=str(annotator),
        spans=spans,
        categories=categories,
        answer=answer,
        mode=mode,
        created_at=_timestamp(task.get("_timestamp")),
        native_ids=_native(task, view),
        meta=meta,
    )


def _prediction(task: Mapping[str, Any], text: str, answered: bool) -> Prediction | None:
    """The model's part of a task: a whole pre-annotation, or the question a teach recipe scored."""
    raw_spans = task.get("spans") if isinstance(task.get("spans"), list) else []
    score = _meta_score(task)
    options = _options(task)
    categories: dict[str, float] = {}
    spans: list[Span] = []
    if options is not None:
        if any("score" in o for o in options):
            categories = {
                str(o["id"]): float(o["score"]) for o in options if isinstance(o.get("score"), (int, float))
            }
        elif not answered:
            categories = _choice_categories(task, options)
        # a choice task's spans are the mention being asked about, pre-highlighted by a model
        spans = _parse_spans(task, text)
    elif isinstance(task.get("label"), str):
        if score is None and answered:
            return None
        categories = {task["label"]: score if score is not None else 1.0}
    elif "cats" in task:
        return None
    else:
        if answered and score is None:
            return None
        spans = _parse_spans(task, text)
    meta = task.get("meta")
    from_model = isinstance(meta, Mapping) and ("model" in meta or "score" in meta)
    if not spans and not categories and not from_model:
        return None
    native = {k: task[k] for k in ("_task_hash",) if task.get(k) is not None}
    return Prediction(model_version=_model_of(task, raw_spans), spans=spans, categories=categories, score=score,
                      native_ids=native)


def parse_task(task: Any) -> ParsedTask:
    """Read one Prodigy task; raises :class:`TaskError` with the reason it cannot be used."""
    if not isinstance(task, dict):
        raise TaskError(f"expected a JSON object, got {type(task).__name__}")
    text = task.get("text")
    if not isinstance(text, str):
        if any(k in task for k in ("image", "audio", "video")):
            raise TaskError("no text (image/audio tasks are not supported)")
        if "pattern" in task:
            raise TaskError("a match pattern, not a task")
        raise TaskError("no 'text' field")
    if has_lone_surrogate(text):
        raise TaskError(LONE_SURROGATE)
    saved = task.get("_input_hash")
    in_hash: int = saved if isinstance(saved, int) and not isinstance(saved, bool) else input_hash(task)
    meta: dict[str, Any] = task["meta"] if isinstance(task.get("meta"), dict) else {}
    saved_id = task.get(ID_KEY)
    named = isinstance(saved_id, str) and saved_id != "" and not has_lone_surrogate(saved_id)
    # files without the key (Prodigy's own, written before annobridge kept ids): the hash, as before
    doc_id = str(saved_id) if named else str(in_hash)
    parsed = ParsedTask(input_hash=in_hash, document=Document(id=doc_id, text=text, meta=dict(meta)), named=named)

    versions = task.get("versions")
    answered = "answer" in task
    if isinstance(versions, list):
        # review output: the top level is the reviewer's final decision, each version what its sessions said
        final = _annotation(task, text)
        final.ground_truth = True
        parsed.annotations.append(final)
        hint = task.get("view_id") if isinstance(task.get("view_id"), str) else None
        for number, version in enumerate(versions):
            if not isinstance(version, Mapping):
                raise TaskError(f"review version {number} is not an object")
            sessions = version.get("sessions")
            names = [str(s) for s in sessions] if isinstance(sessions, list) and sessions else [None]
            for name in names:
                ann = _annotation(version, text, view_hint=hint)
                if name is not None:
                    ann.annotator = name
                if isinstance(version.get("default"), bool):
                    ann.meta["default"] = version["default"]
                parsed.annotations.append(ann)
    elif answered:
        parsed.annotations.extend(_split_span_answers(task, _annotation(task, text)))
        if parsed.annotations[0].mode == "binary" or "options" in task:
            prediction = _prediction(task, text, answered=True)
            if prediction is not None:
                parsed.predictions.append(prediction)
    elif "cats" in task:
        # spaCy-side training JSONL: the categories are gold labels, not a model's guess
        ann = _annotation(task, text)
        parsed.annotations.append(ann)
    elif "options" in task:
        prediction = _prediction(task, text, answered=False)
        if prediction is not None:
            parsed.predictions.append(prediction)
    elif isinstance(task.get("spans"), list) or isinstance(task.get("label"), str):
        # an unanswered pre-annotated input task: a suggestion for an annotator, never a label
        prediction = _prediction(task, text, answered=False)
        if prediction is not None:
            parsed.predictions.append(prediction)
    return parsed


def _split_span_answers(task: Mapping[str, Any], ann: Annotation) -> list[Annotation]:
    """Old binary exports answer each span on its own (``spans[i].answer``): one Annotation per answer."""
    raw = task.get("spans")
    if ann.mode != "binary" or not ann.spans or not isinstance(raw, list) or len(raw) != len(ann.spans):
        return [ann]
    groups: dict[Answer, list[Span]] = {}
    for item, span in zip(raw, ann.spans, strict=True):
        own = item.get("answer") if isinstance(item, Mapping) else None
        answer = ANSWERS.get(own, ann.answer) if isinstance(own, str) else ann.answer
        groups.setdefault(answer, []).append(span)
    if list(groups) == [ann.answer]:
        return [ann]
    return [replace(ann, spans=spans, answer=answer, native_ids=dict(ann.native_ids), meta=dict(ann.meta))
            for answer, spans in groups.items()]


class TaskGrouper:
    """Collect tasks into one Record per ``_input_hash``, in first-seen order."""

    def __init__(self, skip: Callable[[str, str], None]) -> None:
        self.records: dict[int, Record] = {}
        self._skip = skip
        self._named: set[int] = set()

    def add(self, task: Any, where: str) -> None:
        """Add one parsed task (or the :class:`~annobridge.kit.BadLine` its line gave: skipped, with its reason)."""
        if isinstance(task, BadLine):
            self._skip(where, task.reason)
            return
        try:
            parsed = parse_task(task)
        except TaskError as exc:
            self._skip(where, str(exc))
            return
        record = self.records.get(parsed.input_hash)
        if record is None:
            self.records[parsed.input_hash] = Record(
                document=parsed.document,
                annotations=parsed.annotations,
                predictions=parsed.predictions,
                native_ids={"_input_hash": parsed.input_hash},
            )
            if parsed.named:
                self._named.add(parsed.input_hash)
            return
        if record.document.text != parsed.document.text:
            self._skip(where, f"_input_hash {parsed.input_hash} already used by a different text")
            return
        if parsed.named and parsed.input_hash not in self._named:
            # the first task seen had no id (written by Prodigy or an older annobridge): a later one names it
            record.document = replace(record.document, id=parsed.document.id)
            self._named.add(parsed.input_hash)
        record.annotations.extend(parsed.annotations)
        known = {_prediction_key(p) for p in record.predictions}
        for prediction in parsed.predictions:
            if _prediction_key(prediction) not in known:
                record.predictions.append(prediction)
                known.add(_prediction_key(prediction))


#: the saved hash as serialised (any spacing json/ujson/srsly write); an unescaped quote before the
#: colon cannot occur inside a JSON string, so a match is a key, at some depth
_HASH_KEY = b'"_input_hash"'
_TEXT_KEY = b'"text"'
_HASH_VALUE = re.compile(rb"[ \t]*:[ \t]*(-?[0-9]+)[ \t\r\n]*[,}]")


def line_key(raw: bytes) -> int | None:
    """A raw line's input, the group key of :class:`annobridge.kit.LineIndex` for a Prodigy JSONL file.

    The saved ``_input_hash``, found without a JSON parse when that is unambiguous: exactly one
    ``"_input_hash"`` key followed by an integer, and a ``"text"`` key. Anything else (no saved hash,
    one nested in review ``versions`` too, a float) is left to the full parse (:func:`_parsed_hash`);
    a line that is no task has no key (a group of its own, reported when read).
    """
    at = raw.find(_HASH_KEY)
    if at >= 0 and raw.find(_HASH_KEY, at + 13) < 0 and raw.find(_TEXT_KEY) >= 0:
        match = _HASH_VALUE.match(raw, at + 13)
        if match:
            return int(match.group(1))
    return _parsed_hash(raw)


def _parsed_hash(line: bytes) -> int | None:
    """The input key of a line the byte scan could not read: as :func:`parse_task` would group it."""
    task = decode_line(line, objects_only=False)
    if isinstance(task, BadLine) or not isinstance(task, dict) or not isinstance(task.get("text"), str):
        return None
    saved = task.get("_input_hash")
    if isinstance(saved, int) and not isinstance(saved, bool):
        return saved
    try:
        return input_hash(task)
    except (TypeError, ValueError, RecursionError):
        return None


def _prediction_key(p: Prediction) -> tuple[Any, ...]:
    return (p.model_version, tuple(sorted(s.key for s in p.spans)), tuple(sorted(p.categories.items())), p.score)


# -- writing ---------------------------------------------------------------------------


def document_input_hash(doc: Document) -> int:
    """The ``_input_hash`` for a document: its id when that already is one, else Prodigy's hash of the text.

    A Prodigy pull gives every document ``id = str(_input_hash)``; keeping it
    means a document read from Prodigy goes back with the hash Prodigy knows.
    """
    try:
        value = int(doc.id)
    except (TypeError, ValueError):
        value = None
    if value is not None and str(value) == doc.id and is_hash(value):
        return value
    return input_hash({"text": doc.text})


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    import spacy

    return spacy.blank("en").tokenizer


def tokenize(text: str, cut_at: set[int] | None = None) -> list[dict[str, Any]]:
    """Prodigy ``tokens`` from spaCy's English tokenizer, split at ``cut_at`` offsets.

    Splitting at span boundaries lets ``ner.manual`` show any pre-annotated span,
    even one that starts inside a spaCy token.
    """
    cuts = sorted(cut_at or ())
    tokens: list[dict[str, Any]] = []
    for tok in _tokenizer()(text):
        start, end = tok.idx, tok.idx + len(tok.text)
        inner = [c for c in cuts if start < c < end]
        bounds = [start, *inner, end]
        for i in range(len(bounds) - 1):
            last = i == len(bounds) - 2
            tokens.append(
                {
                    "text": text[bounds[i] : bounds[i + 1]],
                    "start": bounds[i],
                    "end": bounds[i + 1],
                    "id": len(tokens),
                    "ws": bool(tok.whitespace_) if last else False,
                }
            )
    return tokens


def _check_spans(doc: Document, spans: list[Span], schema: LabelSchema | None) -> list[Span]:
    checked: list[Span] = []
    for span in spans:
        result = check_span(doc.text, span)
        if result.span is None:
            raise TaskError(f"span {span.start}-{span.end} {span.label}: {result.note}")
        checked.append(result.span)
    checked.sort(key=lambda s: (s.start, s.end, s.label))
    if schema is not None and not schema.allows_overlap:
        for a, b in pairwise(checked):
            if b.start < a.end:
                raise TaskError(
                    f"overlapping spans {a.start}-{a.end} {a.label} and {b.start}-{b.end} {b.label} "
                    "(ner.manual cannot show them; use the spans task)"
                )
    return checked


def document_task(
    doc: Document,
    prediction: Prediction | None = None,
    schema: LabelSchema | None = None,
) -> dict[str, Any]:
    """A task for a recipe's input stream; raises :class:`TaskError` if the document or its
    pre-annotation cannot be stored (the caller reports it as that document's failure)."""
    if has_lone_surrogate(doc.text):
        raise TaskError(LONE_SURROGATE)
    try:
        # what every write does with the task: UTF-8 JSON (a datetime in meta, a lone surrogate in the
        # id or meta would otherwise fail the write itself, half-way through a batch)
        json.dumps({"id": doc.id, "meta": doc.meta}, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TaskError(f"document id or meta cannot be stored as UTF-8 JSON ({exc})") from None
    task: dict[str, Any] = {"text": doc.text, "meta": dict(doc.meta)}
    in_hash = document_input_hash(doc)
    task["_input_hash"] = in_hash
    # without a schema, a prediction with no categories is a span prediction (possibly "nothing found")
    want_spans = schema.task.is_span_task if schema is not None else bool(prediction and not prediction.categories)
    tokens_needed = False
    if prediction is not None:
        if prediction.score is not None:
            task["meta"]["score"] = prediction.score
        if prediction.model_version:
            task["meta"]["model"] = prediction.model_version
        if want_spans:
            spans = _check_spans(doc, prediction.spans, schema)
            task["spans"] = [
                {
                    "start": s.start,
                    "end": s.end,
                    "text": doc.text[s.start : s.end],
                    "label": s.label,
                    **({"score": s.score} if s.score is not None else {}),
                    "source": prediction.model_version or DEFAULT_MODEL,
                }
                for s in spans
            ]
            tokens_needed = True
        elif prediction.categories or schema is not None:
            _add_categories(task, prediction.categories, schema)
    elif schema is not None and schema.task.is_span_task:
        tokens_needed = True
    elif schema is not None and len(schema.labels) > 1:
        _add_categories(task, {}, schema)
    elif schema is not None and len(schema.labels) == 1 and not schema.task.is_span_task:
        task["label"] = schema.labels[0]
    # hashed as streamed, before tokens are added (what Prodigy's loaders do)
    task["_task_hash"] = task_hash(task, in_hash)
    if doc.id != str(in_hash):
        task[ID_KEY] = doc.id  # after hashing: the hashes stay the ones Prodigy computes for the text
    if tokens_needed:
        cut = {b for s in task.get("spans", ()) for b in (s["start"], s["end"])}
        tokens = tokenize(doc.text, cut)
        task["tokens"] = tokens
        by_start = {t["start"]: t["id"] for t in tokens}
        by_end = {t["end"]: t["id"] for t in tokens}
        for item in task.get("spans", ()):
            item["token_start"] = by_start[item["start"]]
            item["token_end"] = by_end[item["end"]]
    return task


def _add_categories(task: dict[str, Any], categories: Mapping[str, float], schema: LabelSchema | None) -> None:
    labels = list(schema.labels) if schema is not None and schema.labels else sorted(categories)
    for extra in sorted(set(categories) - set(labels)):
        labels.append(extra)
    if not labels:
        return
    if len(labels) == 1:
        # one label: the binary classification interface asks "is it LABEL?"
        task["label"] = labels[0]
        if labels[0] in categories:
            task["meta"]["score"] = float(categories[labels[0]])
        return
    task["options"] = [
        {"id": label, "text": label, **({"score": float(categories[label])} if label in categories else {})}
        for label in labels
    ]
    exclusive = schema.exclusive if schema is not None else False
    if categories:
        if exclusive:
            best = max(categories, key=lambda k: categories[k])
            task["accept"] = [best]
        else:
            task["accept"] = [label for label in labels if categories.get(label, 0.0) >= 0.5]
        task["meta"].setdefault("score", float(max(categories.values())))

