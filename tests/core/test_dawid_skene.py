"""``--merge dawid-skene``: annotator reliabilities by EM over the whole pull (issue #11).

Simulated annotators of known accuracy (fixed seeds): each answers the true class with its accuracy, else one of
the other classes at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import annobridge
from annobridge.adapters.jsonl import write_records
from annobridge.dawid_skene import fit_category_model, fit_dawid_skene
from annobridge.errors import UsageError
from annobridge.export import export
from annobridge.merge import TIE_MAJORITY, Merged, MergeSkip, Policy, merge_record
from annobridge.model import Annotation, Answer, Document, Record

ACCURACIES = (0.9, 0.8, 0.65, 0.55, 0.5)


def simulate(
    n_items: int, n_classes: int, accuracies: Sequence[float], seed: int
) -> tuple[list[Record], list[str], list[str]]:
    """Records with one manual textcat answer per annotator, the true labels, and the class names."""
    rng = np.random.default_rng(seed)
    classes = [f"C{k}" for k in range(n_classes)]
    truth = rng.integers(0, n_classes, n_items)
    records = []
    for i in range(n_items):
        anns = []
        for j, acc in enumerate(accuracies):
            k = int(truth[i]) if rng.random() < acc else int((truth[i] + rng.integers(1, n_classes)) % n_classes)
            anns.append(Annotation(f"ann{j}", categories={c: float(c == classes[k]) for c in classes}))
        records.append(Record(Document.create(f"item {i}", id=f"i{i}"), anns))
    return records, [classes[int(t)] for t in truth], classes


def accuracy(records: list[Record], truth: list[str], policy: Policy | str) -> float:
    """Share of items whose merged label is the true one (a tie, which drops the item, counts as wrong)."""
    right = 0
    for record, true in zip(records, truth, strict=True):
        merged = merge_record(record, policy, task="textcat")
        if isinstance(merged, Merged) and merged.categories.get(true) == 1.0:
            right += 1
    return right / len(records)


@pytest.mark.parametrize(("n_classes", "seed"), [(2, 1), (3, 2), (5, 3)])
def test_dawid_skene_beats_majority_and_recovers_accuracies(n_classes: int, seed: int) -> None:
    records, truth, classes = simulate(2000, n_classes, ACCURACIES, seed)
    model = fit_category_model(records, "textcat", classes)
    fitted = model.models[""]
    assert fitted.converged and fitted.iterations > 1
    estimated = model.accuracies()
    for j, acc in enumerate(ACCURACIES):
        assert estimated[f"ann{j}"] == pytest.approx(acc, abs=0.05), (j, estimated)
    ds = accuracy(records, truth, Policy("dawid-skene", model))
    majority = accuracy(records, truth, "majority")
    assert ds > majority + 0.03, (ds, majority)


def test_an_adversarial_annotator_is_turned_around_a_spammer_ignored() -> None:
    # binary: the adversary answers the wrong class 85% of the time; the spammer at random
    records, truth, classes = simulate(2000, 2, (0.75, 0.7, 0.65, 0.15, 0.5), seed=4)
    model = fit_category_model(records, "textcat", classes)
    acc = model.accuracies()
    assert acc["ann3"] == pytest.approx(0.15, abs=0.04) and acc["ann4"] == pytest.approx(0.5, abs=0.04)
    ds = accuracy(records, truth, Policy("dawid-skene", model))
    majority = accuracy(records, truth, "majority")
    assert ds > majority + 0.1, (ds, majority)


def test_fit_basics() -> None:
    # majority initialisation, so a tiny unanimous set is not flipped, and smoothing keeps every matrix finite
    model = fit_dawid_skene([{"a": "x", "b": "x"}, {"a": "y", "b": "y"}, {"a": "x"}], ["x", "y"])
    assert model.decide({"a": "x"}) == "x" and model.decide({"a": "y", "b": "y"}) == "y"
    assert np.isfinite(model.confusion).all() and np.allclose(model.confusion.sum(axis=2), 1.0)
    # two symmetric voters disagreeing, and nothing to tell them apart: a tie, not a guess
    sym = fit_dawid_skene([{"a": "x", "b": "y"}, {"a": "y", "b": "x"}], ["x", "y"])
    assert sym.decide({"a": "x", "b": "y"}) is None
    empty = fit_dawid_skene([], ["x", "y"])
    assert empty.iterations == 0


def test_smoothing_keeps_an_annotator_with_few_answers_moderate() -> None:
    records, _, classes = simulate(500, 3, (0.9, 0.8, 0.7), seed=5)
    # a newcomer who answered three items, all wrong by the others' consensus
    for record in records[:3]:
        wrong = next(c for c in classes if record.annotations[0].categories[c] == 0.0)
        record.annotations.append(Annotation("new", categories={c: float(c == wrong) for c in classes}))
    model = fit_category_model(records, "textcat", classes).models[""]
    row = model.confusion[model.annotators.index("new")]
    assert (row > 0.05).all()  # not "always wrong" on three data points
    assert model.answers[model.annotators.index("new")] == 3


def test_multilabel_and_binary_answers_per_label() -> None:
    rng = np.random.default_rng(6)
    records, truth = [], []
    for i in range(600):
        holds = bool(rng.random() < 0.4)
        truth.append(holds)
        anns = []
        for j, acc in enumerate((0.95, 0.85, 0.6)):
            says = holds if rng.random() < acc else not holds
            # binary accept/reject answers to the question "SPAM?"
            anns.append(
                Annotation(f"ann{j}", categories={"SPAM": 1.0}, answer=Answer.ACCEPT if says else Answer.REJECT,
                           mode="binary")
            )
        records.append(Record(Document.create(f"msg {i}", id=f"m{i}"), anns))
    model = fit_category_model(records, "textcat_multilabel")
    assert list(model.models) == ["SPAM"]
    assert model.accuracies()["ann0"] == pytest.approx(0.95, abs=0.04)
    policy = Policy("dawid-skene", model)
    right = sum(
        1
        for record, holds in zip(records, truth, strict=True)
        if (m := merge_record(record, policy, task="textcat_multilabel")) and isinstance(m, Merged)
        and m.categories.get("SPAM") == float(holds)
    )
    assert right / len(records) > 0.93


def test_dawid_skene_needs_a_model_and_a_category_task() -> None:
    record = Record(Document.create("x"), [Annotation(n, categories={n.upper(): 1.0}) for n in "ab"])
    with pytest.raises(UsageError, match="fitted"):
        merge_record(record, "dawid-skene", task="textcat")
    with pytest.raises(UsageError, match="categories"):
        merge_record(record, "dawid-skene", task="ner")


def test_export_fits_in_one_pull_and_reports_the_reliabilities(tmp_path: Path) -> None:
    records, _, _ = simulate(400, 3, ACCURACIES, seed=7)
    src = tmp_path / "sim.jsonl"
    write_records(src, records)
    adapter = annobridge.open_adapter(f"jsonl:{src}")
    pulls = 0
    real_pull = adapter.pull

    def counting_pull(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        nonlocal pulls
        pulls += 1
        return real_pull(*args, **kwargs)

    adapter.pull = counting_pull  # type: ignore[method-assign]
    with adapter:
        report = export(adapter, tmp_path / "out", task="textcat", policy="dawid-skene", split="1,0,0")
    assert pulls == 1  # the survey spooled the records: the main pass did not pull again
    assert report.balanced and report.records_exported == 400
    assert not (tmp_path / "out" / ".survey-records.jsonl").exists()
    summary = report.dawid_skene
    assert summary is not None and summary["converged"]
    assert summary["annotators"]["ann0"]["accuracy"] == pytest.approx(0.9, abs=0.06)
    assert summary["annotators"]["ann0"]["answers"] == 400
    assert report.conflicts["resolved by dawid-skene"] > 300
    # majority drops its ties; dawid-skene weighs them
    majority = export(f"jsonl:{src}", tmp_path / "maj", task="textcat", policy="majority", split="1,0,0")
    assert majority.records_skipped[TIE_MAJORITY] > 0
    assert report.records_skipped[TIE_MAJORITY] == 0
    with pytest.raises(UsageError):
        export(f"jsonl:{src}", tmp_path / "ner", task="ner", policy="dawid-skene")


def test_a_tie_between_a_single_pair_is_reported_under_its_name() -> None:
    record = Record(Document.create("x"), [Annotation(n, categories={n.upper(): 1.0}) for n in "ab"])
    model = fit_category_model([record], "textcat", ["A", "B"])
    result = merge_record(record, Policy("dawid-skene", model), task="textcat")
    assert isinstance(result, Merged) and result.categories == {}
    assert set(result.dropped_categories.values()) == {"annotators tied (dawid-skene)"}
    assert not isinstance(result, MergeSkip)
