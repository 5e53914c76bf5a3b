"""Diverse batches: trade uncertainty against coverage over the most uncertain candidates.

Plain uncertainty sampling takes the top ``k``; on a pool with clusters of similar documents the top
``k`` often comes from one cluster, and ``k`` labels teach little more than one would. The methods
here pick the batch from a bounded candidate set (the ``k × diversity_pool`` most uncertain
documents the scorer's heap already keeps) using the model's own document vectors:

* ``kcenter``: k-center greedy (Sener & Savarese 2018) over the candidates, uncertainty-weighted:
  the most uncertain candidate first, then repeatedly the candidate with the largest
  ``distance to the nearest taken one × its uncertainty / the top uncertainty`` (cosine distance).
  Plain k-center favours outliers (a long odd text is far from everything); the weight keeps a
  far but nearly certain document from beating a near but doubtful one. With equal uncertainties
  it is plain k-center.
* ``badge``: a BADGE-style k-means++ seeding (Ash et al. 2020) over uncertainty-weighted vectors
  ``u_i · v_i``: the largest first, then each next one drawn with probability proportional to its
  squared distance from the nearest one taken. Uncertain *and* far away is likely; seeded, so a
  seed repeats the batch.

Both keep the near-duplicate (word-set Jaccard) filter: a candidate that near-duplicates a taken
one (or an excluded text) is skipped and never taken. Ties go to the better-ranked candidate, so
``kcenter`` is deterministic and ``badge`` is deterministic for a seed.

Only the candidates' vectors are ever held: ``k × diversity_pool`` rows of the tok2vec width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy

from ..errors import UsageError
from .strategies import Candidate, _shingles, check_strategy, near_duplicate, select_batch

__all__ = [
    "DIVERSITY",
    "badge_seeding",
    "check_diversity",
    "kcenter_greedy",
    "parse_strategy",
    "select_diverse",
    "strategy_name",
]

DIVERSITY: tuple[str, ...] = ("none", "kcenter", "badge")
_DIV_ALIASES = {"k-center": "kcenter", "k_center": "kcenter", "coreset": "kcenter", "off": "none", "": "none"}


def check_diversity(name: str | None) -> str:
    key = (name or "none").lower()
    key = _DIV_ALIASES.get(key, key)
    if key not in DIVERSITY:
        raise UsageError(f"Unknown diversity {name!r}: use one of {', '.join(DIVERSITY)}")
    return key


def parse_strategy(spec: str, diversity: str | None = None) -> tuple[str, str]:
    """``"entropy+kcenter"`` -> ``("entropy", "kcenter")``; a ``diversity`` given apart wins if the spec has none."""
    base, _, div = spec.partition("+")
    strategy = check_strategy(base)
    chosen = check_diversity(div) if div else check_diversity(diversity)
    return strategy, chosen


def strategy_name(strategy: str, diversity: str) -> str:
    """The name a curve or a report carries: ``entropy`` or ``entropy+kcenter``."""
    return strategy if diversity == "none" else f"{strategy}+{diversity}"


def _normalized(vectors: Any) -> numpy.ndarray:
    v = numpy.asarray(vectors, dtype="float64")
    if v.ndim != 2:
        raise ValueError("vectors must be a 2-d array (one row per candidate)")
    norms = numpy.linalg.norm(v, axis=1, keepdims=True)
    return v / numpy.where(norms > 0, norms, 1.0)


def _cosine_distance(v: numpy.ndarray, row: numpy.ndarray) -> numpy.ndarray:
    return numpy.clip(1.0 - v @ row, 0.0, 2.0)


def kcenter_greedy(
    vectors: Any,
    k: int,
    *,
    weights: Any = None,
    eligible: Any = None,
    first: int = 0,
    reject: Any = None,
) -> list[int]:
    """Indices of ``k`` rows by k-center greedy under cosine distance, ``first`` first.

    ``weights`` (>= 0 per row, default all 1) scale each row's distance to the taken set.

    ``eligible`` (bool per row) masks rows that may be taken; ``reject(i, taken) -> bool`` is asked
    before a row is taken (the near-duplicate check) and a rejected row is dropped for good.
    Ties go to the lower index.
    """
    v = _normalized(vectors)
    n = len(v)
    free = numpy.ones(n, dtype=bool) if eligible is None else numpy.asarray(eligible, dtype=bool).copy()
    taken: list[int] = []
    w = numpy.ones(n) if weights is None else numpy.clip(numpy.asarray(weights, dtype="float64"), 0.0, None)
    mind = numpy.full(n, numpy.inf)
    nxt: int | None = first if 0 <= first < n and free[first] else None
    while len(taken) < k and free.any():
        if nxt is None:
            gain = mind * w if taken else mind  # nothing taken yet (first rejected): by rank
            nxt = int(numpy.argmax(numpy.where(free, numpy.nan_to_num(gain, posinf=numpy.inf), -1.0)))
        i, nxt = nxt, None
        free[i] = False
        if reject is not None and reject(i, taken):
            continue
        taken.append(i)
        mind = numpy.minimum(mind, _cosine_distance(v, v[i]))
    return taken


def badge_seeding(
    vectors: Any,
    scores: Any,
    k: int,
    *,
    rng: numpy.random.Generator,
    eligible: Any = None,
    reject: Any = None,
) -> list[int]:
    """Indices of ``k`` rows by k-means++ seeding over ``scores[i] * unit(vectors[i])``.

    The row with the largest weighted norm comes first (ties: lower index), then rows are drawn with
    probability ∝ squared Euclidean distance to the nearest taken row, from ``rng``.
    """
    u = numpy.clip(numpy.asarray(scores, dtype="float64"), 0.0, None)
    g = _normalized(vectors) * u[:, None]
    n = len(g)
    free = numpy.ones(n, dtype=bool) if eligible is None else numpy.asarray(eligible, dtype=bool).copy()
    taken: list[int] = []
    d2 = numpy.full(n, numpy.inf)
    while len(taken) < k and free.any():
        if not taken:
            norms = numpy.where(free, (g * g).sum(axis=1), -1.0)
            i = int(numpy.argmax(norms))
        else:
            weights = numpy.where(free, d2, 0.0)
            total = float(weights.sum())
            if total <= 0.0 or not numpy.isfinite(total):
                i = int(numpy.flatnonzero(free)[0])  # every free row sits on a taken one: by rank
            else:
                i = int(rng.choice(n, p=weights / total))
        free[i] = False
        if reject is not None and reject(i, taken):
            continue
        taken.append(i)
        diff = g - g[i]
        d2 = numpy.minimum(d2, (diff * diff).sum(axis=1))
    return taken


def select_diverse(
    ranked: Sequence[Candidate],
    k: int,
    vectors: Any,
    *,
    diversity: str,
    threshold: float = 0.8,
    exclude_texts: Sequence[str] = (),
    seed: int | None = 0,
) -> tuple[list[Candidate], list[Candidate]]:
    """Pick ``k`` of ``ranked`` (best first) for coverage; ``vectors[i]`` belongs to ``ranked[i]``.

    Returns (taken, skipped as near-duplicates), like :func:`~annobridge.al.strategies.select_batch`;
    ``diversity="none"`` is exactly ``select_batch``.
    """
    diversity = check_diversity(diversity)
    ranked = list(ranked)
    if diversity == "none":
        return select_batch(ranked, k, threshold=threshold, exclude_texts=exclude_texts)
    if len(vectors) != len(ranked):
        raise ValueError(f"{len(vectors)} vectors for {len(ranked)} candidates")
    if not ranked or k < 1:
        return [], []
    shingles = [_shingles(c.document.text) for c in ranked]
    excluded = [_shingles(t) for t in exclude_texts]
    skipped: list[int] = []

    def reject(i: int, taken: list[int]) -> bool:
        others = excluded + [shingles[j] for j in taken]
        if any(near_duplicate(shingles[i], other, threshold) for other in others):
            skipped.append(i)
            return True
        return False

    scores = numpy.asarray([c.score for c in ranked], dtype="float64")
    if diversity == "kcenter":
        top = float(scores.max()) if len(scores) else 0.0
        weights = scores / top if top > 0 else None
        order = kcenter_greedy(vectors, k, weights=weights, reject=reject)
    else:
        order = badge_seeding(vectors, scores, k, rng=numpy.random.default_rng(seed), reject=reject)
    return [ranked[i] for i in order], [ranked[i] for i in skipped]
