"""One reader for JSON Lines, JSON and their gzipped forms, shared by every file-based adapter.

Files are read as **bytes**, one line at a time, and each line is decoded on its own. A text-mode
reader decodes ahead in 8 KB chunks: one invalid byte then raises far from its line and ends the
file there, silently dropping every line after it. Here an invalid byte, a line that is not JSON,
JSON nested too deeply for the parser, or a value that is not an object costs exactly that line,
reported with its 1-based line number; the rest of the file is read.

``\\r\\n`` endings and a UTF-8 byte-order mark (at the start of the file, or of any line, as
``cat`` of two Windows files leaves it) are accepted.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import srsly

from .errors import AdapterError

if TYPE_CHECKING:
    from .model import Document

__all__ = [
    "BOM",
    "LONE_SURROGATE",
    "BadLine",
    "append_json_lines",
    "decode_line",
    "has_lone_surrogate",
    "is_blank",
    "is_gzip",
    "is_json_array_file",
    "json_line",
    "open_binary",
    "read_items",
    "read_json_items",
    "read_json_lines",
    "rewrite_json_lines",
]

BOM = b"\xef\xbb\xbf"
#: the skip reason for a text holding a ``"\\ud800"``-style escape no UTF-8 encoder accepts
LONE_SURROGATE = "text contains a lone surrogate (not valid Unicode)"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line (or JSON item) that yields no value; ``reason`` is what the skip report says."""

    reason: str

    def __str__(self) -> str:
        return self.reason


def is_blank(raw: bytes) -> bool:
    """A line that holds nothing to read: empty, whitespace, or a byte-order mark and whitespace."""
    if raw[:1] == b"{":  # nearly every line: no copy
        return False
    stripped = raw.strip()
    return not stripped or stripped == BOM


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with gzip's magic bytes (whatever its name says)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == _GZIP_MAGIC
    except OSError:
        return False


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip (recognised by content, not by name)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_json_array(chunks: Iterable[bytes], skip: int = 0, what: str = "The download") -> Iterator[Any]:
    """Yield the items of a JSON array arriving in byte chunks, holding one item (plus a chunk) in memory.

    ``skip`` items are read but not yielded (a download restarted after a broken connection). A body that
    is not an array, or ends inside an item (a truncated download), raises :class:`~annobridge.errors.AdapterError`.
    """
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    pos = 0
    started = False
    index = 0
    for chunk in chunks:
        buf = buf[pos:] + utf8.decode(chunk)
        pos = 0
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buf):
                break
            if not started:
                if buf[pos] != "[":
                    raise AdapterError(f"{what} is not a JSON array.")
                started = True
                pos += 1
                continue
            if buf[pos] == "]":
                return
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                break  # the item continues in the next chunk
            pos = end
            if index >= skip:
                yield item
            index += 1
    buf = buf[pos:] + utf8.decode(b"", final=True)
    if buf.strip() not in ("", "]"):
        raise AdapterError(f"{what} ended in the middle of an item (truncated download).")


def batches_by_encoded_size(values: Iterable[str], budget: int) -> Iterator[list[str]]:
    """Split strings into lists whose URL-encoded JSON stays under ``budget`` characters (query-string caps)."""
    from urllib.parse import quote

    batch: list[str] = []
    size = 0
    for value in values:
        cost = len(quote(json.dumps(value))) + 3
        if batch and size + cost > budget:
            yield batch
            batch, size = [], 0
        batch.append(value)
        size += cost
    if batch:
        yield batch


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot travel as strict JSON (NaN/Infinity, non-JSON types, lone surrogates), or None.

    Python's ``json.dumps`` writes ``NaN`` by default and servers written in Python read it back, so a
    tool would store a value that its own export's JSON readers (browsers, other languages) refuse.
    """
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        if "Out of range float" in str(exc):
            return "a number is NaN or Infinity, which JSON cannot carry"
        return str(exc)
    except TypeError as exc:
        return str(exc)
    if has_lone_surrogate(encoded):
        return "a string holds a lone UTF-16 surrogate, which no UTF-8 text can carry"
    return None


def document_problem(doc: Document) -> str | None:
    """Why a :class:`~annobridge.model.Document` cannot be imported into any tool, or None.

    Adapters call it per document before a batch is sent, so that one such document fails alone.
    """
    if not isinstance(doc.id, str) or not doc.id:
        return "the document id is empty"
    if not isinstance(doc.text, str):
        return f"the text is a {type(doc.text).__name__}, not a string"
    if has_lone_surrogate(doc.text) or has_lone_surrogate(doc.id):
        return "the text or id holds a lone UTF-16 surrogate, which no UTF-8 text can carry"
    problem = json_problem(doc.meta)
    return f"meta is not JSON: {problem}" if problem else None


def has_lone_surrogate(text: str) -> bool:
    """True for a string no UTF-8 encoder can write: JSON's ``\\ud800`` escapes decode to such strings."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _loads(text: str | bytes) -> Any:
    """Parse with ujson (srsly) for speed; on failure let the stdlib parser say what is wrong."""
    try:
        return srsly.json_loads(text)
    except ValueError:
        # ujson's messages are terse ("Expected object key") and it has a depth limit of its own:
        # the stdlib parser gives the position, or a RecursionError for nesting, handled by the caller
        return json.loads(text)


