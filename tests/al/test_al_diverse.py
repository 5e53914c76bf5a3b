"""Diverse batches: k-center greedy and BADGE seeding on constructed vectors, the near-duplicate filter
kept, determinism, the model's own document vectors, and the option through simulate and the loop."""

from __future__ import annotations

import numpy
import pytest
from al_helpers import gold_docs

from annobridge.al import Learner, LearnerConfig
from annobridge.al.diversity import (
    badge_seeding,
    check_diversity,
    kcenter_greedy,
    parse_strategy,
    select_diverse,
    strategy_name,
)
from annobridge.al.simulate import simulate
from annobridge.al.strategies import Candidate, select_batch
from annobridge.errors import UsageError
from annobridge.model import Document, LabelSchema, Record

SMALL = LearnerConfig(width=32, depth=1, epochs=4, min_steps=20)


def _clusters() -> tuple[numpy.ndarray, list[int]]:
    """Rows 0-4 around axis 0, 5-7 around axis 1, 8-9 around axis 2, in rank order; the cluster of each row."""
    rng = numpy.random.default_rng(3)
    owner = [0] * 5 + [1] * 3 + [2] * 2
    vectors = numpy.eye(3)[owner] + rng.normal(0, 0.01, size=(10, 3))
    return vectors, owner


def test_kcenter_takes_the_first_then_one_per_cluster() -> None:
    vectors, owner = _clusters()
    picked = kcenter_greedy(vectors, 3)
    assert picked[0] == 0  # the most uncertain starts
    assert sorted(owner[i] for i in picked) == [0, 1, 2]
    # Top-k by rank would have taken three of cluster 0.
    assert [owner[i] for i in range(3)] == [0, 0, 0]
    # A fourth pick can only repeat a cluster; everything stays distinct.
    assert len(set(kcenter_greedy(vectors, 4))) == 4


def test_kcenter_farthest_point_on_a_line() -> None:
    # Points on a half circle at angles 0, 10, ..., 180 degrees: farthest-first from 0 is 180, then 90.
    angles = numpy.deg2rad(numpy.arange(0, 181, 10))
    vectors = numpy.stack([numpy.cos(angles), numpy.sin(angles)], axis=1)
    assert kcenter_greedy(vectors, 3) == [0, 18, 9]


def test_kcenter_weights_let_uncertainty_beat_a_far_outlier() -> None:
    # Row 2 is farthest from row 0 but nearly certain; row 1 is nearer but as doubtful as row 0.
    vectors = numpy.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    assert kcenter_greedy(vectors, 2) == [0, 2]
    assert kcenter_greedy(vectors, 2, weights=[1.0, 1.0, 0.05]) == [0, 1]


def test_badge_covers_the_clusters_and_repeats_for_a_seed() -> None:
    owner = [0] * 5 + [1] * 3 + [2] * 2
    vectors = numpy.eye(3)[owner]  # exact copies inside a cluster: distance 0 once one is taken
    scores = numpy.linspace(1.0, 0.5, 10)
    for seed in range(5):
        picked = badge_seeding(vectors, scores, 3, rng=numpy.random.default_rng(seed))
        assert picked[0] == 0 and sorted(owner[i] for i in picked) == [0, 1, 2]
    noisy, _ = _clusters()
    runs = [badge_seeding(noisy, scores, 6, rng=numpy.random.default_rng(7)) for _ in range(2)]
    assert runs[0] == runs[1]


def _cands(texts: list[str]) -> list[Candidate]:
    n = len(texts)
    return [Candidate(1.0 - i / (2 * n), i, Document(id=f"d{i}", text=t)) for i, t in enumerate(texts)]


