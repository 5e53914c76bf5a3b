"""Many items against a server: in batches of a bounded size, or one request each with a few in flight;
and an import that sends only what the tool lacks, however often its answer is lost.

A tool with bulk endpoints takes items :func:`batched` (a request per batch keeps bodies and the server's
parsing bounded); a tool without them (doccano's per-example labels and PATCHes) is read or written one
request at a time, and :func:`parallel_map` keeps a few in flight: the server's workers stay busy without
queueing more than they serve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

from .adapter import ImportResult
from .errors import AdapterError, AmbiguousWrite

__all__ = ["batched", "import_missing", "parallel_map"]

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int) -> Iterator[R]:
    """``fn`` over ``items`` with up to ``workers`` calls in flight; the answers come in the items' order.

    Lazy like a generator: nothing starts before the first answer is asked for. An exception from ``fn`` is
    raised at its item; closing the iterator early (a pull abandoned half-way, or that exception) cancels
    the calls not started yet and waits for the running ones, so no thread outlives the iteration.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    todo = list(items)
    if not todo:
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(todo)))
    try:
        yield from pool.map(fn, todo)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily: a stream of any length is sent
    batch by batch with only one batch in memory (``itertools.batched`` from Python 3.12, as lists)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def import_missing(
    items: Mapping[str, T],
    *,
    lookup: Callable[[], Mapping[str, Any]],
    send: Callable[[list[T]], Iterable[tuple[str, str]]],
    tool: str = "The tool",
    attempts: int = 4,
) -> tuple[ImportResult, set[str]]:
    """Send the ``items`` (by document id) that the tool does not hold yet, and account for every one.

    ``lookup()`` maps the ids the tool holds now to their native ids; ``send(pending)`` sends items and
    returns ``(id, reason)`` for those the tool refused. When ``send`` raises :class:`AmbiguousWrite` (the
    request went out, its answer did not come back: some items may have landed), the tool is looked up again
    and only what is still missing is sent, up to ``attempts`` times, so a lost answer never duplicates
    anything. Afterwards each id is *existing* (held before this call), *created* (held now) or *failed*
    (refused, or still missing after a send that reported no error). Refusals for ids not among ``items``
    (a line the tool could not attribute) are failures too. Returns the result and the ids created.
    """
    refused: dict[str, str] = {}
    before: Mapping[str, Any] | None = None
    for _attempt in range(attempts):
        held = lookup()
        if before is None:
            before = dict(held)  # what was there before this call: the rest counts as created by it
        pending = [item for key, item in items.items() if key not in held and key not in refused]
        if not pending:
            break
        try:
            refusals = list(send(pending))
        except AmbiguousWrite:
            continue  # some may have landed: diff against the tool again
        for key, reason in refusals:
            refused.setdefault(key, reason)
        break
    else:
        raise AdapterError(f"{tool} import kept failing; nothing was duplicated, re-run to continue")
    assert before is not None
    after = lookup()
    result = ImportResult()
    created: set[str] = set()
    for key in items:
        if key in refused:
            result.failed.append((key, refused[key]))
        elif key not in after:
            result.failed.append((key, f"not created by {tool}'s import (it reported no error)"))
        else:
            result.native_ids[key] = after[key]
            if key in before:
                result.existing += 1
            else:
                result.created += 1
                created.add(key)
    result.failed.extend((key, reason) for key, reason in refused.items() if key not in items)
    return result, created
