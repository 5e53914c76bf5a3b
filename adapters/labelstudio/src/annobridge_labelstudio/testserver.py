"""A real Label Studio server for tests, benchmarks and examples (built on :mod:`annobridge.testserver`).

Usage::

    from annobridge_labelstudio.testserver import LabelStudioServer

    with LabelStudioServer() as ls:          # installs, migrates, starts on a free 127.0.0.1 port
        ls.url                               # "http://127.0.0.1:PORT"
        ls.adapter_url(project_id)           # "labelstudio://127.0.0.1:PORT/projects/ID"
        ls.admin.token / ls.annotators[0].token / .email / .id
        ls.restart()                         # stop by PID and start again on the same port and data
    # stopped by PID, data dir removed

What it does, and why:

* Installs ``label-studio`` (pinned, :data:`LS_VERSION`) into ``.servers/labelstudio/venv`` once
  (:class:`annobridge.testserver.ServerVenv`: file lock, marker written last).
* Migrates one *template* data dir per process (a cold start runs every Django migration: ~60 s) and creates
  in it an admin and three annotator accounts with random passwords and legacy API tokens generated at run
  time. Each server then starts on a copy of the template (~5-8 s).
* Binds 127.0.0.1 only (``--internal-host``), on a port that was free a moment ago; Label Studio silently moves
  to the next port when its port is taken, so a start counts only when that port answers our admin token
  (``/api/current-user/whoami``) while our process runs; otherwise it is retried on another port.
* Stops only the process it started, by PID.

Standard library and annobridge only, so other suites (active learning) and benchmarks can use it.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from annobridge.testserver import (
    ServerProcess,
    ServerStartError,
    ServerVenv,
    free_port,
    new_password,
    port_busy,
    servers_dir,
    tail,
)

__all__ = ["LS_VERSION", "LabelStudioServer", "ServerUser", "ensure_installed", "template_data_dir"]

LS_VERSION = "1.23.2"

_template_lock = threading.Lock()
_template: tuple[Path, list[ServerUser]] | None = None


@dataclass(frozen=True)
class ServerUser:
    email: str
    password: str = field(repr=False)
    token: str = field(repr=False)
    id: int = 0
    role: str = "annotator"


def server_venv(root: Path | None = None) -> ServerVenv:
    return ServerVenv(root or servers_dir("labelstudio"), [f"label-studio=={LS_VERSION}"])


def ensure_installed(root: Path | None = None) -> Path:
    """Install label-studio into its venv unless a finished install of the same pin is there."""
    return server_venv(root).ensure()


def _server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        COLLECT_ANALYTICS="false",
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LOG_LEVEL="WARNING",
        HOME=str(data_dir),  # label-studio writes under ~ on any invocation
        PYTHONUNBUFFERED="1",
    )
    return env


# Runs inside the server venv: `init` migrates and creates the admin (with the legacy-token org flag), then the
# annotators are added with Django's ORM, which is much faster than one `label-studio user` process each.
_BOOTSTRAP = r"""
import json, sys
spec = json.loads(sys.stdin.read())
admin = spec["admin"]
sys.argv = ["label-studio", "init", "--username", admin["email"], "--password", admin["password"],
            "--user-token", admin["token"], "--enable-legacy-api-token"]
from label_studio.server import main
main()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
org = Organization.objects.first()
ids = {admin["email"]: User.objects.get(email=admin["email"]).id}
for u in spec["annotators"]:
    user = User.objects.create_user(email=u["email"], password=u["password"], username=u["email"].split("@")[0],
                                    first_name=u["first_name"], last_name="Tester")
    org.add_user(user)
    user.active_organization = org
    user.save()
    Token.objects.filter(user=user).delete()
    Token.objects.create(user=user, key=u["token"])
    ids[u["email"]] = user.id
