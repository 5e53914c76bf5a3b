"""Read a corpus of documents to import: JSONL, JSON, CSV, plain text, CoNLL/IOB or spaCy DocBin.

Every reader works line by line on bytes (:mod:`annobridge.jsonio`): one bad byte, one line that
is not JSON, costs that line, reported with its number, never the rest of the file. A file whose
name says nothing (``corpus.dat``) is read by what it holds (:mod:`annobridge.sniff`).

``path`` may be an fsspec URL (``s3://bucket/corpus.jsonl.gz``, ``file:///abs/corpus.csv``,
:mod:`annobridge.remote`). JSON Lines and CSV/TSV are streamed from the store, gzip or not (by
content); every other format is read from a temporary local copy, by the same readers.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from . import remote
from .errors import DataError
from .jsonio import (
    BOM,
    LONE_SURROGATE,
    BadLine,
    decode_line,
    has_lone_surrogate,
    is_blank,
    read_json_items,
    read_json_lines,
)
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
    if has_lone_surrogate(text):
        raise DataError(f"{where}: {LONE_SURROGATE}")
    doc_id = next((obj[k] for k in ID_KEYS if obj.get(k) not in (None, "")), None)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    if doc_id is None and isinstance(meta, dict):
        doc_id = next((meta[k] for k in ID_KEYS if meta.get(k) not in (None, "")), None)
    return Document.create(text, id=doc_id, meta=meta)


#: formats read straight from a remote store, line by line; the others from a local copy
_STREAMED = (".jsonl", ".jsonl.gz", ".ndjson", ".csv", ".tsv")


def _suffix(name: str) -> str:
    suffixes = PurePosixPath(name).suffixes
    return "".join(suffixes[-2:]) if name.endswith(".gz") else (suffixes[-1] if suffixes else "")


def read_documents(path: str | Path, on_skip: OnSkip | None = None) -> Iterator[Document]:
    """Yield documents from ``path`` (a path or URL); bad lines go to ``on_skip`` (or raise if none given)."""
    if remote.is_remote(path):
        yield from _read_remote(str(path), on_skip)
        return
    path = remote.local_path(path)
    if not path.exists():
        raise DataError(f"No such file: {path}")
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    readers: dict[str, Callable[[Path, OnSkip], Iterator[Document]]] = {
        ".jsonl": _read_jsonl,
        ".jsonl.gz": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".json": _read_json,
        ".json.gz": _read_json,
        ".csv": _read_csv,
        ".tsv": _read_csv,
        ".txt": _read_text,
        ".spacy": _read_docbin,
        ".conll": _read_conll,
        ".iob": _read_conll,
        ".bio": _read_conll,
    }
    reader = _reader_by_content(path, suffix.lower()) or readers.get(suffix.lower())
    if reader is None:
        raise DataError(f"Unknown corpus format {suffix!r} for {path}: use one of {', '.join(readers)}")

    def skip(where: str, reason: str) -> None:
        if on_skip is None:
            raise DataError(f"{where}: {reason}")
        on_skip(where, reason)

    yield from reader(path, skip)


def _read_remote(url: str, on_skip: OnSkip | None) -> Iterator[Document]:
    if not remote.exists(url):
        raise DataError(f"No such file: {url}")
    name = remote.basename(url)
    suffix = _suffix(name).lower()
    if suffix not in _STREAMED:
        with remote.local_copy(url) as local:  # the copy keeps the name: messages read the same
            yield from read_documents(local, on_skip)
        return

    def skip(where: str, reason: str) -> None:
        if on_skip is None:
            raise DataError(f"{where}: {reason}")
        on_skip(where, reason)

    if suffix in (".csv", ".tsv"):
        yield from _read_csv(url, skip)
    else:
        yield from _documents(_remote_json_lines(url, name), skip)


def _remote_json_lines(url: str, name: str) -> Iterator[tuple[str, Any]]:
    """:func:`annobridge.jsonio.read_json_lines` over a remote file's stream."""
    with remote.open_binary(url) as fh:
        for lineno, raw in enumerate(fh, 1):
            if is_blank(raw):
                continue
            yield f"{name}:{lineno}", decode_line(raw.rstrip(b"\r\n"))


