"""A real Argilla 2.8 server for the tests and the benchmark (built on :mod:`annobridge.testserver`).

    from annobridge_argilla import testserver
    server = testserver.start()      # server.url, server.owner.api_key, server.annotators, server.workspace
    server.stop()                    # by PID; drops its throw-away database

What runs:

* ``argilla-server 2.8.0`` in its own virtual environment under ``.servers/argilla/venv``
  (installed on first use; ``click<8.2`` is pinned because argilla-server's ``typer<0.10`` breaks
  with newer click);
* **noida-db** (a pip-installable, Elasticsearch-compatible stand-in; no real Elasticsearch or
  OpenSearch can be installed with pip) as the search engine, and as Redis when the machine has none;
* PostgreSQL from the machine (a throw-away database) when one answers on 127.0.0.1:5432,
  else SQLite in a temporary directory;
* Redis from the machine (127.0.0.1:6379, database 11) when it answers, else noida's Redis.

Migrations and the owner account are done in one process (saves a second interpreter start);
the annotators are created through the REST API as a real admin would.
Everything binds to 127.0.0.1 on ports the kernel hands out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from annobridge import testserver as ts

SERVER_VERSION = "2.8.0"
SDK_VERSION = "2.8.0"
SERVER_PACKAGES = [
    f"argilla-server=={SERVER_VERSION}",
    "click<8.2",
    "noida-db==0.2.3",
    # the server's [postgresql] extra wants psycopg2 from source; the binary build is the same module
    "asyncpg~=0.30.0",
    "psycopg2-binary~=2.9.0",
]

_BOOTSTRAP = textwrap.dedent(
    """
    import asyncio, os
    import alembic.config
    from argilla_server.database import ALEMBIC_CONFIG_FILE
    alembic.config.main(argv=["-c", ALEMBIC_CONFIG_FILE, "upgrade", "head"])
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import User, UserRole

    async def main() -> None:
        async with AsyncSessionLocal() as session:
            await User.create(
                session,
                first_name="Owner",
                username=os.environ["BOOT_USERNAME"],
                role=UserRole.owner,
                api_key=os.environ["BOOT_API_KEY"],
                password_hash=accounts.hash_password(os.environ["BOOT_PASSWORD"]),
                workspaces=[],
            )

    asyncio.run(main())
    """
)


ServerError = ts.ServerStartError  # the name this module's users know


def server_venv() -> ts.ServerVenv:
    return ts.ServerVenv(ts.servers_dir("argilla"), SERVER_PACKAGES)


def venv_python() -> Path:
    return server_venv().python


def ensure_installed() -> Path:
    """Install argilla-server into its own venv once; later runs reuse it."""
    return server_venv().ensure()


def ensure_sdk() -> Path:
    """The argilla SDK (benchmark baseline only) goes into the server venv, where its pins resolve."""
    return server_venv().add("sdk", [f"argilla=={SDK_VERSION}"])


def noida_binary() -> Path:
    found = list((server_venv().path / "lib").glob("python*/site-packages/noida_db/noida-db"))
    if not found:
        raise ServerError("noida-db binary not found in the Argilla server venv")
    binary = found[0]
    binary.chmod(binary.stat().st_mode | 0o111)  # wheels do not always keep the executable bit
    return binary


def redis_answers(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _postgres_connect(dbname: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(
        host="127.0.0.1", port=5432, user=os.environ.get("PGUSER", "postgres"), dbname=dbname,
        connect_timeout=2, autocommit=True,
    )


def postgres_answers() -> bool:
    if os.environ.get("ANNOBRIDGE_ARGILLA_DB") == "sqlite":
        return False
    try:
        with _postgres_connect() as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


@dataclass
class User:
    username: str
    password: str
    api_key: str
    id: str
    role: str


@dataclass
class ArgillaServer:
    """A running stack. ``owner`` can do everything; ``annotators`` are plain annotator accounts."""

    url: str
    owner: User
    workspace: str
    annotators: list[User] = field(default_factory=list)
    database: str = ""
    redis: str = ""
    run_dir: Path = Path()
    _procs: list[ts.ServerProcess] = field(default_factory=list, repr=False)
    _pg_db: str | None = None
    #: how the web process was started, for :meth:`restart`
    _web: tuple[list[str | Path], dict[str, str]] | None = field(default=None, repr=False)

    @property
    def host_port(self) -> str:
        return self.url.split("://", 1)[1]

    def client(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"X-Argilla-Api-Key": api_key or self.owner.api_key},
            timeout=120,
        )

    def create_user(self, username: str, role: str = "annotator") -> User:
        password = ts.new_password()
        with self.client() as api:
            resp = api.post("/users", json={"first_name": username, "username": username, "role": role,
                                            "password": password})
            resp.raise_for_status()
            data = resp.json()
            ws = api.get("/me/workspaces").json()["items"]
            ws_id = next(w["id"] for w in ws if w["name"] == self.workspace)
            api.post(f"/workspaces/{ws_id}/users", json={"user_id": data["id"]}).raise_for_status()
        return User(username, password, data["api_key"], data["id"], role)

    def _wait_web(self, proc: ts.ServerProcess, timeout: float = 120) -> None:
        headers = {"X-Argilla-Api-Key": self.owner.api_key}
        # /api/v1/status breaks with the ES engine in 2.8 (see notes); /me proves auth and the DB work
        ts.wait_until("argilla-server", lambda: ts.http_ok(f"{self.url}/api/v1/me", headers), [proc], timeout=timeout,
                   interval=0.1)

    def restart(self) -> None:
        """Stop the web process (by PID) and start it again on the same port, database and search engine."""
        assert self._web is not None, "not started"
        web = self._procs.pop()
        web.stop(timeout=15)
        cmd, env = self._web
        proc = ts.ServerProcess(cmd, log=self.run_dir / "argilla.log", env=env)
        self._procs.append(proc)
        self._wait_web(proc)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            proc.stop(timeout=15)
        self._procs.clear()
        if self._pg_db:
            with contextlib.suppress(Exception), _postgres_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_db}" WITH (FORCE)')
            self._pg_db = None
        shutil.rmtree(self.run_dir, ignore_errors=True)


def start(workspace: str = "annobridge", annotators: int = 2, timeout: float = 120) -> ArgillaServer:
    """Install if needed, start noida + Argilla, create the owner, a workspace and annotators.

    A free port can be taken by someone else between asking the kernel and binding it; one retry with
    fresh ports covers that race.
    """
    ensure_installed()
    try:
        return _start_once(workspace, annotators, timeout)
    except ServerError as first:
        try:
            return _start_once(workspace, annotators, timeout)
        except ServerError as second:
            raise second from first


def _start_once(workspace: str, annotators: int, timeout: float) -> ArgillaServer:
    python = venv_python()
    run = Path(tempfile.mkdtemp(prefix="annobridge-argilla-"))
    (run / "home").mkdir()
    procs: list[ts.ServerProcess] = []
    owner = User("owner", ts.new_password(), "owner." + secrets.token_hex(16), "", "owner")
    server = ArgillaServer(url="", owner=owner, workspace=workspace, run_dir=run, _procs=procs)
    try:
        use_machine_redis = redis_answers() and os.environ.get("ANNOBRIDGE_ARGILLA_REDIS") != "noida"
        es_port = ts.free_port()
        services = ["elasticsearch"]
        noida_args = ["--elasticsearch-port", str(es_port)]
        if use_machine_redis:
            # database 11: keeps rq queues apart from other tools sharing the machine's Redis
            server.redis = "redis://127.0.0.1:6379/11"
        else:
            redis_port = ts.free_port()
            services.append("redis")
            noida_args += ["--redis-port", str(redis_port)]
            server.redis = f"redis://127.0.0.1:{redis_port}/0"
        noida = ts.ServerProcess(
            [noida_binary(), "start", "--data-dir", run / "noida", "--host", "127.0.0.1", "--only",
             ",".join(services), *noida_args],
            log=run / "noida.log",
        )
        procs.append(noida)
        ts.wait_until("noida-db", lambda: ts.http_ok(f"http://127.0.0.1:{es_port}/"), [noida], timeout=30, interval=0.1)

        if postgres_answers():
            server._pg_db = "annobridge_argilla_" + secrets.token_hex(4)
            with _postgres_connect() as conn:
                conn.execute(f'CREATE DATABASE "{server._pg_db}"')
            user = os.environ.get("PGUSER", "postgres")
            server.database = f"postgresql+asyncpg://{user}@127.0.0.1:5432/{server._pg_db}"
        else:
            server.database = f"sqlite+aiosqlite:///{run / 'home' / 'argilla.db'}?check_same_thread=False"

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "VIRTUAL_ENV", "PYTHON"))},
            "ARGILLA_HOME_PATH": str(run / "home"),
            "ARGILLA_DATABASE_URL": server.database,
            "ARGILLA_SEARCH_ENGINE": "elasticsearch",
            "ARGILLA_ELASTICSEARCH": f"http://127.0.0.1:{es_port}",
            "ARGILLA_REDIS_URL": server.redis,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": "1",
            "ARGILLA_ENABLE_TELEMETRY": "0",
        }
        boot_log = run / "bootstrap.log"
        with boot_log.open("wb") as log_fh:
            boot = subprocess.run(
                [str(python), "-c", _BOOTSTRAP],
                env={**env, "BOOT_USERNAME": owner.username, "BOOT_PASSWORD": owner.password,
                     "BOOT_API_KEY": owner.api_key},
                stdout=log_fh, stderr=subprocess.STDOUT, timeout=180,
            )
        if boot.returncode != 0:
            raise ServerError(f"migrations / owner creation failed:\n{ts.tail(boot_log)}")

        port = ts.free_port()
        server.url = f"http://127.0.0.1:{port}"
        server._web = ([python, "-m", "uvicorn", "argilla_server:app", "--host", "127.0.0.1", "--port", str(port),
                        "--no-access-log"], env)
        proc = ts.ServerProcess(server._web[0], log=run / "argilla.log", env=env)
        procs.append(proc)
        server._wait_web(proc, timeout)
        with server.client() as api:
            me = api.get("/me").json()
            owner.id = me["id"]
            api.post("/workspaces", json={"name": workspace}).raise_for_status()
        for index in range(annotators):
            server.annotators.append(server.create_user(f"annotator{index + 1}"))
        return server
    except BaseException:
        server.stop()
        raise


if __name__ == "__main__":  # manual use: python -m annobridge_argilla.testserver  (Ctrl-C stops everything)
    began = time.monotonic()
    srv = start()
    env_file = srv.run_dir / "owner.env"
    env_file.touch(mode=0o600)
    env_file.write_text(f"export ARGILLA_API_URL={srv.url}\nexport ARGILLA_API_KEY={srv.owner.api_key}\n")
    print(f"Argilla {SERVER_VERSION} at {srv.url} ({time.monotonic() - began:.0f} s, {srv.database.split(':')[0]})")
    print(f"owner credentials (throw-away): source {env_file}")
    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the stack as Ctrl-C does
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