def decode_line(raw: bytes, *, objects_only: bool = True, what: str = "line") -> Any:
    """One raw line (without its newline) as a parsed value, or a :class:`BadLine` saying why not.

    Reasons carry no positions: the export report counts skips by reason, and "invalid JSON" should
    be one row there, not one per column. The line number is in ``where``.
    """
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadLine(f"{what} is not UTF-8")
    try:
        value = _loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(f"invalid JSON ({exc.msg})")
    except RecursionError:
        return BadLine("invalid JSON (nested too deeply to read)")
    except ValueError as exc:  # e.g. a number too big for either parser
        return BadLine(f"invalid JSON ({exc})")
    if objects_only and not isinstance(value, dict):
        return BadLine(f"expected a JSON object, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def read_json_lines(
    path: str | os.PathLike[str], *, name: str | None = None, objects_only: bool = True
) -> Iterator[tuple[str, Any]]:
    """``(where, value or BadLine)`` for every non-blank line; ``where`` is ``name:lineno`` (1-based)."""
    label = name or Path(path).name
    with open_binary(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            if is_blank(raw):
                continue
            yield f"{label}:{lineno}", decode_line(raw.rstrip(b"\r\n"), objects_only=objects_only)


def read_json_items(
    path: str | os.PathLike[str], *, name: str | None = None, objects_only: bool = True
) -> Iterator[tuple[str, Any]]:
    """``(where, value or BadLine)`` for each item of a ``.json`` file holding an array (or one object).

    A whole-file JSON document cannot be read in parts: a file that does not decode or parse raises
    :class:`ValueError` with the reason. A file that is really JSON Lines under a ``.json`` name
    (common) is read as such.
    """
    label = name or Path(path).name
    with open_binary(path) as fh:
        data = fh.read()
    if data.startswith(BOM):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{label}: not valid UTF-8 (line {line})") from None
    try:
        value = _loads(text)
    except RecursionError:
        raise ValueError(f"{label}: invalid JSON (nested too deeply to read)") from None
    except json.JSONDecodeError as exc:
        if _looks_like_json_lines(text):
            yield from read_json_lines(path, name=name, objects_only=objects_only)
            return
        raise ValueError(f"{label}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:
        raise ValueError(f"{label}: invalid JSON ({exc})") from None
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        where = f"{label}[{index}]"
        if objects_only and not isinstance(item, dict):
            yield where, BadLine(f"expected a JSON object, got {_type_name(item)}")
        else:
            yield where, item


def _looks_like_json_lines(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict) and text.count("\n") >= 1
    except (ValueError, RecursionError):
        return False


def _stem(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def is_json_array_file(path: str | os.PathLike[str]) -> bool:
    """True for a name that :func:`read_items` reads as one JSON document (``.json``, ``.json.gz``)."""
    return _stem(Path(path)).endswith(".json")


def json_line(value: Any) -> bytes:
    """``value`` as one JSON Lines line: UTF-8 JSON, non-ASCII characters as they are, newline included."""
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")


def append_json_lines(path: str | os.PathLike[str], values: Iterable[Any]) -> int:
    """Append ``values`` to a JSON Lines file as :func:`json_line` lines, all of them or none; returns how many.

    The file and its folders are created when missing. Every value is encoded before the file is touched
    (one that is not JSON raises first), the lines go out in one write, and a write that fails (a full
    disk) is cut back to the file's old length, so no half line is left for the next reader. A last line
    without its newline gets one first: the new lines never run into it.
    """
    target = Path(path)
    lines = [json_line(value) for value in values]
    data = b"".join(lines)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a+b") as fh:
        start = fh.seek(0, os.SEEK_END)
        if start:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                data = b"\n" + data
        try:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            fh.truncate(start)
            raise
    return len(lines)


def read_items(
    path: str | os.PathLike[str], *, name: str | None = None, objects_only: bool = True
) -> Iterator[tuple[str, Any]]:
    """JSON Lines (``.jsonl``, ``.ndjson``, anything else) or a ``.json`` array, gzipped or not."""
    if is_json_array_file(path):
        return read_json_items(path, name=name, objects_only=objects_only)
    return read_json_lines(path, name=name, objects_only=objects_only)


def rewrite_json_lines(
    path: str | os.PathLike[str],
    edit: Callable[[Any], Iterable[Any] | None],
    *,
    then: Callable[[], Iterable[Any]] = tuple,
) -> None:
    """Rewrite a JSON Lines file line by line, atomically: readers see the old file or the new one.

    ``edit(value)`` gets each non-blank line's value (a :class:`BadLine` for one that does not parse)
    and returns None to keep the line byte for byte (a missing last newline added), or the values to
    write in its place as :func:`json_line` lines (an empty list drops the line). ``then()`` is called
    after the last line, for values to append. A missing file is read as an empty one (it is created,
    with its folders); a gzipped one is read and written back plain; blank lines are dropped.
    """
    from .atomic import atomic_open

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb", encoding=None) as out:
        if target.exists():
            with open_binary(target) as fh:
                for raw in fh:
                    if is_blank(raw):
                        continue
                    values = edit(decode_line(raw.rstrip(b"\r\n")))
                    if values is None:
                        out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                    else:
                        out.writelines(json_line(value) for value in values)
        out.writelines(json_line(value) for value in then())
