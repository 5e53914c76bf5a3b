"""Uncertainty strategies, the streaming top-k, and the batch step that avoids near-duplicates.

Two shapes of model output cover every supported component:

* ``exclusive``: one probability distribution per document (``textcat``'s softmax; the
  parse probabilities of a ``beam_ner`` beam). Least confidence ``1 - max p``, margin
  ``1 - (p1 - p2)``, entropy ``-sum p log p``.
* ``independent``: independent yes/no probabilities (``textcat_multilabel``'s sigmoids, one
  row per document; ``spancat``'s candidate-by-label scores, many rows per document). Each
  probability is a binary question: least confidence ``min(p, 1 - p)``, margin ``1 - |2p - 1|``,
  binary entropy. A document's score is their **mean** (textcat_multilabel: the mean binary
  entropy) or their **max** (spancat: one doubtful span makes the document worth asking about;
  the mean would drown it among hundreds of easy non-spans).

Everything is computed with the model's own array module (numpy or cupy), so on a GPU only the
final score per document is copied to the host.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy

from ..errors import UsageError
from ..model import Document, Prediction

__all__ = [
    "STRATEGIES",
    "Candidate",
    "ProbBatch",
    "TopCandidates",
    "check_strategy",
    "near_duplicate",
    "select_batch",
    "uncertainty",
]

STRATEGIES: tuple[str, ...] = ("entropy", "margin", "least_confidence", "random")
_ALIASES = {"lc": "least_confidence", "least-confidence": "least_confidence", "leastconfidence": "least_confidence"}
_EPS = 1e-12


def check_strategy(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower().replace("-", "_"))
    if key not in STRATEGIES:
        raise UsageError(f"Unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return key


@dataclass
class ProbBatch:
    """The probabilities a model gave one batch of documents, still on the model's device."""

    kind: Literal["exclusive", "independent"]
    #: exclusive: (n_docs, n_classes), rows sum to 1 (zero-padded); independent: (n_rows, n_labels)
    probs: Any
    n_docs: int
    #: independent only: rows per document (host ints); None means one row per document
    lengths: numpy.ndarray | None = None
    agg: Literal["mean", "max"] = "mean"


def uncertainty(batch: ProbBatch, strategy: str, ops: Any, rng: numpy.random.Generator | None = None) -> Any:
    """One score per document, higher = more informative to label. Returns a device array."""
    strategy = check_strategy(strategy)
    xp = ops.xp
    if strategy == "random":
        generator = rng if rng is not None else numpy.random.default_rng()
        return xp.asarray(generator.random(batch.n_docs, dtype="float32"))
    if batch.n_docs == 0:
        return xp.zeros((0,), dtype="float32")
    p = batch.probs
    if batch.kind == "exclusive":
        return _exclusive(xp, p, strategy)
    per_value = _binary(xp, p, strategy)
    if per_value.size == 0:
        return xp.zeros((batch.n_docs,), dtype="float32")
    per_row = per_value.max(axis=1) if batch.agg == "max" else per_value.mean(axis=1)
    if batch.lengths is None:
        return per_row.astype("float32")
    return _segments(ops, per_row.astype("float32"), batch.lengths, batch.agg)


def _exclusive(xp: Any, p: Any, strategy: str) -> Any:
    if p.shape[1] < 2:
        p = xp.concatenate([p, xp.zeros((p.shape[0], 2 - p.shape[1]), dtype=p.dtype)], axis=1)
    if strategy == "least_confidence":
        out = 1.0 - p.max(axis=1)
    elif strategy == "margin":
        top2 = xp.sort(p, axis=1)[:, -2:]
        out = 1.0 - (top2[:, 1] - top2[:, 0])
    else:
        out = -(p * xp.log(xp.clip(p, _EPS, 1.0))).sum(axis=1)
    return out.astype("float32")


def _binary(xp: Any, p: Any, strategy: str) -> Any:
    if strategy == "least_confidence":
        return xp.minimum(p, 1.0 - p)
    if strategy == "margin":
        return 1.0 - xp.abs(2.0 * p - 1.0)
    q = xp.clip(p, _EPS, 1.0 - _EPS)
    return -(q * xp.log(q) + (1.0 - q) * xp.log(1.0 - q))


