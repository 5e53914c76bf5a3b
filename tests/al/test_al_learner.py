"""The Learner on real data: fit, probabilities, streaming pool scoring, persistence, device choice."""

from __future__ import annotations

import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest
import spacy
from al_helpers import gold_docs

from annobridge.al import Learner
from annobridge.al.strategies import uncertainty
from annobridge.errors import UsageError
from annobridge.model import Document, Record

SMALL = {"width": 32, "depth": 1, "epochs": 4, "min_steps": 20}


def _brute_force(learner: Learner, documents: list[Document], strategy: str) -> list[tuple[float, str]]:
    """Score every document in one batch each, without the heap: the reference for score_pool."""
    out = []
    for doc in documents:
        batch = next(learner.batches([doc], batch_size=1))
        out.append((float(learner.ops.to_numpy(uncertainty(batch.probs, strategy, learner.ops))[0]), doc.id))
    return sorted(out, key=lambda t: -t[0])


CASES = [
    ("textcat", ["ham", "spam"], "sms"),
    ("textcat_multilabel", ["ham", "spam"], "sms"),
    ("ner", ["FASHION_BRAND"], "fashion"),
    ("spans", ["FASHION_BRAND"], "fashion"),
]


@pytest.mark.parametrize(("task", "labels", "data"), CASES)
def test_fit_predict_and_score_pool(task: str, labels: list[str], data: str, request: pytest.FixtureRequest) -> None:
    records: list[Record] = request.getfixturevalue(data)
    train, pool = records[:120], [r.document for r in records[120:180]]
    learner = Learner(task, labels, **SMALL)
    assert not learner.fitted
    report = learner.fit(gold_docs(train, task, labels))
    assert report.mode == "retrain" and report.examples == 120 and report.steps >= 20
    # Per-document probabilities
    preds = list(learner.predict(pool[:10], batch_size=4))
    assert [d.id for d, _ in preds] == [d.id for d in pool[:10]]
    for document, pred in preds:
        if task.startswith("textcat"):
            assert set(pred.categories) == set(labels)
            assert all(0.0 <= v <= 1.0 for v in pred.categories.values())
            if task == "textcat":
                assert sum(pred.categories.values()) == pytest.approx(1.0, abs=1e-4)
        for span in pred.spans:
            assert document.text[span.start : span.end] == span.text
            assert span.score is not None and 0.0 < span.score <= 1.0 + 1e-6
    # Streaming top-k with small batches equals scoring every document on its own.
    for strategy in ("entropy", "margin", "least_confidence"):
        scored = learner.score_pool(pool, strategy, keep=7, batch_size=5)
        assert scored.scored == len(pool) and not scored.cold_start
        reference = _brute_force(learner, pool, strategy)
        got = [(c.score, c.document.id) for c in scored.candidates]
        assert [s for s, _ in got] == pytest.approx([s for s, _ in reference[:7]], abs=1e-5)
        # the pushed prediction carries the same score
        assert all(
            c.prediction is not None and c.prediction.score == pytest.approx(c.score, abs=1e-5)
            for c in scored.candidates
        )
    dev = learner.evaluate(gold_docs(records[120:], task, labels))
    assert 0.0 <= dev["score"] <= 1.0 and learner.score_key in dev


def test_textcat_learns_and_warm_start_continues(sms: list[Record]) -> None:
    docs = gold_docs(sms, "textcat", ["ham", "spam"])
    learner = Learner("textcat", ["ham", "spam"], seed=1)
    learner.fit(docs[:200])
    first = learner.evaluate(docs[300:])["score"]
    report = learner.fit(docs[:300])
    assert report.mode == "warm" and report.examples == 300
    assert report.epochs == learner.config.warm_epochs
    after = learner.evaluate(docs[300:])["score"]
    assert after >= 0.8 and first >= 0.6
    retrain = learner.fit(docs[:300], mode="retrain")
    assert retrain.mode == "retrain" and retrain.epochs == learner.config.epochs


def test_cold_start_is_random_and_reproducible(sms: list[Record]) -> None:
    learner = Learner("textcat", ["ham", "spam"])
    pool = [r.document for r in sms]
    a = learner.score_pool(pool, "entropy", keep=10, seed=4)
    b = learner.score_pool(pool, "entropy", keep=10, seed=4)
    c = learner.score_pool(pool, "entropy", keep=10, seed=5)
    assert a.cold_start and a.strategy == "random"
    assert [x.document.id for x in a.candidates] == [x.document.id for x in b.candidates]
    assert [x.document.id for x in a.candidates] != [x.document.id for x in c.candidates]
    assert all(x.prediction is None for x in a.candidates)


