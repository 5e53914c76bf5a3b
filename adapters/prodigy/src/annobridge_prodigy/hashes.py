"""Prodigy-compatible ``_input_hash`` / ``_task_hash`` values.

Our own reconstruction of the scheme (no Prodigy code is used), checked against
real public exports (see ``adapters/prodigy/tests/test_hashes.py``):

* MurmurHash3 x86_32, seed 0, as a signed 32-bit int (spaCy's ``murmurhash``);
* each value is serialised as JSON with sorted keys, compact separators and
  ASCII escaping, after dropping the ignored keys from every nested dict;
* input hash: ``"text=" + ser(text)`` (then ``image``, ``html``, ``input``) concatenated;
* task hash: ``str(input_hash)`` + ``"spans=" + ser(spans)`` (then ``label``, ``options``);
  a task without any of those hashes ``str(input_hash) + ser(whole task)``.

Prodigy never recomputes hashes a task already has; neither do we.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from murmurhash.mrmr import hash as _murmur

__all__ = [
    "IGNORE_KEYS",
    "INPUT_KEYS",
    "TASK_KEYS",
    "input_hash",
    "is_hash",
    "murmur",
    "set_hashes",
    "task_hash",
]

INPUT_KEYS: tuple[str, ...] = ("text", "image", "html", "input")
TASK_KEYS: tuple[str, ...] = ("spans", "label", "options")
#: keys that never change a hash: model scores and bookkeeping (dropped at any depth)
IGNORE_KEYS: frozenset[str] = frozenset({"score", "rank", "model", "source", "_view_id", "_session_id"})

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def murmur(value: str) -> int:
    """MurmurHash3 x86_32 (seed 0) of the UTF-8 bytes of ``value``, signed."""
    return int(_murmur(value))


def is_hash(value: Any) -> bool:
    """True for a value Prodigy could have written as a hash: a signed 32-bit int."""
    return isinstance(value, int) and not isinstance(value, bool) and _INT32_MIN <= value <= _INT32_MAX


def _saved(value: Any) -> bool:
    # Prodigy keeps any integer a task already carries (set_hashes(overwrite=False))
    return isinstance(value, int) and not isinstance(value, bool)


def _drop(value: Any, ignore: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop(v, ignore) for k, v in value.items() if k not in ignore}
    if isinstance(value, (list, tuple)):
        return [_drop(v, ignore) for v in value]
    return value


def _ser(value: Any, ignore: frozenset[str]) -> str:
    # ensure_ascii stays on: with it off only ~80 % of real hashes reproduce
    return json.dumps(_drop(value, ignore), sort_keys=True, separators=(",", ":"))


def input_hash(task: Mapping[str, Any], keys: Iterable[str] = INPUT_KEYS, ignore: frozenset[str] = IGNORE_KEYS) -> int:
    parts = "".join(f"{key}={_ser(task[key], ignore)}" for key in keys if key in task)
    return murmur(parts)


def task_hash(
    task: Mapping[str, Any],
    in_hash: int | None = None,
    keys: Iterable[str] = TASK_KEYS,
    ignore: frozenset[str] = IGNORE_KEYS,
) -> int:
    """Hash of the question asked: the input hash plus spans / label / options.

    ``task`` must be the task as it is streamed, before an annotator edits it:
    a saved ``_task_hash`` of an edited manual task does not reproduce.
    """
    if in_hash is None:
        in_hash = task["_input_hash"] if _saved(task.get("_input_hash")) else input_hash(task)
    parts = "".join(f"{key}={_ser(task[key], ignore)}" for key in keys if key in task)
    if not parts:
        parts = _ser(task, ignore)
    return murmur(f"{in_hash}{parts}")


def set_hashes(task: dict[str, Any], *, overwrite: bool = False) -> dict[str, Any]:
    """Add ``_input_hash`` and ``_task_hash`` to ``task`` (in place) where missing."""
    if overwrite or not _saved(task.get("_input_hash")):
        task["_input_hash"] = input_hash(task)
    if overwrite or not _saved(task.get("_task_hash")):
        task["_task_hash"] = task_hash(task, task["_input_hash"])
    return task