def test_diverse_differs_from_top_k_and_keeps_the_near_duplicate_filter() -> None:
    texts = [
        "free prize claim your reward now by text",  # 0: cluster A (spam-like)
        "free prize claim your reward today by text",  # 1: A, a near-duplicate of 0 (Jaccard 0.78)
        "win a free cash prize text claim now",  # 2: A
        "you won a prize call now to claim it",  # 3: A
        "are we still meeting for lunch tomorrow",  # 4: cluster B
        "see you at lunch then, running late",  # 5: B
        "the meeting moved to room four at noon",  # 6: cluster C
    ]
    owner = [0, 0, 0, 0, 1, 1, 2]
    vectors = numpy.eye(3)[owner] + numpy.random.default_rng(0).normal(0, 0.01, size=(7, 3))
    ranked = _cands(texts)
    plain, _ = select_batch(ranked, 3, threshold=0.7)
    assert [c.index for c in plain] == [0, 2, 3]  # 1 near-duplicates 0; the rest of the top is all cluster A
    taken, skipped = select_diverse(ranked, 3, vectors, diversity="kcenter", threshold=0.7)
    assert taken[0].index == 0 and sorted(owner[c.index] for c in taken) == [0, 1, 2]
    assert {c.index for c in taken} != {c.index for c in plain}
    # The filter: with only cluster A left to choose from, 1 is never taken next to 0.
    a_only, a_skipped = select_diverse(ranked[:4], 4, vectors[:4], diversity="kcenter", threshold=0.7)
    assert 1 not in {c.index for c in a_only} and [c.index for c in a_skipped] == [1]
    badge, _ = select_diverse(ranked[:4], 4, vectors[:4], diversity="badge", threshold=0.7, seed=1)
    assert 1 not in {c.index for c in badge} and len(badge) == 3
    # An excluded text (already labelled) is a near-duplicate too.
    ex, ex_skipped = select_diverse(ranked, 2, vectors, diversity="kcenter", threshold=0.7, exclude_texts=[texts[0]])
    assert 0 not in {c.index for c in ex} and {0, 1} <= {c.index for c in ex_skipped}
    assert select_diverse(ranked, 3, vectors, diversity="none", threshold=0.7)[0] == plain
    assert not {c.index for c in skipped} & {c.index for c in taken}


def test_option_names() -> None:
    assert parse_strategy("entropy+kcenter") == ("entropy", "kcenter")
    assert parse_strategy("margin", "badge") == ("margin", "badge")
    assert parse_strategy("lc+k-center", "badge") == ("least_confidence", "kcenter")
    assert parse_strategy("entropy") == ("entropy", "none")
    assert strategy_name("entropy", "none") == "entropy" and strategy_name("margin", "badge") == "margin+badge"
    with pytest.raises(UsageError, match="Unknown diversity 'clusters'"):
        check_diversity("clusters")
    with pytest.raises(ValueError, match="2 vectors for 3 candidates"):
        select_diverse(_cands(["a b", "c d", "e f"]), 2, numpy.zeros((2, 3)), diversity="kcenter")


def test_model_vectors_spread_the_batch(sms: list[Record]) -> None:
    labels = LabelSchema.infer("textcat", sms).labels
    learner = Learner("textcat", labels, config=SMALL)
    learner.fit(gold_docs(sms[:40], "textcat", labels))
    pool = [r.document for r in sms[40:400]]
    scores = learner.score_pool(pool, "entropy", keep=150, with_predictions=False)
    vectors = learner.doc_vectors([c.document for c in scores.candidates])
    assert vectors.shape[0] == 150 and numpy.allclose(numpy.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    plain, _ = select_batch(scores.candidates, 15)
    diverse, _ = select_diverse(scores.candidates, 15, vectors, diversity="kcenter")
    again, _ = select_diverse(scores.candidates, 15, vectors, diversity="kcenter")
    assert [c.index for c in diverse] == [c.index for c in again]
    assert diverse[0].index == plain[0].index and {c.index for c in diverse} != {c.index for c in plain}
    row = {c.index: i for i, c in enumerate(scores.candidates)}

    def mean_distance(batch: list[Candidate]) -> float:
        v = vectors[[row[c.index] for c in batch]]
        d = 1.0 - v @ v.T
        return float(d[numpy.triu_indices(len(batch), 1)].mean())

    assert mean_distance(diverse) > mean_distance(plain)


def test_doc_vectors_of_ner_are_pooled_tok2vec(fashion: list[Record]) -> None:
    labels = LabelSchema.infer("ner", fashion).labels
    learner = Learner("ner", labels, width=32, depth=1, epochs=1, min_steps=4)
    with pytest.raises(UsageError, match="not been fit"):
        learner.doc_vectors([fashion[0].document])
    learner.fit(gold_docs(fashion[:20], "ner", labels))
    docs = [r.document for r in fashion[20:30]]
    vectors = learner.doc_vectors(docs, batch_size=4)
    assert vectors.shape == (10, 64)  # the parser's tok2vec ends in a projection to hidden_width
    # Batching does not change a vector.
    assert numpy.allclose(vectors, learner.doc_vectors(docs, batch_size=10), atol=1e-5)


def test_simulate_diverse_is_deterministic(sms: list[Record]) -> None:
    def run() -> list[float]:
        result = simulate(
            sms,
            task="textcat",
            strategies=["entropy", "entropy+kcenter", "entropy+badge"],
            rounds=2,
            batch=10,
            seeds=[0],
            dev_size=150,
            config=SMALL,
            full_score=1.0,
        )
        assert result.strategies == ["entropy", "entropy+kcenter", "entropy+badge"]
        return [p.score for p in result.points]

    assert run() == run()
