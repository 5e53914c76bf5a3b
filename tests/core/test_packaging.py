"""The wheel carries what a typed, licensed package must (issue #9, item 10)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_license_and_py_typed(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("annobridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "annobridge/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert not any("/tests/" in name or name.startswith("tests/") for name in names)


def test_gitignore_covers_what_the_suite_writes() -> None:
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    for entry in (".tox/", ".servers/", "/corpus/", "/corpus-model/", ".hypothesis/", "*.egg-info/"):
        assert entry in ignored, entry
