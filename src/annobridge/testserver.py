"""Real tool servers for tests and benchmarks: install once, start on a free loopback port, stop by PID.

Each adapter's real-server fixture (``annobridge_<tool>.testserver``) is built from these parts, so that
what every server needs is written once:

* :class:`ServerVenv`: the tool's server in its own virtual environment (its pins clash with ours),
  installed once under a file lock; a marker holding the requirements is written last, so an interrupted
  install is redone, never half-used, and a change of pins reinstalls.
* :func:`free_port` / :func:`port_busy`: a port the kernel handed out a moment ago, on 127.0.0.1 only.
* :class:`ServerProcess`: one process in a session of its own, its output in a log file, stopped by its
  PID's process group (TERM, then KILL), never by name.
* :func:`wait_until`: readiness with a deadline, failing early when the process exits, with the log's tail.
* :func:`servers_dir`: where installs are cached (``$ANNOBRIDGE_SERVERS_DIR``, else ``.servers/`` in the
  checkout the tests run from).

Standard library only: a benchmark or another suite can start a server without pytest.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ServerProcess",
    "ServerStartError",
    "ServerVenv",
    "free_port",
    "http_ok",
    "new_password",
    "port_busy",
    "servers_dir",
    "tail",
    "wait_until",
]


def new_password(nbytes: int = 12) -> str:
    """A random password for a test account that a command line cannot mistake for an option.

    ``secrets.token_urlsafe`` may start with ``-``: ``doccano createuser --password -x...`` then fails
    with "expected one argument", once in 64 runs. A letter first keeps every such start working.
    """
    import secrets

    return "p" + secrets.token_urlsafe(nbytes)


class ServerStartError(RuntimeError):
    """A test server could not be installed or did not become ready; the message ends with its log."""


def servers_dir(tool: str) -> Path:
    """The cache folder for ``tool``'s server install.

    ``$ANNOBRIDGE_SERVERS_DIR/<tool>`` when set; else ``.servers/<tool>`` in the nearest folder above the
    working directory that holds a ``tox.ini`` or ``pyproject.toml`` (the checkout the suite runs in), so
    that tox envs, plain pytest and benchmarks share one install.
    """
    override = os.environ.get("ANNOBRIDGE_SERVERS_DIR")
    if override:
        return Path(override) / tool
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "tox.ini").is_file() or ((folder / "pyproject.toml").is_file() and (folder / ".git").exists()):
            return folder / ".servers" / tool
    return Path.home() / ".cache" / "annobridge" / "servers" / tool


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a server must still prove it got it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path | None, chars: int = 3000) -> str:
    """The end of a log file, or '' when there is none."""
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def http_ok(url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class ServerVenv:
    """A virtual environment holding one tool's server, installed once per set of requirements."""

    def __init__(self, root: Path, requirements: Sequence[str], python: str | None = None) -> None:
        self.root = root
        self.requirements = list(requirements)
        #: the interpreter the venv is made from (a tool may need an older Python than ours)
        self.base_python = python or sys.executable
        self.path = root / "venv"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        """A console script of the venv (valid because the venv is never moved after install)."""
        return self.path / "bin" / name

    def _marker(self, name: str) -> Path:
        return self.path / f".annobridge-{name}.json"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".install.lock").open("w") as lock:
            # Several sessions may start at once: one installs, the others wait and then reuse it.
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _installed(self, name: str, requirements: Sequence[str]) -> bool:
        marker = self._marker(name)
        try:
            return self.python.exists() and json.loads(marker.read_text()) == list(requirements)
        except (OSError, ValueError):
            return False

    def ensure(self) -> Path:
        """Install the server's requirements unless a finished install of exactly them is there."""
        with self._lock():
            if self._installed("server", self.requirements):
                return self.python
            shutil.rmtree(self.path, ignore_errors=True)  # a half-finished or outdated install
            self._run([self.base_python, "-m", "venv", str(self.path)], "creating the server venv", timeout=300)
            self._pip(self.requirements, timeout=1200)
            self._marker("server").write_text(json.dumps(self.requirements))
        return self.python

    def add(self, name: str, requirements: Sequence[str]) -> Path:
        """Install more packages into the same venv (for example the tool's SDK, for a baseline)."""
        self.ensure()
        with self._lock():
            if not self._installed(name, requirements):
                self._pip([*requirements, *self.requirements], timeout=900)
                self._marker(name).write_text(json.dumps(list(requirements)))
        return self.python

    def _pip(self, requirements: Sequence[str], timeout: float) -> None:
        self._run(
            # --no-compile: byte-compiling all of a Django server costs more than compiling what a run imports
            [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-compile",
             *requirements],
            f"pip install {' '.join(requirements)}",
            timeout=timeout,
        )

    def _run(self, cmd: list[str], what: str, timeout: float) -> None:
        log = self.root / "install.log"
        with log.open("ab") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ServerStartError(f"{what} failed (exit {proc.returncode}); see {log}:\n{tail(log)}")


class ServerProcess:
    """One server process, its own session leader, logging to ``log``; stopped by its process group."""

    def __init__(
        self,
        cmd: Sequence[str | Path],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log = log
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, env=dict(env) if env else None,
                cwd=cwd, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Signal the process group (TERM by default), then KILL what is left after ``timeout``."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def kill(self) -> None:
        """KILL at once, as a crash would."""
        self.stop(timeout=0.5, sig=signal.SIGKILL)


def wait_until(
    what: str,
    ready: Callable[[], bool],
    processes: Iterable[ServerProcess] = (),
    timeout: float = 180.0,
    interval: float = 0.25,
) -> None:
    """Poll ``ready()`` until it is true; fail at once when a process exits, or at the deadline."""
    watched = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        for process in watched:
            if not process.running:
                raise ServerStartError(
                    f"{what}: the process exited with {process.returncode}; {process.log}:\n{tail(process.log)}"
                )
        if ready():
            return
        if time.monotonic() >= deadline:
            logs = "".join(f"\n--- {p.log} ---\n{tail(p.log)}" for p in watched)
            raise ServerStartError(f"{what}: not ready after {timeout:.0f} s{logs}")
        time.sleep(interval)
