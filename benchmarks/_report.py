"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections alone."""

from __future__ import annotations

import fcntl
import platform
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script named in it (`benchmarks/`), which measures annobridge and a\n"
    "baseline in the same run on the same machine. Re-run a script to refresh its section.\n"
)


def best_of(fn: Callable[[], T], runs: int = 3) -> tuple[float, T]:
    """The fastest of ``runs`` runs of ``fn`` and its last result (a shared box: the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str) -> Path:
    """Replace (or append) the section delimited by markers for ``name``."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"<!-- BEGIN {name} -->\n{markdown.rstrip()}\n\n_Measured {stamp} on {machine()}._\n<!-- END {name} -->"
    lock = DOC.with_suffix(".lock")
    with lock.open("w") as lock_fh:
        fcntl.flock(lock_fh, fcntl.LOCK_EX)
        text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
        pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _m: block, text)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        DOC.write_text(text, encoding="utf-8")
    return DOC