def _reader_by_content(path: Path, suffix: str) -> Callable[[Path, OnSkip], Iterator[Document]] | None:
    """A reader for what the file holds, where its name may mislead: CoNLL tokens in a ``.txt``, a
    DocBin or JSONL under an unknown suffix. JSON, CSV and ``.spacy`` names are taken at their word."""
    if suffix in (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz", ".csv", ".tsv", ".spacy"):
        return None
    from .sniff import Kind, sniff

    kind = sniff(path)
    if kind == Kind.CONLL:
        return _read_conll
    if kind == Kind.DOCBIN:
        return _read_docbin
    if kind in (Kind.PRODIGY_TASKS, Kind.RECORDS, Kind.DOCUMENTS):
        return _read_jsonl
    if kind == Kind.TABLE and suffix != ".txt":
        return _read_csv
    return None


def _read_jsonl(path: Path, skip: OnSkip) -> Iterator[Document]:
    yield from _documents(read_json_lines(path), skip)


def _read_json(path: Path, skip: OnSkip) -> Iterator[Document]:
    try:
        items = list(read_json_items(path))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    yield from _documents(iter(items), skip)


def _documents(items: Iterator[tuple[str, Any]], skip: OnSkip) -> Iterator[Document]:
    for where, obj in items:
        if isinstance(obj, BadLine):
            skip(where, obj.reason)
            continue
        try:
            yield _document_from_obj(obj, where)
        except DataError as exc:
            skip(where, str(exc).split(": ", 1)[-1])


def _decoded_lines(path: Path | str, skip: OnSkip) -> Iterator[tuple[int, str]]:
    """``(lineno, text)`` of each line that is UTF-8 (newline kept, for csv); the others are skipped."""
    name = remote.basename(path)
    with remote.open_binary(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                skip(f"{name}:{lineno}", "line is not UTF-8")


def _read_csv(path: Path | str, skip: OnSkip) -> Iterator[Document]:
    name = remote.basename(path)
    delimiter = "\t" if PurePosixPath(name).suffix.lower() == ".tsv" else ","
    linenos: list[int] = [0]

    def lines() -> Iterator[str]:
        for lineno, line in _decoded_lines(path, skip):
            linenos[0] = lineno
            yield line

    reader = csv.DictReader(lines(), delimiter=delimiter)
    fieldnames = reader.fieldnames or []
    lower = {name.lower(): name for name in fieldnames}
    text_col = next((lower[k.lower()] for k in TEXT_KEYS if k.lower() in lower), None)
    if text_col is None:
        raise DataError(f"{path}: no text column (columns: {', '.join(fieldnames)})")
    id_col = next((lower[k] for k in ID_KEYS if k in lower), None)
    meta_cols = [c for c in fieldnames if c not in (text_col, id_col)]
    for row in reader:
        where = f"{name}:{linenos[0]}"
        text = row.get(text_col)
        if not text:
            skip(where, "empty text")
            continue
        if has_lone_surrogate(text):
            skip(where, LONE_SURROGATE)
            continue
        meta = {c: row[c] for c in meta_cols if row.get(c) not in (None, "")}
        yield Document.create(text, id=row.get(id_col) if id_col else None, meta=meta)


def _read_text(path: Path, skip: OnSkip) -> Iterator[Document]:
    for lineno, line in _decoded_lines(path, skip):
        text = line.rstrip("\r\n")
        if text.strip():
            yield Document.create(text, meta={"source": path.name, "line": lineno})


def _read_conll(path: Path, skip: OnSkip) -> Iterator[Document]:
    """Each sentence's tokens, joined by single spaces, as a document to annotate (the tags are not kept:
    a CoNLL file with its tags is a source for ``export``, ``conll:PATH``)."""
    from .adapters.conll import read_conll

    for where, sentence in read_conll(path):
        if isinstance(sentence, BadLine):
            skip(where, sentence.reason)
            continue
        yield Document.create(sentence.text, meta={"source": path.name, "line": sentence.line})


def _read_docbin(path: Path, skip: OnSkip) -> Iterator[Document]:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("xx")
    for index, doc in enumerate(DocBin().from_disk(path).get_docs(nlp.vocab)):
        if doc.text.strip():
            yield Document.create(doc.text, meta={"source": path.name, "index": index})
        else:
            skip(f"{path.name}[{index}]", "empty text")
