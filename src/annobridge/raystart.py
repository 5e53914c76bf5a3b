"""Ray for the engines that use it (pool scoring in ``annobridge.al.ray_engine``, ``export --engine ray``):
the import with its install line, and one quiet way to start or join a Ray."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import UsageError

__all__ = ["INSTALL_HINT", "import_ray", "start_ray", "verbose"]

log = logging.getLogger(__name__)

#: the command that installs the engines (its own line in the error, so it can be copied)
INSTALL_HINT = "pip install 'annobridge[ray]'"


def import_ray(what: str) -> Any:
    """``ray`` with Ray Data, or a :class:`UsageError` saying that ``what`` needs it, and the install line."""
    try:
        import ray.data  # Ray core alone has no Data library

        import ray
    except ImportError:  # also when sys.modules["ray"] is None
        raise UsageError(f"{what} needs Ray (an optional extra); install it with:\n{INSTALL_HINT}") from None
    return ray


def verbose() -> bool:
    """--verbose sets annobridge's log level to INFO: then Ray's own progress and logs are shown too."""
    return log.isEnabledFor(logging.INFO)


def start_ray(ray: Any, address: str | None, workers: int | None) -> bool:
    """Connect to ``address`` (``ray://host:10001``, ``auto``), or start a local Ray with ``workers`` CPUs
    (default: all cores). A Ray the caller already started is used as it is. True when this started one."""
    loud = verbose()
    # Ray's notices (token auth, deprecations, "progress bars disabled") are not annobridge's output.
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.INFO if loud else logging.ERROR)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.INFO if loud else logging.ERROR,
        "log_to_driver": loud,
    }
    if not address:
        kwargs["num_cpus"] = workers or os.cpu_count() or 1
    if loud:
        ray.init(address=address, **kwargs)
    else:
        # Ray's C++ core prints notices of its own to the terminal (Ray Data's actors keep their
        # constructor arguments in the object store, ...): only fatal ones, and the one line
        # that says so, printed while Ray starts, is kept off stderr. Failures still raise.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        with _stderr_muted():
            ray.init(address=address, **kwargs)
    return True


@contextmanager
def _stderr_muted() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: what C++ code writes there, not only Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
