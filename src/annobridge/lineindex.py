"""Which lines of a JSON Lines file belong together, without holding the file in memory.

A file-based tool often writes several lines per document (one per answer, per annotator, per
version) and does not promise they are adjacent. :class:`LineIndex` reads the file once as bytes
and keeps, per non-blank line, three integers: its byte offset, its line number and its group key
(what the adapter's ``key`` function makes of the raw line). That is 24 bytes a line, ~7 MB for
300k lines, where the parsed values of the same file take hundreds of MB.

Reading then yields one group's lines at a time, groups in order of first appearance, lines in
file order. When every group's lines are adjacent the file is simply read again in order; otherwise
each group's lines are read at their offsets. A gzipped file is decompressed to a temporary file for
that (deleted afterwards); the adjacent case streams it again instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .jsonio import decode_line, is_blank, is_gzip, open_binary

__all__ = ["LineIndex"]

#: keys of lines that belong to no group (``key`` gave None) lie above every key stored: each such line
#: is a group of its own, which the reading pass reports (its value is a BadLine or what the adapter skips)
_LONE = 1 << 62


class LineIndex:
    """The group key of every non-blank line of a JSON Lines file (plain or gzipped), as integer arrays.

    ``key(line)`` gets a raw line (bytes, without its line ending) and returns its group's key, any
    integer, or None for a line that belongs to no group. Keys too large for 62 bits are kept apart and
    still grouped. Build with :meth:`build`; :meth:`fresh` says whether the file is unchanged since.
    """

    def __init__(self, path: Path, stat: os.stat_result, offsets: array[int], linenos: array[int],
                 keys: array[int]) -> None:
        self.path = path
        self._stat = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        self.offsets = offsets
        self.linenos = linenos
        self.keys = keys

    @classmethod
    def build(cls, path: str | os.PathLike[str], key: Callable[[bytes], int | None]) -> LineIndex:
        path = Path(path)
        stat = path.stat()
        offsets, linenos, keys = array("q"), array("q"), array("q")
        big: dict[int, int] = {}  # keys that do not fit 62 bits: kept apart, still grouped
        offset = 0
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                start = offset
                offset += len(raw)
                if is_blank(raw):
                    continue
                found = key(raw.rstrip(b"\r\n"))
                if found is None:
                    found = _LONE + lineno
                elif not -_LONE < found < _LONE:
                    found = big.setdefault(found, -_LONE - 1 - len(big))
                offsets.append(start)
                linenos.append(lineno)
                keys.append(found)
        return cls(path, stat, offsets, linenos, keys)

    def fresh(self) -> bool:
        """False once the file has changed since it was indexed."""
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino) == self._stat

    def count(self) -> int:
        """Distinct keys among the lines that have one (lines whose key was None are not counted)."""
        import numpy as np

        keys = np.frombuffer(self.keys, dtype=np.int64)
        return len(np.unique(keys[keys < _LONE]))

    def _order(self) -> Any:
        """Line positions grouped by key, groups in order of first appearance, lines in file order;
        ``None`` when that is the file's own order."""
        import numpy as np

        keys = np.frombuffer(self.keys, dtype=np.int64)
        if len(keys) < 2:
            return None
        run_starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        run_keys = keys[run_starts]
        if len(np.unique(run_keys)) == len(run_keys):
            return None
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        return np.argsort(rank[inverse.ravel()], kind="stable")

    def groups(self, *, objects_only: bool = False) -> Iterator[list[tuple[str, Any]]]:
        """For each group, its lines as ``(where, parsed value or BadLine)``; ``where`` is ``name:lineno``."""
        order = self._order()
        if order is None:
            yield from self._adjacent_groups(objects_only)
            return
        name, keys, offsets, linenos = self.path.name, self.keys, self.offsets, self.linenos
        with self._seekable() as fh:
            group: list[tuple[str, Any]] = []
            current = None
            for position in order.tolist():
                if keys[position] != current and group:
                    yield group
                    group = []
                current = keys[position]
                fh.seek(offsets[position])
                raw = fh.readline().rstrip(b"\r\n")
                group.append((f"{name}:{linenos[position]}", decode_line(raw, objects_only=objects_only)))
            if group:
                yield group

    def _adjacent_groups(self, objects_only: bool) -> Iterator[list[tuple[str, Any]]]:
        name, keys, linenos = self.path.name, self.keys, self.linenos
        total = len(keys)
        position = 0
        group: list[tuple[str, Any]] = []
        current = None
        with open_binary(self.path) as fh:
            for lineno, raw in enumerate(fh, 1):
                if position >= total or linenos[position] != lineno:
                    continue  # a blank line (not indexed)
                key = keys[position]
                position += 1
                if key != current and group:
                    yield group
                    group = []
                current = key
                group.append((f"{name}:{lineno}", decode_line(raw.rstrip(b"\r\n"), objects_only=objects_only)))
        if group:
            yield group

    @contextlib.contextmanager
    def _seekable(self) -> Iterator[IO[bytes]]:
        if not is_gzip(self.path):
            with open(self.path, "rb") as fh:
                yield fh
            return
        # seeking in a gzip stream decompresses from the start each time: use a plain copy
        with tempfile.TemporaryFile() as tmp:
            with open_binary(self.path) as src:
                shutil.copyfileobj(src, tmp, 1 << 20)
            tmp.seek(0)
            yield tmp