print("ANNOBRIDGE_USERS=" + json.dumps(ids))
"""


def _make_users() -> list[ServerUser]:
    def tok() -> str:
        return secrets.token_hex(20)

    return [
        ServerUser("admin@example.com", new_password(), tok(), role="admin"),
        ServerUser("ann1@example.com", new_password(), tok()),
        ServerUser("ann2@example.com", new_password(), tok()),
        ServerUser("ann3@example.com", new_password(), tok()),
    ]


def template_data_dir(root: Path | None = None) -> tuple[Path, list[ServerUser]]:
    """A migrated data dir with the three users, made once per process."""
    global _template
    with _template_lock:
        if _template is not None and _template[0].exists():
            return _template
        python = ensure_installed(root)
        users = _make_users()
        data_dir = Path(tempfile.mkdtemp(prefix="ls-template-"))
        spec = {
            "admin": {"email": users[0].email, "password": users[0].password, "token": users[0].token},
            "annotators": [
                {"email": u.email, "password": u.password, "token": u.token, "first_name": u.email.split("@")[0]}
                for u in users[1:]
            ],
        }
        proc = subprocess.run(
            [str(python), "-c", _BOOTSTRAP], input=json.dumps(spec), capture_output=True, text=True,
            env=_server_env(data_dir), cwd=data_dir, timeout=600, check=False,
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("ANNOBRIDGE_USERS=")), None)
        if proc.returncode != 0 or line is None:
            raise ServerStartError(f"label-studio init failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                   f"{proc.stderr[-3000:]}")
        ids = json.loads(line.partition("=")[2])
        users = [ServerUser(u.email, u.password, u.token, ids[u.email], u.role) for u in users]
        _template = (data_dir, users)
        return _template


class LabelStudioServer:
    """One Label Studio process on a copy of the template data dir. See the module docstring."""

    def __init__(self, root: Path | None = None, start_timeout: float = 180.0) -> None:
        self.root = root or servers_dir("labelstudio")
        self.start_timeout = start_timeout
        self.port = 0
        self.data_dir: Path | None = None
        self.proc: ServerProcess | None = None
        self.users: list[ServerUser] = []
        self._log: Path | None = None

    # -- users -----------------------------------------------------------------
    @property
    def admin(self) -> ServerUser:
        return self.users[0]

    @property
    def annotators(self) -> list[ServerUser]:
        return self.users[1:]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def adapter_url(self, project: int | str) -> str:
        return f"labelstudio://127.0.0.1:{self.port}/projects/{project}"

    @property
    def log_text(self) -> str:
        return tail(self._log, chars=10**9)

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> LabelStudioServer:
        if self.data_dir is None:
            template, self.users = template_data_dir(self.root)
            self.data_dir = Path(tempfile.mkdtemp(prefix="ls-server-"))
            shutil.copytree(template, self.data_dir, dirs_exist_ok=True)
            self._log = self.data_dir / "server.log"
        last_error = ""
        for _attempt in range(5):
            port = self.port or free_port()
            if port_busy(port):
                # A restart keeps its port (adapters hold URLs with it): wait for the old listener to go.
                last_error = f"port {port} is busy"
                time.sleep(1.0 if self.port else 0)
                continue
            ok, last_error = self._start_on(port)
            if ok:
                self.port = port
                return self
        raise ServerStartError(f"Label Studio did not start: {last_error}\n{self.log_text[-3000:]}")

    def _start_on(self, port: int) -> tuple[bool, str]:
        assert self.data_dir is not None and self._log is not None
        python = server_venv(self.root).python
        self.proc = ServerProcess(
            [python, "-m", "label_studio.server", "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(self.data_dir)],
            log=self._log, env=_server_env(self.data_dir), cwd=self.data_dir,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.proc.running:
                return False, f"exited with {self.proc.returncode}"
            if f"Port {port} is in use" in self.log_text:
                self._kill()
                return False, f"port {port} was taken"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200 and self._is_ours(port):
                        return True, ""
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self._kill()
        return False, f"no /health within {self.start_timeout:.0f} s"

    def _is_ours(self, port: int) -> bool:
        """The process we started holds the port (not another server that answered /health)."""
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}/api/current-user/whoami",
                                       headers={"Authorization": f"Token {self.admin.token}"}), timeout=5,
            ) as resp:
                return bool(json.loads(resp.read()).get("email") == self.admin.email)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _kill(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.stop(timeout=15, sig=sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server process (by its PID); the data dir stays for :meth:`start`/:meth:`restart`."""
        self._kill(sig)

    def kill(self) -> None:
        """Kill -9, as a crash would."""
        self._kill(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def cleanup_template() -> None:
    global _template
    with _template_lock:
        if _template is not None:
            shutil.rmtree(_template[0], ignore_errors=True)
            _template = None


atexit.register(cleanup_template)
