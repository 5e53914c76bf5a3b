"""A URL for a tool whose adapter package is missing: the exact install line, exit code 2, before any work.

The adapters are distributions of their own, so ``argilla://...`` without ``annobridge-argilla`` is a normal
state for a user. The CLI runs in a subprocess whose entry points lack that one adapter, as in an environment
where only the core is installed (the ``core`` tox env has no Argilla adapter at all).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from annobridge.errors import AdapterNotInstalledError
from annobridge.plugins import KNOWN_ADAPTERS

HIDE_ENTRY_POINT = """
import importlib.metadata as md, sys
_real = md.entry_points
def entry_points(**kw):
    eps = _real(**kw)
    if kw.get("group") == "annobridge":
        return md.EntryPoints(ep for ep in eps if ep.name != {scheme!r})
    return eps
md.entry_points = entry_points
from annobridge.cli import main
sys.argv = ["annobridge", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("scheme", sorted(KNOWN_ADAPTERS))
def test_missing_adapter_prints_the_install_line(scheme: str, tmp_path: Path) -> None:
    url = {"prodigy": "prodigy:x.jsonl", "labelstudio": "labelstudio://127.0.0.1:1/projects/1",
           "doccano": "doccano://127.0.0.1:1/projects/1", "argilla": "argilla://127.0.0.1:1/ws/ds"}[scheme]
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", HIDE_ENTRY_POINT.format(scheme=scheme), "pull", url, "-o", str(out)],
        capture_output=True, text=True, timeout=120, env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )
    known = KNOWN_ADAPTERS[scheme]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"'{scheme}:' needs the {known.distribution} adapter: pip install '{known.distribution}'" in message
    assert f"pip install -e {known.folder}" in message
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    # the printed install line runs as copied: one shell command, the package name quoted once
    line = message.split(" adapter: ", 1)[1].split(" (from", 1)[0]
    assert shlex.split(line) == ["pip", "install", known.distribution]


def test_the_error_is_a_usage_error_with_the_hint() -> None:
    err = AdapterNotInstalledError("argilla", "annobridge-argilla", "adapters/argilla")
    assert err.exit_code == 2
    assert err.install_hint == "pip install 'annobridge-argilla'"