def test_excluded_and_empty_documents_are_skipped(sms: list[Record]) -> None:
    learner = Learner("textcat", ["ham", "spam"], **SMALL)
    learner.fit(gold_docs(sms[:50], "textcat", ["ham", "spam"]))
    pool = [r.document for r in sms[50:80]] + [Document("empty", "   ")]
    scored = learner.score_pool(pool, "entropy", keep=100, exclude_ids=[pool[0].id, pool[1].id])
    ids = {c.document.id for c in scored.candidates}
    assert scored.scored == 28 and scored.skipped == 3
    assert pool[0].id not in ids and "empty" not in ids


def test_pool_is_streamed_not_materialised(sms: list[Record]) -> None:
    learner = Learner("textcat", ["ham", "spam"], **SMALL)
    learner.fit(gold_docs(sms[:60], "textcat", ["ham", "spam"]))
    texts = [r.text for r in sms]
    n = 8_000

    def pool() -> Iterator[Document]:
        for i in range(n):
            yield Document(f"p{i}", texts[i % len(texts)] + f" #{i}")

    tracemalloc.start()
    scored = learner.score_pool(pool(), "entropy", keep=20, batch_size=200)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert scored.scored == n and len(scored.candidates) == 20
    # Holding these 8k texts as spaCy Docs takes ~50 MB (measured); a streamed pool holds one batch.
    assert peak < 20 * 1024 * 1024, peak


def test_save_and_load_give_the_same_scores(tmp_path: Path, fashion: list[Record]) -> None:
    labels = ["FASHION_BRAND"]
    learner = Learner("ner", labels, **SMALL)
    learner.fit(gold_docs(fashion[:50], "ner", labels))
    pool = [r.document for r in fashion[50:90]]
    before = learner.score_pool(pool, "entropy", keep=5)
    learner.save(tmp_path / "m")
    loaded = Learner.load(tmp_path / "m")
    assert loaded.fitted and loaded.task.value == "ner" and loaded.labels == labels
    after = loaded.score_pool(pool, "entropy", keep=5)
    assert [c.document.id for c in after.candidates] == [c.document.id for c in before.candidates]
    assert [c.score for c in after.candidates] == pytest.approx([c.score for c in before.candidates], abs=1e-5)
    # warm start goes on from the loaded weights
    assert loaded.fit(gold_docs(fashion[:55], "ner", labels)).mode == "warm"


def test_user_pipeline_and_greedy_ner_rejected(sms: list[Record]) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    with pytest.raises(UsageError, match="greedy NER"):
        Learner("ner", ["ORG"], nlp=nlp)
    with pytest.raises(UsageError, match="no component"):
        Learner("textcat", ["ham", "spam"], nlp=spacy.blank("en"))
    with pytest.raises(UsageError, match="at least two labels"):
        Learner("textcat", ["spam"])
    user = spacy.blank("en")
    user.add_pipe("textcat")
    learner = Learner("textcat", ["ham", "spam"], nlp=user, **SMALL)
    docs = gold_docs(sms[:80], "textcat", ["ham", "spam"])
    learner.fit(docs)
    first = learner.score_pool([r.document for r in sms[80:120]], "margin", keep=3)
    learner.fit(docs, mode="retrain")  # back to the snapshot taken at the first fit, same seed
    again = learner.score_pool([r.document for r in sms[80:120]], "margin", keep=3)
    assert [c.score for c in again.candidates] == pytest.approx([c.score for c in first.candidates], abs=1e-5)


def test_gpu_request_without_gpu_falls_back_to_cpu(sms: list[Record]) -> None:
    from thinc.api import NumpyOps
    from thinc.util import has_cupy_gpu

    if has_cupy_gpu:
        pytest.skip("a GPU is present: the fallback is not what runs here")
    with pytest.warns(RuntimeWarning, match="running on the CPU"):
        learner = Learner("textcat", ["ham", "spam"], gpu=0, **SMALL)
    assert learner.device.kind == "cpu" and learner.device.reason
    assert "GPU 0 not usable" in learner.device.describe()
    assert isinstance(learner.ops, NumpyOps)
    learner.fit(gold_docs(sms[:50], "textcat", ["ham", "spam"]))
    scored = learner.score_pool([r.document for r in sms[50:90]], "entropy", keep=3)
    assert len(scored.candidates) == 3
    batch = next(learner.batches([r.document for r in sms[:4]]))
    assert isinstance(batch.probs.probs, numpy.ndarray)  # the arithmetic stayed on the CPU's array module
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Learner("textcat", ["ham", "spam"], gpu=-1).device.kind == "cpu"
