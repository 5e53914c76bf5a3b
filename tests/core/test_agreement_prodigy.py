"""Agreement on real multi-annotator data: Prodigy ``review`` output over the MIT Restaurant corpus.

Every record holds what two sessions said (``original_annotations``: the corpus's own annotation;
``ner_model``: a model's spans saved as a session) and the reviewer's decision (ground truth). The figures
that annobridge.agreement reads through the Prodigy adapter are checked against counts made here directly
on the JSON lines, with Prodigy's own tokens for the token-level alpha.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest

import annobridge
from annobridge import AgreementReport, agreement

DATA = Path(__file__).resolve().parents[1] / "data" / "prodigy" / "restaurant_reviews_review_every15.jsonl"
SESSIONS = ("ner_model", "original_annotations")
Key = tuple[int, int, str]


def _tasks() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def _session_versions(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """session -> the version it produced (a version names every session that produced it)."""
    return {session: version for version in task["versions"] for session in version["sessions"]}


def _keys(spans: list[dict[str, Any]]) -> set[Key]:
    return {(s["start"], s["end"], s["label"]) for s in spans}


def _report(**kwargs: Any) -> AgreementReport:
    with annobridge.open_adapter(f"prodigy:{DATA}") as source:
        return agreement(source.pull(), "ner", **kwargs)


@pytest.fixture(scope="module")
def report() -> AgreementReport:
    return _report(bootstrap=500, seed=1)


def test_the_two_sessions_are_the_annotators(report: AgreementReport) -> None:
    tasks = _tasks()
    assert report.records == len(tasks) == 102
    assert report.annotators == list(SESSIONS)
    assert report.documents_compared == len(tasks)
    assert report.excluded["ground truth (reviewer decision; count it with --ground-truth)"] == len(tasks)


def test_exact_and_overlap_f1_equal_a_direct_count(report: AgreementReport) -> None:
    both = n_a = n_b = found_a = found_b = 0
    per_label: Counter[str] = Counter()
    per_label_n: Counter[str] = Counter()
    for task in _tasks():
        versions = _session_versions(task)
        a, b = _keys(versions["ner_model"]["spans"]), _keys(versions["original_annotations"]["spans"])
        both += len(a & b)
        n_a, n_b = n_a + len(a), n_b + len(b)
        found_a += sum(any(t[2] == s[2] and s[0] < t[1] and t[0] < s[1] for t in b) for s in a)
        found_b += sum(any(t[2] == s[2] and s[0] < t[1] and t[0] < s[1] for t in a) for s in b)
        per_label.update(s[2] for s in a & b)
        per_label_n.update(s[2] for s in a)
        per_label_n.update(s[2] for s in b)
    pair = report.pair(*SESSIONS)
    assert pair is not None and pair.documents == 102
    exact = 2 * both / (n_a + n_b)
    assert pair.figures["f1_exact"].value == pytest.approx(exact)
    assert report.overall["f1_exact"].value == pytest.approx(exact)  # one pair: overall = the pair
    assert pair.figures["f1_exact"].n == n_a + n_b
    precision, recall = found_a / n_a, found_b / n_b
    assert pair.figures["f1_overlap"].value == pytest.approx(2 * precision * recall / (precision + recall))
    for label in ("Cuisine", "Location", "Amenity"):
        assert report.per_label[label]["f1_exact"].value == pytest.approx(2 * per_label[label] / per_label_n[label])
    assert 0.5 < exact < 0.95  # two sessions that mostly, not always, agree
    assert report.matrix() == [[1.0, pytest.approx(exact)], [pytest.approx(exact), 1.0]]


def test_token_alpha_equals_krippendorff_on_prodigys_own_tokens(report: AgreementReport) -> None:
    rows: dict[str, list[str]] = {s: [] for s in SESSIONS}
    for task in _tasks():
        versions = _session_versions(task)
        for session in SESSIONS:
            spans = sorted(_keys(versions[session]["spans"]))
            for token in task["tokens"]:
                tag = next((lb for s, e, lb in spans if s < token["end"] and token["start"] < e), "O")
                rows[session].append(tag)
    labels = sorted({t for row in rows.values() for t in row})
    data = np.array([[labels.index(t) for t in rows[s]] for s in SESSIONS], dtype=float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert report.overall["token_alpha"].value == pytest.approx(expected, abs=1e-12)
    assert report.overall["token_alpha"].n == data.shape[1]
    observed = float(np.mean(data[0] == data[1]))
    assert report.overall["token_observed"].value == pytest.approx(observed)


def test_intervals_bracket_the_estimates_and_are_reproducible(report: AgreementReport) -> None:
    for name in ("f1_exact", "f1_overlap", "token_alpha"):
        est = report.overall[name]
        assert est.ci is not None and est.value is not None
        assert est.ci[0] <= est.value <= est.ci[1]
        assert 0.0 < est.ci[1] - est.ci[0] < 0.25  # 102 documents: informative, not exact
    again = _report(bootstrap=500, seed=1)
    assert again.overall["f1_exact"].ci == report.overall["f1_exact"].ci


def test_the_reviewer_is_a_third_voter_when_asked() -> None:
    report = _report(bootstrap=0, include_ground_truth=True)
    reviewer = "original_annotations (ground truth)"
    assert report.annotators == [*SESSIONS, reviewer]
    both = n = 0
    for task in _tasks():
        final = _keys(task["spans"])
        model = _keys(_session_versions(task)["ner_model"]["spans"])
        both += len(final & model)
        n += len(final) + len(model)
    pair = report.pair("ner_model", reviewer)
    assert pair is not None and pair.figures["f1_exact"].value == pytest.approx(2 * both / n)
    people = {p.name: p for p in report.per_annotator}
    # only the reviewer's decisions carry Prodigy's _timestamp
    assert people[reviewer].answers_per_hour is not None and people["ner_model"].answers_per_hour is None
    stamps = sorted(t["_timestamp"] for t in _tasks() if "_timestamp" in t)
    gaps = [b - a for a, b in pairwise(stamps) if b > a]
    assert people[reviewer].answers_per_hour == pytest.approx(3600 / float(np.median(gaps)))
