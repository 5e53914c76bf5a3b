"""Stable train/dev/test splits.

A document's split is a pure function of its key (its id, or its group's value)
and the seed: the key is hashed to a number in [0, 1) and the ratios cut that
interval. Adding documents never moves old ones, and every document of a group
lands in the same split.

Stratified splitting (``stratify=True``) ranks documents by the same hash
inside each label stratum and cuts the ranks by the ratios, so every label is
spread by the ratios even when rare. Its price: when the corpus grows, a
document sitting right at a cut may move to the neighbouring split. Use the
plain split when stability matters more than balance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["SplitSpec", "StratifiedAssigner", "parse_split", "split_unit"]

SPLIT_NAMES = ("train", "dev", "test")


@dataclass(frozen=True)
class SplitSpec:
    ratios: tuple[float, ...]
    seed: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        return SPLIT_NAMES[: len(self.ratios)]

    def active_names(self) -> list[str]:
        return [name for name, ratio in zip(self.names, self.ratios, strict=True) if ratio > 0]

    def assign(self, key: str) -> str:
        """The split of a document (or group) key: stable for a given seed."""
        return self._cut(split_unit(key, self.seed))

    def _cut(self, unit: float) -> str:
        total = 0.0
        for name, ratio in zip(self.names, self.ratios, strict=True):
            total += ratio
            if unit < total:
                return name
        return self.active_names()[-1]


def parse_split(text: str | Sequence[float], seed: int = 0) -> SplitSpec:
    """``"0.8,0.1,0.1"`` -> SplitSpec.

    One to three finite, non-negative ratios (train, dev, test) that sum to 1 (within 1e-6), a
    train ratio above 0. Anything else is a usage error: a silently renormalised ``0.5,0.6,0.1``
    would give splits the user never asked for.
    """
    try:
        values = [float(v) for v in text.split(",")] if isinstance(text, str) else [float(v) for v in text]
    except ValueError:
        raise UsageError(f"--split takes ratios like 0.8,0.1,0.1, not {text!r}") from None
    shown = text if isinstance(text, str) else ",".join(str(v) for v in text)
    if not 1 <= len(values) <= 3:
        raise UsageError(f"--split takes 1 to 3 ratios (train,dev[,test]), got {shown!r}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise UsageError(f"--split ratios must be finite and not negative, got {shown!r}")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"--split ratios must sum to 1, got {shown!r} (sum {total:g}); e.g. 0.8,0.1,0.1")
    if values[0] <= 0:
        raise UsageError(f"--split needs a train ratio above 0, got {shown!r}")
    return SplitSpec(tuple(values), seed)


def split_unit(key: str, seed: int) -> float:
    """Hash ``key`` with ``seed`` to a float in [0, 1) (stable across runs and machines)."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class StratifiedAssigner:
    """Assign splits per stratum by hash rank. Needs all (key, stratum) pairs up front."""

    def __init__(self, spec: SplitSpec, items: Iterable[tuple[str, Hashable]]) -> None:
        self.spec = spec
        strata: dict[Hashable, list[tuple[float, str]]] = {}
        for key, stratum in items:
            strata.setdefault(stratum, []).append((split_unit(key, spec.seed), key))
        self._split: dict[str, str] = {}
        for members in strata.values():
            members.sort()
            n = len(members)
            for rank, (_, key) in enumerate(members):
                self._split.setdefault(key, spec._cut((rank + 0.5) / n))

    def assign(self, key: str) -> str:
        split = self._split.get(key)
        return split if split is not None else self.spec.assign(key)
