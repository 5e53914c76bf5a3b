"""A tool's small listings (users, label types: id -> name), read once and read again when they fall behind."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["Lookup"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lookup(Generic[K, V]):
    """A mapping read from the tool on first use and kept: ``users = Lookup(lambda: {u["id"]: u["name"] ...})``.

    ``users()`` is the mapping, ``users(refresh=True)`` reads it again (after creating a user, say), and
    ``users.covering(ids)`` reads it again only when one of ``ids`` is missing from it (a user or label type
    created on the server since it was read), so a pull that meets a new id costs one more read, not one per item.
    """

    def __init__(self, load: Callable[[], Mapping[K, V]]) -> None:
        self._load = load
        self._data: dict[K, V] | None = None

    def __call__(self, refresh: bool = False) -> dict[K, V]:
        if self._data is None or refresh:
            self._data = dict(self._load())
        return self._data

    def covering(self, keys: Iterable[K]) -> dict[K, V]:
        """The mapping, read again first if any of ``keys`` is not in it."""
        data = self()
        if any(key not in data for key in keys):
            data = self(refresh=True)
        return data
