"""Remote paths: every file annobridge reads or writes may be an fsspec URL.

``s3://bucket/key``, ``gs://``, ``az://`` (any protocol fsspec knows) and ``file://`` work wherever a
path does: the corpus of ``annobridge import``, the active-learning pool, ``export --out`` and
``pull -o``. The URL is parsed here, once; the rest of annobridge asks :func:`is_remote` and calls
:func:`open_binary`, :func:`atomic_open` or :func:`publish_export`.

``file://`` URLs are local paths (the usual atomic rename applies). Anything else goes through
fsspec and the protocol's package (``s3fs``, ``gcsfs``, ``adlfs``), which are optional:
``pip install 'annobridge[s3]'`` (``[gcs]``, ``[azure]``); a missing one is a
:class:`RemoteDependencyError` with that line.

Credentials and endpoints come from where the protocol's own SDK looks (for S3: ``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``, ``~/.aws``, ``AWS_ENDPOINT_URL`` for MinIO and other S3-compatible stores)
and from fsspec's configuration (``FSSPEC_S3_<OPTION>`` variables, ``~/.config/fsspec/*.json``,
``fsspec.config.conf``); see ``docs/remote.md``.

What is atomic on a store without rename
----------------------------------------
* **One file** (``pull -o s3://b/records.jsonl``) is written to a local temporary file and
  uploaded in one ``put`` once complete. An object store makes an object visible only when its
  upload completes (S3 PUT and multipart upload alike), so readers see the old object or the
  new one; an interrupted run uploads nothing. On other fsspec file systems the file is put
  under a temporary name beside the target and moved over it.
* **An export folder** is built locally as usual, then uploaded under a fresh version prefix
  ``URL/v-<UTC time>-<random>/`` and published by writing ``URL/_annobridge_export.json`` last:
  the manifest names the version and every file with its size and sha256. Readers trust only
  the manifest (:func:`download_export`), so shards of an earlier export are never mixed in, and
  an interrupted upload leaves the previous manifest, and the data it names, as they were.
  After publishing, versions older than the previous one are deleted (the previous one is kept,
  for readers that fetched the old manifest a moment ago).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from .errors import AdapterError, DataError, MissingDependencyError, UsageError

__all__ = [
    "MANIFEST_NAME",
    "RemoteDependencyError",
    "atomic_open",
    "basename",
    "check_export_target",
    "download_export",
    "exists",
    "is_remote",
    "local_copy",
    "local_path",
    "open_binary",
    "publish_export",
    "read_manifest",
]

log = logging.getLogger(__name__)

#: the object naming the current version of a remote export; written last
MANIFEST_NAME = "_annobridge_export.json"
MANIFEST_FORMAT = "annobridge-export"
_VERSION_RE = re.compile(r"^v-\d{8}T\d{12}Z-[0-9a-f]{8}$")  # v-<UTC time to the microsecond>-<random>
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")  # two letters at least: C:\ is a drive
_LOCAL_SCHEMES = frozenset({"file", "local"})
#: protocol -> annobridge extra that installs its package
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
_PACKAGES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}
#: stores where an object appears only when its upload completes (no rename needed, none available)
_OBJECT_STORES = frozenset(_EXTRAS)
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class RemoteDependencyError(MissingDependencyError):
    """A URL's protocol needs a package that is not installed (``s3fs`` for ``s3://``)."""

    def __init__(self, protocol: str, package: str, extra: str | None) -> None:
        requirement = f"annobridge[{extra}]" if extra else package
        super().__init__(f"{protocol}://", package, requirement)
        checkout = f" (from a checkout of annobridge: pip install -e '.[{extra}]')" if extra else ""
        self.args = (f"'{protocol}://' paths need the '{package}' package: {self.install_hint}{checkout}",)


