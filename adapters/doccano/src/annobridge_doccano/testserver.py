"""A real doccano 1.8.4 server for tests and benchmarks (built on :mod:`annobridge.testserver`).

API::

    from annobridge_doccano.testserver import DoccanoServer, ensure_installed

    python = ensure_installed()            # .servers/doccano/venv, installed once (~90 s)
    server = DoccanoServer.start(mode="worker")   # or mode="eager"
    server.url                             # "doccano://127.0.0.1:PORT"
    server.admin, server.annotators        # Credentials(username, password), generated per run
    server.restart_web()                   # stop + start gunicorn on the same port and database
    server.stop()                          # TERM (then KILL) the PIDs this object started

Why it looks like this (see the doccano integration notes):

* the server needs ``numpy<2`` and ``marshmallow<4`` and Python <= 3.11, so it lives in its own venv;
* ``doccano webserver`` binds 0.0.0.0, so gunicorn is run directly on 127.0.0.1;
* imports/exports are Celery tasks: ``mode="worker"`` runs ``doccano task`` (the real polling path,
  broker = the same SQLite file), ``mode="eager"`` runs tasks inside the HTTP request;
* ``doccano createuser`` makes superusers, so the annotators are created over REST as plain users.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from annobridge.testserver import (
    ServerProcess,
    ServerStartError,
    ServerVenv,
    free_port,
    http_ok,
    new_password,
    servers_dir,
    tail,
    wait_until,
)

DOCCANO_VERSION = "1.8.4"
PINS = [f"doccano=={DOCCANO_VERSION}", "numpy<2", "marshmallow<4"]

EAGER_SETTINGS = """\
from config.settings.production import *  # noqa: F401,F403

