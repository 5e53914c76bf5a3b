"""What a file holds, told from its first few KB rather than its name.

A bare path (no ``scheme:``) is given the adapter its content fits: a Prodigy export named
``data.jsonl`` is read as Prodigy, not as annobridge records that all lack annotations. Only the
head of the file is read (gzip is decompressed on the fly), so sniffing a 10 GB file is instant.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from enum import Enum
from pathlib import Path

__all__ = ["SCHEMES", "Kind", "sniff"]

#: bytes read from the head of a file to decide
HEAD_BYTES = 64 * 1024
#: complete JSON lines looked at (a mixed file is judged by its first few)
HEAD_LINES = 5


class Kind(str, Enum):
    PRODIGY_TASKS = "prodigy tasks (JSONL)"
    RECORDS = "annobridge records (JSONL)"
    DOCUMENTS = "documents (JSONL: text, id, meta)"
    SQLITE = "SQLite database"
    CONLL = "CoNLL/IOB tokens"
    DOCBIN = "spaCy DocBin"
    DOCBIN_FOLDER = "folder of spaCy DocBins"
    TABLE = "CSV/TSV table"
    TEXT = "plain text"


#: the adapter scheme each kind opens with; "file" is a corpus for ``annobridge import``, no adapter
SCHEMES: dict[Kind, str] = {
    Kind.PRODIGY_TASKS: "prodigy",
    Kind.SQLITE: "prodigy",
    Kind.RECORDS: "jsonl",
    Kind.DOCUMENTS: "jsonl",
    Kind.CONLL: "conll",
    Kind.DOCBIN: "spacy",
    Kind.DOCBIN_FOLDER: "spacy",
    Kind.TABLE: "file",
    Kind.TEXT: "file",
}

#: keys only Prodigy writes (or spaCy-side JSONL Prodigy reads: ``cats``, ``spans`` with ``label``)
_PRODIGY_KEYS = frozenset({"_input_hash", "_task_hash", "answer", "_view_id", "tokens", "_session_id",
                           "_annotator_id", "_timestamp", "accept", "options", "cats"})
_TAG = re.compile(r"^(?:O|[BIESLU]-\S.*)$")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(HEAD_BYTES)
        except (OSError, EOFError, zlib.error):
            return b""
    return head


def sniff(path: str | os.PathLike[str]) -> Kind | None:
    """The kind of data at ``path``, or ``None`` when the head fits nothing (or there is no file)."""
    path = Path(path)
    if path.is_dir():
        return Kind.DOCBIN_FOLDER if any(path.rglob("*.spacy")) else None
    if not path.is_file():
        return None
    try:
        head = _head(path)
    except OSError:
        return None
    if not head:
        return None
    if head.startswith(_SQLITE_MAGIC):
        return Kind.SQLITE
    if _is_docbin(head):
        return Kind.DOCBIN
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    # a cut in the middle of a multi-byte character is not the file's fault
    text = head.decode("utf-8", errors="replace")
    complete = text if len(head) < HEAD_BYTES else text[: text.rfind("\n") + 1] or text
    stripped = complete.lstrip()
    if stripped.startswith("{"):
        return _json_lines_kind(complete)
    if stripped.startswith("["):
        return _json_array_kind(stripped)
    lines = complete.splitlines()
    if _is_conll(lines):
        return Kind.CONLL
    if _is_table(lines):
        return Kind.TABLE
    return None


def _is_docbin(head: bytes) -> bool:
    # DocBin.to_bytes is zlib(msgpack({"version", "attrs", "tokens", ...})): the zlib header, then the keys
    if len(head) < 2 or head[0] != 0x78 or (head[0] * 256 + head[1]) % 31:
        return False
    try:
        inner = zlib.decompressobj().decompress(head, 4096)
    except zlib.error:
        return False
    return b"attrs" in inner and b"tokens" in inner


def _kind_of(obj: object) -> Kind | None:
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    annotations = obj.get("annotations")
    if isinstance(annotations, list) and (not annotations or isinstance(annotations[0], dict)) and "text" in obj:
        return Kind.RECORDS
    if "predictions" in obj and "text" in obj:
        return Kind.RECORDS
    if keys & _PRODIGY_KEYS:
        return Kind.PRODIGY_TASKS
    spans = obj.get("spans")
    if isinstance(obj.get("label"), str) or (isinstance(spans, list) and spans and isinstance(spans[0], dict)):
        return Kind.PRODIGY_TASKS  # a pre-annotated input task (doccano's "label" is a list: not this)
    if isinstance(obj.get("text"), str):
        return Kind.DOCUMENTS
    return None


def _vote(kinds: list[Kind | None]) -> Kind | None:
    found = [k for k in kinds if k is not None]
    if not found:
        return None
    # one Prodigy-looking line makes the file Prodigy's (a raw input line alone looks like a document)
    for kind in (Kind.RECORDS, Kind.PRODIGY_TASKS):
        if kind in found:
            return kind
    return found[0]


def _json_lines_kind(text: str) -> Kind | None:
    kinds: list[Kind | None] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            kinds.append(_kind_of(json.loads(line)))
        except (ValueError, RecursionError):
            continue
        if len(kinds) >= HEAD_LINES:
            break
    return _vote(kinds)


def _json_array_kind(text: str) -> Kind | None:
    decoder = json.JSONDecoder()
    pos = text.find("{")
    kinds: list[Kind | None] = []
    while pos >= 0 and len(kinds) < HEAD_LINES:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        kinds.append(_kind_of(obj))
        pos = text.find("{", end)
    return _vote(kinds)


def _is_conll(lines: list[str]) -> bool:
    tokens = tagged = entities = 0
    for line in lines[:400]:
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p for p in parts if p.strip()]
        if parts and parts[0] == "-DOCSTART-":
            continue
        tokens += 1
        if len(parts) >= 2 and _TAG.match(parts[-1].strip()):
            tagged += 1
            entities += parts[-1].strip() != "O"
    # nearly every token line ends in a tag; a table of "x,O" rows would not split into columns
    return tokens > 0 and tagged >= 0.95 * tokens and (entities > 0 or tokens >= 3)


def _is_table(lines: list[str]) -> bool:
    if len(lines) < 1:
        return False
    header = lines[0]
    has_text_column = re.search(r"(?i)\b(text|content|sentence|body)\b", header) is not None
    return has_text_column and any(sep in header for sep in (",", "\t"))