def _scheme(path: str | os.PathLike[str]) -> str | None:
    if not isinstance(path, str):
        return None
    match = _SCHEME_RE.match(path)
    return match.group(1).lower() if match else None


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL other than ``file://`` (``s3://b/k``, ``gs://``, ``az://``, ``memory://``)."""
    scheme = _scheme(path)
    return scheme is not None and scheme not in _LOCAL_SCHEMES


def local_path(path: str | os.PathLike[str]) -> Path:
    """A local path as a :class:`Path`; a ``file://`` URL as the path it names."""
    scheme = _scheme(path)
    if scheme is None:
        return Path(path)
    if scheme not in _LOCAL_SCHEMES:
        raise ValueError(f"{path} is not a local path")
    parts = urlsplit(str(path))
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"{path}: a file:// URL names a local path (file:///abs/path), not host {parts.netloc!r}")
    return Path(unquote(parts.path))


def basename(path: str | os.PathLike[str]) -> str:
    """The last part of a path or URL (``corpus.jsonl.gz``), as messages name the file."""
    if is_remote(path):
        parts = urlsplit(str(path))
        return PurePosixPath(parts.path).name or parts.netloc
    return local_path(path).name


# -- file systems ------------------------------------------------------------------


def _missing(protocol: str, *, fsspec_missing: bool = False) -> RemoteDependencyError:
    extra = _EXTRAS.get(protocol)
    if extra is not None:
        return RemoteDependencyError(protocol, _PACKAGES[extra], extra)
    if fsspec_missing:
        return RemoteDependencyError(protocol, "fsspec", "remote")
    from fsspec.registry import known_implementations

    known = known_implementations.get(protocol, {})
    package = str(known.get("class", "fsspec")).split(".", 1)[0]
    error = RemoteDependencyError(protocol, package, None)
    if package == "fsspec" and known.get("err"):  # one of fsspec's own implementations: its message says what
        error.args = (f"'{protocol}://' paths need more packages: {known['err']}",)
    return error


def _filesystem(url: str) -> tuple[Any, str]:
    """``(fs, path)`` for a remote URL; the protocol's package missing raises :class:`RemoteDependencyError`."""
    protocol = _scheme(url) or ""
    try:
        import fsspec
    except ImportError:
        raise _missing(protocol, fsspec_missing=True) from None
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:
        raise _missing(protocol) from None
    except ValueError:
        raise UsageError(f"{url}: unknown protocol {protocol!r} (fsspec knows s3, gs, az, file and more)") from None
    with _errors(url):
        fs, fspath = fsspec.core.url_to_fs(url)  # applies fsspec's configuration (FSSPEC_S3_*, ~/.config/fsspec)
    return fs, fspath


@contextlib.contextmanager
def _errors(url: str) -> Iterator[None]:
    """The store's errors as annobridge's: a missing bucket or key is a usage error, not a traceback."""
    try:
        yield
    except FileNotFoundError as exc:
        raise UsageError(f"{url}: no such file, prefix or bucket ({exc})") from None
    except PermissionError as exc:
        raise UsageError(f"{url}: access denied ({exc})") from None
    except OSError as exc:
        raise AdapterError(f"{url}: {exc}") from None


def exists(path: str | os.PathLike[str]) -> bool:
    if not is_remote(path):
        return local_path(path).exists()
    url = str(path)
    fs, fspath = _filesystem(url)
    with _errors(url):
        fs.invalidate_cache()
        return bool(fs.exists(fspath))


# -- reading -----------------------------------------------------------------------


@contextlib.contextmanager
def open_binary(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """The file's bytes, local or remote, decompressed when it is gzip (by content, not by name)."""
    if not is_remote(path):
        from .jsonio import open_binary as open_local

        with open_local(local_path(path)) as fh:
            yield fh
        return
    url = str(path)
    fs, fspath = _filesystem(url)
    with _errors(url):
        raw = fs.open(fspath, "rb")
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]
        else:
            yield raw