# Run Celery tasks inside the request; keep their results where /tasks/status and /download read them.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_STORE_EAGER_RESULT = True
"""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def _python_for_server() -> str:
    """A Python 3.8-3.11 interpreter: pandas<2 (pinned by doccano) has no wheels for 3.12+."""
    if (3, 8) <= sys.version_info[:2] <= (3, 11):
        return sys.executable
    for name in ("python3.11", "python3.10", "python3.9"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "doccano 1.8.4 needs Python 3.8-3.11 for its server venv (pandas<2 has no wheels for newer "
        "Pythons); install python3.11 and put it on PATH"
    )


def server_venv(root: Path | None = None) -> ServerVenv:
    return ServerVenv(root or servers_dir("doccano"), PINS, python=_python_for_server())


def ensure_installed(root: Path | None = None) -> Path:
    """Install doccano into its venv unless a finished install of the same pins is there; returns its python."""
    return server_venv(root).ensure()


def _http_json(url: str, data: dict | None = None, token: str | None = None, timeout: float = 10) -> object:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    request.add_header("Accept", "application/json")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


@dataclass
class DoccanoServer:
    """One running doccano: gunicorn (+ a Celery worker in worker mode) on a loopback port."""

    root: Path
    home: Path
    port: int
    mode: str
    admin: Credentials
    annotators: list[Credentials]
    env: dict[str, str]
    procs: dict[str, ServerProcess] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"doccano://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, mode: str = "worker", root: Path | None = None, n_annotators: int = 2) -> DoccanoServer:
        if mode not in ("worker", "eager"):
            raise ValueError("mode is 'worker' or 'eager'")
        root = root or servers_dir("doccano")
        python = ensure_installed(root)
        (root / "runs").mkdir(exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix="doccano-", dir=root / "runs"))
        (home / "eager_settings.py").write_text(EAGER_SETTINGS)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_"))}
        env.update(
            DOCCANO_HOME=str(home),
            DATABASE_URL=f"sqlite:///{home}/db.sqlite3",
            MEDIA_ROOT=str(home / "media"),
            STANDALONE="True",
            DEBUG="False",
            PYTHONPATH=str(home),
            DJANGO_SETTINGS_MODULE="eager_settings" if mode == "eager" else "config.settings.production",
            # Server-side page size for list endpoints; the adapter always passes its own limit.
            DOCCANO_PAGE_SIZE="100",
        )
        server = cls(
            root=root,
            home=home,
            port=free_port(),
            mode=mode,
            admin=Credentials("admin", new_password()),
            annotators=[Credentials(f"annotator{i + 1}", new_password()) for i in range(n_annotators)],
            env=env,
        )
        try:
            server._init_db(python)
            server._start_web()
            if mode == "worker":
                server._start_worker()
            server.wait_ready()
            server._create_annotators()
        except BaseException as exc:
            server.stop(keep_files=True)
            logs = "".join(f"\n--- {log.name} ---\n{tail(log, 1500)}" for log in sorted(home.glob("*.log")))
            raise ServerStartError(f"doccano did not start ({exc}); files kept in {home}{logs}") from exc
        return server

    # -- processes -----------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(server_venv(self.root).bin(name))

    def _init_db(self, python: Path) -> None:
        # `doccano init` (migrations + roles) takes 10-20 s; a migrated empty database is kept next to the
        # venv and copied for later starts. Users are not in it: each run makes its own.
        template = self.root / f"template-{DOCCANO_VERSION}.sqlite3"
        db = self.home / "db.sqlite3"
        try:
            if template.exists():
                shutil.copyfile(template, db)
            else:
                self._doccano("init")
                tmp = template.with_suffix(f".{os.getpid()}.tmp")
                shutil.copyfile(db, tmp)
                os.replace(tmp, template)
            self._create_admin()
        except subprocess.CalledProcessError:
            # Once more from scratch: a fresh migration does not depend on the cached template.
            db.unlink(missing_ok=True)
            self._doccano("init")
            self._create_admin()

    def _doccano(self, *args: str) -> None:
        with (self.home / "init.log").open("ab") as log:
            subprocess.run([self._bin("doccano"), *args], env=self.env, cwd=self.home, stdout=log,
                           stderr=subprocess.STDOUT, check=True, timeout=300)

    def _create_admin(self) -> None:
        self._doccano("createuser", "--username", self.admin.username, "--password", self.admin.password,
                      "--email", "admin@example.com")

    def _site(self) -> str:
        out = subprocess.run(
            [str(server_venv(self.root).python), "-c", "import backend, os; print(os.path.dirname(backend.__file__))"],
            env=self.env, capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()

    def _start_web(self) -> None:
        self.procs["web"] = ServerProcess(
            [self._bin("gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "2",
             "--chdir", self._site(), "--timeout", "300", "config.wsgi"],
            log=self.home / "web.log", env=self.env, cwd=self.home,
        )

    def _start_worker(self) -> None:
        self.procs["worker"] = ServerProcess(
            [self._bin("doccano"), "task", "--concurrency", "1"], log=self.home / "worker.log", env=self.env,
            cwd=self.home,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait for /v1/health/ = 200, which needs DB, migrations and Celery (worker or eager)."""
        wait_until("doccano", lambda: http_ok(f"{self.base_url}/v1/health/", timeout=5), self.procs.values(),
                   timeout=timeout, interval=0.3)

    def _create_annotators(self) -> None:
        token = self.login(self.admin)
        for cred in self.annotators:
            _http_json(
                f"{self.base_url}/v1/users/create",
                {"username": cred.username, "email": f"{cred.username}@example.com",
                 "password1": cred.password, "password2": cred.password},
                token=token,
            )

    def login(self, cred: Credentials) -> str:
        data = _http_json(f"{self.base_url}/v1/auth/login/", {"username": cred.username, "password": cred.password})
        assert isinstance(data, dict)
        return str(data["key"])

    def _stop_proc(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            # Test servers hold nothing worth a graceful shutdown; do not wait long for one.
            proc.stop(timeout=3)

    def stop_web(self) -> None:
        self._stop_proc("web")

    def start_web(self) -> None:
        self._start_web()
        self.wait_ready()

    def restart_web(self) -> None:
        self.stop_web()
        self.start_web()

    def stop(self, keep_files: bool = False) -> None:
        for name in list(self.procs):
            self._stop_proc(name)
        if not keep_files:
            shutil.rmtree(self.home, ignore_errors=True)


if __name__ == "__main__":
    # Manual use: start a server and print how to reach it; Ctrl-C stops it.
    srv = DoccanoServer.start(mode=sys.argv[1] if len(sys.argv) > 1 else "worker")
    print(f"{srv.base_url}  admin={srv.admin.username}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