def _segments(ops: Any, values: Any, lengths: numpy.ndarray, agg: str) -> Any:
    """Reduce consecutive runs of ``values`` (``lengths`` long each) to one value; empty runs give 0."""
    xp = ops.xp
    lengths = numpy.asarray(lengths, dtype="int32")
    out = xp.zeros((len(lengths),), dtype="float32")
    nonzero = lengths > 0
    if not nonzero.any():
        return out
    if agg == "max":
        maxes, _ = ops.reduce_max(values.reshape((-1, 1)), ops.asarray1i(lengths[nonzero]))
        out[xp.asarray(numpy.flatnonzero(nonzero))] = maxes.reshape((-1,))
        return out
    ends = numpy.cumsum(lengths)
    cum = xp.concatenate([xp.zeros((1,), dtype="float32"), xp.cumsum(values)])
    sums = cum[xp.asarray(ends)] - cum[xp.asarray(ends - lengths)]
    return sums / xp.asarray(numpy.maximum(lengths, 1), dtype="float32")


@dataclass
class Candidate:
    """A pool document with its score and (for the ones kept) the model's pre-annotation."""

    score: float
    index: int
    document: Document
    prediction: Prediction | None = None
    probabilities: dict[str, Any] = field(default_factory=dict)


class TopCandidates:
    """The ``capacity`` highest-scoring documents of a stream, in O(capacity) memory.

    Ties go to the earlier document, so a selection is reproducible. ``make`` is only called
    for documents that enter, which keeps building pre-annotations off the hot path.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._heap: list[tuple[float, int, Candidate]] = []
        self.seen = 0

    @property
    def threshold(self) -> float:
        """A score must beat this to enter (−inf until full)."""
        return self._heap[0][0] if len(self._heap) >= self.capacity else float("-inf")

    def offer(self, score: float, index: int, make: Callable[[], Candidate]) -> bool:
        self.seen += 1
        key = (score, -index)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, (score, -index, make()))
            return True
        if key <= (self._heap[0][0], self._heap[0][1]):
            return False
        heapq.heapreplace(self._heap, (score, -index, make()))
        return True

    def ranked(self) -> list[Candidate]:
        """Best first."""
        return [c for _, _, c in sorted(self._heap, key=lambda t: (-t[0], -t[1]))]

    def __len__(self) -> int:
        return len(self._heap)


_WORD = re.compile(r"\w+", re.UNICODE)


def _shingles(text: str) -> frozenset[str]:
    words = _WORD.findall(text.lower())
    if len(words) < 4:
        # Very short texts: compare character trigrams, or two one-word texts never count as near.
        squashed = " ".join(words) or text.strip().lower()
        return frozenset(squashed[i : i + 3] for i in range(max(1, len(squashed) - 2)))
    return frozenset(words)


def near_duplicate(a: frozenset[str], b: frozenset[str], threshold: float) -> bool:
    if not a and not b:
        return True
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) >= threshold


def select_batch(
    ranked: Iterable[Candidate], k: int, *, threshold: float = 0.8, exclude_texts: Sequence[str] = ()
) -> tuple[list[Candidate], list[Candidate]]:
    """Take the best ``k`` candidates, skipping any whose word set overlaps an already taken one
    (or one of ``exclude_texts``) with Jaccard >= ``threshold``. Returns (taken, skipped).

    ``threshold >= 1`` turns the check off except for exact repeats of the same words.
    """
    taken: list[Candidate] = []
    skipped: list[Candidate] = []
    seen: list[frozenset[str]] = [_shingles(t) for t in exclude_texts]
    for cand in ranked:
        if len(taken) >= k:
            break
        sh = _shingles(cand.document.text)
        if any(near_duplicate(sh, other, threshold) for other in seen):
            skipped.append(cand)
            continue
        taken.append(cand)
        seen.append(sh)
    return taken, skipped
