"""Read a corpus of documents to import: JSONL, JSON, CSV, plain text or spaCy DocBin."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import DataError
from .model import Document

ID_KEYS = ("id", "_id", "doc_id", "document_id", "uid")
TEXT_KEYS = ("text", "Text", "TEXT", "content", "sentence", "body")

#: called with (where, reason) for each input line that yields no document
OnSkip = Callable[[str, str], None]


def _document_from_obj(obj: Any, where: str) -> Document:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = next((obj[k] for k in TEXT_KEYS if k in obj), None)
    if not isinstance(text, str):
        raise DataError(f"{where}: no text field (looked for {', '.join(TEXT_KEYS[:4])})")
    doc_id = next((obj[k] for k in ID_KEYS if obj.get(k) not in (None, "")), None)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    if doc_id is None and isinstance(meta, dict):
        doc_id = next((meta[k] for k in ID_KEYS if meta.get(k) not in (None, "")), None)
    return Document.create(text, id=doc_id, meta=meta)


def read_documents(path: str | Path, on_skip: OnSkip | None = None) -> Iterator[Document]:
    """Yield documents from ``path``; bad lines go to ``on_skip`` (or raise if none given)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"No such file: {path}")
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    readers = {
        ".jsonl": _read_jsonl,
        ".jsonl.gz": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".json": _read_json,
        ".csv": _read_csv,
        ".tsv": _read_csv,
        ".txt": _read_text,
        ".spacy": _read_docbin,
    }
    reader = readers.get(suffix.lower())
    if reader is None:
        raise DataError(f"Unknown corpus format {suffix!r} for {path}: use one of {', '.join(readers)}")

    def skip(where: str, reason: str) -> None:
        if on_skip is None:
            raise DataError(f"{where}: {reason}")
        on_skip(where, reason)

    yield from reader(path, skip)


def _read_jsonl(path: Path, skip: OnSkip) -> Iterator[Document]:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                yield _document_from_obj(json.loads(line), where)
            except json.JSONDecodeError as exc:
                skip(where, f"invalid JSON ({exc.msg})")
            except DataError as exc:
                skip(where, str(exc).split(": ", 1)[-1])


def _read_json(path: Path, skip: OnSkip) -> Iterator[Document]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    items = data if isinstance(data, list) else [data]
    for index, obj in enumerate(items):
        where = f"{path.name}[{index}]"
        try:
            yield _document_from_obj(obj, where)
        except DataError as exc:
            skip(where, str(exc).split(": ", 1)[-1])


def _read_csv(path: Path, skip: OnSkip) -> Iterator[Document]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        fieldnames = reader.fieldnames or []
        lower = {name.lower(): name for name in fieldnames}
        text_col = next((lower[k.lower()] for k in TEXT_KEYS if k.lower() in lower), None)
        if text_col is None:
            raise DataError(f"{path}: no text column (columns: {', '.join(fieldnames)})")
        id_col = next((lower[k] for k in ID_KEYS if k in lower), None)
        meta_cols = [c for c in fieldnames if c not in (text_col, id_col)]
        for lineno, row in enumerate(reader, 2):
            text = row.get(text_col)
            if not text:
                skip(f"{path.name}:{lineno}", "empty text")
                continue
            meta = {c: row[c] for c in meta_cols if row.get(c) not in (None, "")}
            yield Document.create(text, id=row.get(id_col) if id_col else None, meta=meta)


def _read_text(path: Path, skip: OnSkip) -> Iterator[Document]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield Document.create(text, meta={"source": path.name, "line": lineno})


def _read_docbin(path: Path, skip: OnSkip) -> Iterator[Document]:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("xx")
    for index, doc in enumerate(DocBin().from_disk(path).get_docs(nlp.vocab)):
        if doc.text.strip():
            yield Document.create(doc.text, meta={"source": path.name, "index": index})
        else:
            skip(f"{path.name}[{index}]", "empty text")