@contextlib.contextmanager
def local_copy(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A local path holding the file: itself when local, else a temporary download with the same name."""
    if not is_remote(path):
        yield local_path(path)
        return
    url = str(path)
    fs, fspath = _filesystem(url)
    folder = Path(tempfile.mkdtemp(prefix=".annobridge-download-"))
    try:
        target = folder / (basename(url) or "download")
        with _errors(url):
            fs.get_file(fspath, str(target))
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- writing one file --------------------------------------------------------------


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open ``path`` (local or URL) for writing; it is replaced only when the ``with`` block succeeds.

    Local paths and ``file://`` URLs: :func:`annobridge.atomic.atomic_open`. A remote URL: the
    content goes to a local temporary file, uploaded in one ``put`` when the block ends without
    error (see the module's notes); on an error nothing is uploaded and the old object stays.
    """
    from .atomic import atomic_open as atomic_local

    if not is_remote(path):
        with atomic_local(local_path(path), mode, encoding=encoding) as local_fh:
            yield local_fh
        return
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    url = str(path)
    fs, fspath = _filesystem(url)
    _check_bucket(fs, fspath, url)
    fd, tmp_name = tempfile.mkstemp(prefix=".annobridge-upload-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        from .atomic import fd_writer

        with fd_writer(fd, mode, encoding) as fh:
            yield fh
        with _errors(url):
            _put(fs, tmp, fspath)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _protocol(fs: Any) -> str:
    return str(fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0])


def _check_bucket(fs: Any, fspath: str, url: str) -> None:
    """Fail before the work, not after it: an object store's bucket (container) must exist."""
    if _protocol(fs) not in _OBJECT_STORES:
        return
    bucket = fspath.split("/", 1)[0]
    with _errors(url):
        fs.invalidate_cache()
        found = fs.exists(bucket)
    if not found:
        raise UsageError(f"{url}: no bucket {bucket!r} (or no access to it): create it first")


def _put(fs: Any, local: Path, fspath: str) -> None:
    """Upload one complete file so that readers see the old content or the new, never a part."""
    if _protocol(fs) in _OBJECT_STORES:
        fs.put_file(str(local), fspath)  # the object appears when its upload completes
        return
    parent, _, name = fspath.rpartition("/")
    tmp = f"{parent}/.{name}.{secrets.token_hex(4)}.tmp" if parent else f".{name}.{secrets.token_hex(4)}.tmp"
    fs.put_file(str(local), tmp)
    try:
        fs.mv(tmp, fspath)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


# -- an export folder --------------------------------------------------------------


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def read_manifest(url: str) -> dict[str, Any] | None:
    """The published manifest of the remote export at ``url``, or None when there is none."""
    fs, root = _filesystem(url)
    with _errors(url):
        fs.invalidate_cache()
        try:
            data = fs.cat_file(_join(root, MANIFEST_NAME))
        except FileNotFoundError:
            return None
    try:
        manifest = json.loads(data)
    except ValueError:
        raise DataError(f"{_join(url, MANIFEST_NAME)} is not JSON: not an annobridge export manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{_join(url, MANIFEST_NAME)} is not an annobridge export manifest")
    return manifest


def check_export_target(url: str, force: bool) -> None:
    """Refuse a non-empty prefix that holds no annobridge export, unless ``force``.

    Unlike a local export, nothing of the user's is deleted even with ``force``: the export is
    published beside what is there, and only annobridge's own old versions are ever removed.
    """
    fs, root = _filesystem(url)
    _check_bucket(fs, root, url)
    if read_manifest(url) is not None or force:
        return
    with _errors(url):
        try:
            entries = fs.ls(root, detail=False) if fs.isdir(root) else []
        except FileNotFoundError:
            entries = []
        if fs.isfile(root):
            raise UsageError(f"--out {url} is a file, not a folder")
    if entries:
        raise UsageError(
            f"--out {url} is not empty and holds no annobridge export. Choose another prefix, or pass "
            "--force to publish the export beside what is there (nothing there is deleted)."
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _new_version() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return f"v-{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"


def publish_export(local_dir: str | os.PathLike[str], url: str) -> dict[str, Any]:
    """Upload the complete export in ``local_dir`` to ``url`` and publish it; returns the manifest.

    Every file goes under a fresh version prefix ``url/v-.../``; ``url/_annobridge_export.json``,
    naming that version and each file with its size and sha256, is written last, in one put.
    Then versions older than the previous one are deleted.
    """
    source = Path(local_dir)
    previous = read_manifest(url)
    fs, root = _filesystem(url)
    version = _new_version()
    files: list[dict[str, Any]] = []
    with _errors(url):
        for local in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = local.relative_to(source).as_posix()
            files.append({"path": rel, "size": local.stat().st_size, "sha256": _sha256(local)})
            _upload_file(fs, local, _join(root, version, rel))
        kept: str | None = previous["current"] if previous else None
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "manifest_version": 1,
            "current": version,
            "previous": kept,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        }
        fd, tmp_name = tempfile.mkstemp(prefix=".annobridge-manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(manifest, indent=2) + "\n")
            _put(fs, Path(tmp_name), _join(root, MANIFEST_NAME))  # the moment the new export becomes current
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    _delete_old_versions(fs, root, keep=kept)
    return manifest


def _upload_file(fs: Any, local: Path, fspath: str) -> None:
    fs.put_file(str(local), fspath)


def _delete_old_versions(fs: Any, root: str, keep: str | None) -> None:
    """Delete versions that sort before ``keep`` (the previous one): those of earlier exports and of
    interrupted uploads. Versions after it are the current one or another run's upload in progress."""
    if keep is None:
        return
    try:
        fs.invalidate_cache()
        names = [PurePosixPath(entry).name for entry in fs.ls(root, detail=False)]
    except OSError as exc:
        log.warning("could not list %s to delete old export versions: %s", root, exc)
        return
    for name in sorted(names):
        if _VERSION_RE.match(name) and name < keep:
            try:
                fs.rm(_join(root, name), recursive=True)
            except OSError as exc:  # the export is published; an old version left over costs only storage
                log.warning("could not delete old export version %s: %s", _join(root, name), exc)


def download_export(url: str, local_dir: str | os.PathLike[str]) -> Path:
    """Download the current version of the remote export at ``url`` into ``local_dir``, as a local export.

    Only the files the manifest lists are fetched, each checked against its size and sha256;
    ``local_dir`` then holds what a local ``export --out local_dir`` writes (train/, dev/, test/,
    manifest.jsonl, report.json), swapped in atomically. A non-empty ``local_dir`` that is not an
    annobridge export is refused. Returns ``local_dir`` as a :class:`Path`.

    >>> download_export("s3://bucket/corpus", "corpus")  # doctest: +SKIP
    """
    from .atomic import replace_dir, staging_dir
    from .export import is_export_dir

    target = local_path(local_dir)
    if target.exists() and not (target.is_dir() and (is_export_dir(target) or not any(target.iterdir()))):
        raise UsageError(f"{target} exists and is not an annobridge export: download into a new folder")
    manifest = read_manifest(url)
    if manifest is None:
        raise UsageError(f"{url} holds no annobridge export ({MANIFEST_NAME} not found)")
    fs, root = _filesystem(url)
    staged = staging_dir(target)
    try:
        with _errors(url):
            for entry in manifest["files"]:
                rel = PurePosixPath(entry["path"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise DataError(f"{url}: the manifest names a file outside the export: {entry['path']!r}")
                local = staged.joinpath(*rel.parts)
                local.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                size = 0
                with fs.open(_join(root, manifest["current"], str(rel)), "rb") as src, local.open("wb") as dst:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
                if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
                    raise DataError(
                        f"{_join(url, manifest['current'], str(rel))}: size or sha256 differs from the manifest "
                        "(changed or damaged after the export); nothing was written"
                    )
        replace_dir(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target
