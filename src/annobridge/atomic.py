"""Atomic file output: a file or folder appears complete, or the previous one stays.

Everything annobridge writes goes through here (a remote URL through
:mod:`annobridge.remote`). A file is written to a hidden temporary sibling in
the same folder (so the rename cannot cross file systems), flushed and
fsynced, then ``os.replace``-d over the target. A folder (an export) is built
the same way as a sibling folder and swapped in with two renames; the old one
is removed only after the new one is in place.

An interrupted write (Ctrl-C, SIGTERM, a crash, a full disk) leaves the
previous state plus, at worst, a ``.<name>.*.tmp`` sibling that the next run
of the same write removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "replace_dir", "staging_dir"]

_TMP_SUFFIX = ".tmp"


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}."


def _clean_stale(target: Path) -> None:
    """Remove temporaries an interrupted earlier write of ``target`` left behind."""
    parent = target.parent
    if not parent.is_dir():
        return
    prefix = _tmp_prefix(target)
    for entry in parent.iterdir():
        if entry.name.startswith(prefix) and entry.name.endswith(_TMP_SUFFIX):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()


def _fsync_dir(path: Path) -> None:
    # the rename itself must reach the disk too; not possible on every platform
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open ``path`` for writing; it is replaced only when the ``with`` block ends without error.

    ``mode`` is ``"w"`` (text) or ``"wb"``. On any exception, KeyboardInterrupt included, the
    temporary file is removed and ``path`` keeps its previous content (or stays absent).

    ``path`` may be a URL: ``file://`` names a local path; ``s3://`` and other fsspec URLs are
    uploaded in one put when complete (:func:`annobridge.remote.atomic_open`).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    if isinstance(path, str) and "://" in path:
        from . import remote

        if remote.is_remote(path):
            with remote.atomic_open(path, mode, encoding=encoding) as remote_fh:
                yield remote_fh
            return
        path = remote.local_path(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=_TMP_SUFFIX, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        fh = fd_writer(fd, mode, encoding)
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes 0600; give the file the usual mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def fd_writer(fd: int, mode: str, encoding: str | None) -> IO[Any]:
    """A temp file's descriptor opened for ``mode`` ("w": text, newlines kept as written; "wb": bytes)."""
    if "b" in mode:
        return os.fdopen(fd, "wb")
    return os.fdopen(fd, "w", encoding=encoding, newline="")


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb", encoding=None) as fh:
        fh.write(data)


def staging_dir(target: str | os.PathLike[str]) -> Path:
    """A fresh, empty sibling folder of ``target`` to build its next content in.

    Temporaries of earlier interrupted runs for the same target are removed first.
    """
    target_path = Path(target)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(target_path)
    return Path(tempfile.mkdtemp(prefix=_tmp_prefix(target_path), suffix=_TMP_SUFFIX, dir=target_path.parent))


def replace_dir(staged: Path, target: str | os.PathLike[str]) -> None:
    """Swap the complete folder ``staged`` in as ``target``.

    Two renames: the old folder (if any) moves to a temporary sibling, the staged one takes its
    name, then the old one is deleted. Between the two renames ``target`` is briefly absent, never
    half-written; a crash there leaves the old export intact beside it, which the next run removes.
    """
    target_path = Path(target)
    old: Path | None = None
    if target_path.exists() or target_path.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target_path), suffix=_TMP_SUFFIX, dir=target_path.parent))
        old.rmdir()
        os.replace(target_path, old)
    try:
        os.replace(staged, target_path)
    except BaseException:
        if old is not None:
            os.replace(old, target_path)
        raise
    _fsync_dir(target_path.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.unlink()
