"""Waiting for a server-side job (an import or export task, a snapshot) to finish, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import AdapterError

__all__ = ["poll_until"]

T = TypeVar("T")
_UNSET: Any = object()


def poll_until(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    message: str,
    interval: float = 0.5,
    backoff: float = 0.0,
    max_interval: float = 2.0,
    initial: T = _UNSET,
) -> T:
    """Call ``read()`` until ``done(answer)``, and return that answer.

    Between reads it sleeps ``interval`` seconds plus ``backoff`` seconds per second waited so far, at most
    ``max_interval`` (``interval=0.1, backoff=0.1``: quick polls while a short job finishes, then one every
    2 s for a long one). ``initial``: an answer already in hand (the body that started the job), checked
    before the first read. After ``timeout`` seconds without a done answer, :class:`AdapterError` with
    ``message`` (say what was waited for and what to check). Errors from ``read`` propagate.
    """
    started = time.monotonic()
    answer = read() if initial is _UNSET else initial
    while not done(answer):
        waited = time.monotonic() - started
        if waited > timeout:
            raise AdapterError(message)
        time.sleep(min(interval + backoff * waited, max(max_interval, interval)))
        answer = read()
    return answer
