"""Shared fixtures of the Ray tests: one local Ray (2 CPUs) for the whole session.

Starting Ray costs seconds, so every test in ``tests/ray`` shares one instance through
``ray_local``; annobridge's own Ray code sees ``ray.is_initialized()`` and connects to it
instead of starting (or shutting down) another.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The al helpers (data loading, gold docs, pool files) are shared with tests/al.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "al"))

from al_helpers import fashion, sms  # the data fixtures of tests/al, registered here too

__all__ = ["fashion", "ray_local", "sms"]


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """A local Ray with 2 CPUs, started once per session and shut down at its end."""
    import ray

    started = not ray.is_initialized()
    if started:
        # As annobridge starts Ray: only fatal notices from Ray's C++ core reach the terminal, so a
        # test can check that Ray's chatter stays out of the CLI's output.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    if started:
        ray.shutdown()
