"""Uncertainty arithmetic, the streaming top-k and the near-duplicate batch step."""

from __future__ import annotations

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from thinc.api import NumpyOps

from annobridge.al.strategies import (
    Candidate,
    ProbBatch,
    TopCandidates,
    check_strategy,
    select_batch,
    uncertainty,
)
from annobridge.errors import UsageError
from annobridge.model import Document

OPS = NumpyOps()


def _u(batch: ProbBatch, strategy: str) -> list[float]:
    return [float(v) for v in OPS.to_numpy(uncertainty(batch, strategy, OPS))]


def test_exclusive_formulas_by_hand() -> None:
    p = numpy.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]], dtype="f")
    batch = ProbBatch("exclusive", p, 3)
    assert _u(batch, "least_confidence") == pytest.approx([0.3, 2 / 3, 0.0], abs=1e-6)
    assert _u(batch, "margin") == pytest.approx([0.5, 1.0, 0.0], abs=1e-6)
    h0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert _u(batch, "entropy") == pytest.approx([h0, math.log(3), 0.0], abs=1e-5)


def test_exclusive_single_column_is_padded() -> None:
    # A beam with one surviving parse: fully certain under every strategy.
    batch = ProbBatch("exclusive", numpy.array([[1.0]], dtype="f"), 1)
    for name in ("least_confidence", "margin", "entropy"):
        assert _u(batch, name) == pytest.approx([0.0], abs=1e-6)


def test_multilabel_mean_binary_entropy() -> None:
    p = numpy.array([[0.5, 0.9], [0.99, 0.01]], dtype="f")
    batch = ProbBatch("independent", p, 2, agg="mean")

    def h(x: float) -> float:
        return -(x * math.log(x) + (1 - x) * math.log(1 - x))

    assert _u(batch, "entropy") == pytest.approx([(h(0.5) + h(0.9)) / 2, h(0.01)], abs=1e-5)
    assert _u(batch, "least_confidence") == pytest.approx([(0.5 + 0.1) / 2, 0.01], abs=1e-6)
    assert _u(batch, "margin") == pytest.approx([(1.0 + 0.2) / 2, 0.02], abs=1e-5)


def test_span_segments_max_and_empty_docs() -> None:
    # doc 0: two candidates, doc 1: none, doc 2: one candidate. One label.
    p = numpy.array([[0.05], [0.45], [0.9]], dtype="f")
    batch = ProbBatch("independent", p, 3, lengths=numpy.array([2, 0, 1]), agg="max")
    assert _u(batch, "least_confidence") == pytest.approx([0.45, 0.0, 0.1], abs=1e-6)
    mean_batch = ProbBatch("independent", p, 3, lengths=numpy.array([2, 0, 1]), agg="mean")
    assert _u(mean_batch, "least_confidence") == pytest.approx([0.25, 0.0, 0.1], abs=1e-6)


def test_random_is_seeded() -> None:
    batch = ProbBatch("exclusive", numpy.zeros((5, 2), dtype="f"), 5)
    a = uncertainty(batch, "random", OPS, rng=numpy.random.default_rng(3))
    b = uncertainty(batch, "random", OPS, rng=numpy.random.default_rng(3))
    assert list(a) == list(b) and len(set(a.tolist())) == 5


def test_strategy_names() -> None:
    assert check_strategy("LC") == "least_confidence"
    assert check_strategy("least-confidence") == "least_confidence"
    with pytest.raises(UsageError, match="Unknown strategy 'bald'"):
        check_strategy("bald")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60), st.integers(1, 10))
def test_top_candidates_is_the_sorted_top_k(scores: list[float], k: int) -> None:
    top = TopCandidates(k)
    for i, s in enumerate(scores):
        top.offer(s, i, lambda s=s, i=i: Candidate(s, i, Document(str(i), "x")))
    expected = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    assert [c.index for c in top.ranked()] == expected


def test_make_only_called_for_entrants() -> None:
    made: list[int] = []
    top = TopCandidates(2)
    for i, s in enumerate([0.9, 0.8, 0.1, 0.95, 0.2]):
        top.offer(s, i, lambda s=s, i=i: (made.append(i), Candidate(s, i, Document(str(i), "x")))[1])
    assert made == [0, 1, 3]
    assert [c.index for c in top.ranked()] == [3, 0]


def _cand(i: int, text: str, score: float) -> Candidate:
    return Candidate(score, i, Document(f"d{i}", text))


def test_select_batch_skips_near_duplicates() -> None:
    ranked = [
        _cand(0, "Free entry in a weekly competition to win FA Cup final tickets", 0.9),
        _cand(1, "FREE entry in a weekly competition to win FA Cup final tickets!!", 0.89),
        _cand(2, "Are we still on for dinner tonight at seven", 0.5),
        _cand(3, "free entry in a weekly competition to win FA cup tickets", 0.4),
        _cand(4, "ok", 0.3),
        _cand(5, "ok", 0.2),
    ]
    taken, skipped = select_batch(ranked, 4)
    assert [c.index for c in taken] == [0, 2, 4]
    assert [c.index for c in skipped] == [1, 3, 5]
    taken, _ = select_batch(ranked, 2)
    assert [c.index for c in taken] == [0, 2]
    # a threshold above 1 turns the check off
    taken, _ = select_batch(ranked, 6, threshold=1.01)
    assert len(taken) == 6
