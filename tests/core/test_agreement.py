"""annobridge.agreement: the statistics against published worked examples and the krippendorff package,
and the vote semantics (latest answer, ignore/skip, ground truth) on small hand-made records."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from annobridge import agreement
from annobridge.agreement import NotEnoughAnnotatorsError, cohen_kappa, fleiss_kappa, krippendorff_alpha
from annobridge.errors import UsageError
from annobridge.model import Annotation, Answer, Document, Record, Span

NAN = math.nan
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)

# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", section C: nominal data, any number
# of observers, missing data. 4 observers x 12 units; the paper gives alpha = 0.743 (nominal). The same table
# is the "C" example of R's DescTools::KrippAlpha (which puts unit 12's single value with observer C; a unit
# with one value is not pairable, so alpha is the same).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]

# Fleiss (1971) / Wikipedia "Fleiss' kappa", worked example: 10 subjects, 14 raters each, 5 categories;
# n_ij = raters who put subject i in category j. P-bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Wikipedia "Cohen's kappa", example: 50 grant proposals, readers A and B say yes/no.
# Both yes 20, A yes B no 5, A no B yes 10, both no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
COHEN_WIKIPEDIA = [[20, 5], [10, 15]]


def _textcat_records(matrix: list[list[float]], prefix: str = "v") -> list[Record]:
    """coders x units -> one record per unit, each coder's value as an exclusive textcat choice."""
    records = []
    n_units = len(matrix[0])
    for u in range(n_units):
        anns = []
        for c, row in enumerate(matrix):
            value = row[u]
            if isinstance(value, float) and math.isnan(value):
                continue
            anns.append(Annotation(f"coder{c}", categories={f"{prefix}{value}": 1.0}))
        records.append(Record(Document.create(f"unit {u}", id=f"u{u}"), anns))
    return records


# --------------------------------------------------------------------------- worked examples


def test_krippendorff_2011_nominal_example() -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF_2011), 3) == 0.743


def test_krippendorff_2011_example_through_records() -> None:
    report = agreement(_textcat_records(KRIPPENDORFF_2011), "textcat", bootstrap=0)
    assert round(report.overall["alpha"].value or 0, 3) == 0.743
    assert report.overall["alpha"].n == 11  # unit 12 has a single value: not pairable


def test_fleiss_wikipedia_example() -> None:
    assert round(fleiss_kappa(FLEISS_WIKIPEDIA), 3) == 0.210


def test_fleiss_wikipedia_example_through_records() -> None:
    # raters are interchangeable in Fleiss' kappa: give subject i's 14 ratings to raters r0..r13 in order
    records = []
    for i, counts in enumerate(FLEISS_WIKIPEDIA):
        values = [c for c, n in enumerate(counts) for _ in range(n)]
        anns = [Annotation(f"r{r}", categories={f"cat{v}": 1.0}) for r, v in enumerate(values)]
        records.append(Record(Document.create(f"subject {i}", id=str(i)), anns))
    report = agreement(records, "textcat", bootstrap=0)
    assert round(report.overall["fleiss_kappa"].value or 0, 3) == 0.210
    assert len(report.annotators) == 14


def test_cohen_wikipedia_example() -> None:
    assert cohen_kappa(COHEN_WIKIPEDIA) == pytest.approx(0.4)


def test_cohen_wikipedia_example_through_binary_answers() -> None:
    # each proposal a binary textcat question (accept = yes), as Prodigy's textcat.teach stores it
    cells = [("accept", "accept", 20), ("accept", "reject", 5), ("reject", "accept", 10), ("reject", "reject", 15)]
    records, i = [], 0
    for a, b, n in cells:
        for _ in range(n):
            anns = [
                Annotation(name, categories={"FUND": 1.0}, answer=Answer(ans), mode="binary")
                for name, ans in (("A", a), ("B", b))
            ]
            records.append(Record(Document.create(f"proposal {i}", id=str(i)), anns))
            i += 1
    report = agreement(records, "textcat", bootstrap=0)
    pair = report.pair("A", "B")
    assert pair is not None and pair.figures["cohen_kappa"].value == pytest.approx(0.4)
    assert pair.figures["observed"].value == pytest.approx(0.7)
    assert pair.figures["cohen_kappa"].n == 50


# --------------------------------------------------------------------------- against references


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_alpha_matches_krippendorff_package_with_missing_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    coders, units, values = int(rng.integers(2, 7)), int(rng.integers(5, 80)), int(rng.integers(2, 7))
    data = rng.integers(0, values, size=(coders, units)).astype(float)
    # agreement above chance: most coders copy a per-unit truth
    truth = rng.integers(0, values, size=units)
    copy = rng.random((coders, units)) < 0.6
    data[copy] = np.broadcast_to(truth, data.shape)[copy]
    data[rng.random((coders, units)) < 0.3] = np.nan
    data[:, 0] = [0.0, 1.0] + [np.nan] * (coders - 2)  # at least one pairable unit, two values
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(data) == pytest.approx(expected, abs=1e-12)
    report = agreement(_textcat_records(data.tolist()), "textcat", bootstrap=0)
    assert report.overall["alpha"].value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_kappa_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, size=60)
    b = np.where(rng.random(60) < 0.5, a, rng.integers(0, 3, size=60))
    report = agreement(_textcat_records([a.astype(float).tolist(), b.astype(float).tolist()]), "textcat", bootstrap=0)
    pair = report.pair("coder0", "coder1")
    assert pair is not None
    assert pair.figures["cohen_kappa"].value == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    # two coders, no missing data: alpha is the pair's alpha too
    expected = krippendorff.alpha(reliability_data=np.stack([a, b]).astype(float), level_of_measurement="nominal")
    assert pair.figures["alpha"].value == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- spans


def _rec(doc_id: str, text: str, *anns: Annotation) -> Record:
    return Record(Document(doc_id, text), list(anns))


def test_span_f1_exact_and_overlap_by_hand() -> None:
    text = "Maria Lopez works at Acme Corp in Oslo today"
    a = Annotation("a", spans=[Span(0, 11, "PER"), Span(21, 30, "ORG")])
    b = Annotation("b", spans=[Span(0, 11, "PER"), Span(21, 25, "ORG"), Span(34, 38, "LOC")])
    report = agreement([_rec("d1", text, a, b)], "ner", bootstrap=0)
    # exact: 1 match of 2 + 3 spans -> 2*1/5; overlap: a's 2 both found (P=1), b's 2 of 3 found (R=2/3)
    assert report.overall["f1_exact"].value == pytest.approx(0.4)
    assert report.overall["f1_overlap"].value == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert report.per_label["PER"]["f1_exact"].value == pytest.approx(1.0)
    assert report.per_label["ORG"]["f1_exact"].value == pytest.approx(0.0)
    assert report.per_label["ORG"]["f1_overlap"].value == pytest.approx(1.0)
    assert report.metric == "f1_exact" and report.matrix() == [[1.0, pytest.approx(0.4)], [pytest.approx(0.4), 1.0]]


def test_token_alpha_matches_krippendorff_on_tags() -> None:
    texts = ["Maria Lopez works at Acme Corp", "Oslo is cold in winter", "Bob met Alice in Paris"]
    votes = {
        "a": [[(0, 11, "PER"), (21, 30, "ORG")], [(0, 4, "LOC")], [(0, 3, "PER"), (8, 13, "PER"), (17, 22, "LOC")]],
        "b": [[(0, 5, "PER"), (21, 25, "ORG")], [(0, 4, "LOC")], [(0, 3, "PER"), (17, 22, "ORG")]],
        "c": [[(0, 11, "PER")], [], [(0, 3, "PER"), (8, 13, "PER"), (17, 22, "LOC")]],
    }
    records = [
        _rec(f"d{i}", text, *(Annotation(n, spans=[Span(*s) for s in v[i]]) for n, v in votes.items()))
        for i, text in enumerate(texts)
    ]
    report = agreement(records, "ner", bootstrap=0)
    # the same tags by hand (whitespace tokens are spaCy's tokens here), coders x tokens
    codes = {"O": 0, "PER": 1, "ORG": 2, "LOC": 3}
    rows = []
    for n in votes:
        row = []
        for i, text in enumerate(texts):
            pos = 0
            for word in text.split(" "):
                start, end = pos, pos + len(word)
                pos = end + 1
                tag = next((lb for s, e, lb in sorted(votes[n][i]) if s < end and start < e), "O")
                row.append(codes[tag])
        rows.append(row)
    expected = krippendorff.alpha(reliability_data=np.array(rows, dtype=float), level_of_measurement="nominal")
    assert report.overall["token_alpha"].value == pytest.approx(expected, abs=1e-12)
    assert report.overall["token_alpha"].n == len(rows[0])


def test_spans_task_counts_overlapping_spans_per_label() -> None:
    text = "New York City Marathon"
    a = Annotation("a", spans=[Span(0, 13, "GPE"), Span(0, 22, "EVENT")])
    b = Annotation("b", spans=[Span(0, 8, "GPE"), Span(0, 22, "EVENT")])
    report = agreement([_rec("d", text, a, b)], "spans", bootstrap=0)
    assert report.per_label["EVENT"]["f1_exact"].value == pytest.approx(1.0)
    assert report.per_label["GPE"]["f1_exact"].value == pytest.approx(0.0)
    assert report.per_label["EVENT"]["token_alpha"].value is None  # both mark every token: no variation
    assert report.per_label["GPE"]["token_observed"].value == pytest.approx(0.75)  # "City" differs, 3 of 4 agree


def test_binary_span_answers_are_yes_no_questions() -> None:
    text = "Buy the iPhone or the Pixel"
    iphone, pixel = Span(8, 14, "PRODUCT"), Span(22, 27, "PRODUCT")
    anns = [
        Annotation("a", spans=[iphone], answer=Answer.ACCEPT, mode="binary"),
        Annotation("b", spans=[iphone], answer=Answer.ACCEPT, mode="binary"),
        Annotation("a", spans=[pixel], answer=Answer.ACCEPT, mode="binary"),
        Annotation("b", spans=[pixel], answer=Answer.REJECT, mode="binary"),
    ]
    report = agreement([_rec("d", text, *anns)], "ner", bootstrap=0)
    assert report.metric == "cohen_kappa"  # no manual spans: no F1
    pair = report.pair("a", "b")
    assert pair is not None and pair.figures["observed"].value == pytest.approx(0.5)
    assert pair.figures["observed"].n == 2 and "f1_exact" not in report.overall


# --------------------------------------------------------------------------- votes


def test_latest_answer_is_the_vote_and_ignore_is_none() -> None:
    text = "Maria works at Acme"
    early = Annotation("a", spans=[Span(0, 5, "ORG")], created_at=T0)
    late = Annotation("a", spans=[Span(0, 5, "PER")], created_at=T0 + timedelta(minutes=5))
    b = Annotation("b", spans=[Span(0, 5, "PER")], created_at=T0)
    ignored = Annotation("c", answer=Answer.IGNORE, created_at=T0)
    report = agreement([_rec("d", text, late, early, b, ignored)], "ner", bootstrap=0)
    assert report.annotators == ["a", "b"]  # c only ignored: no vote
    assert report.overall["f1_exact"].value == pytest.approx(1.0)  # a's later PER, not the earlier ORG
    assert report.superseded == 1 and report.excluded["ignored or skipped"] == 1
    # a later ignore withdraws the earlier vote
    withdrawn = Annotation("a", answer=Answer.IGNORE, created_at=T0 + timedelta(minutes=9))
    other = _rec("e", text, Annotation("a", spans=[Span(0, 5, "PER")]), Annotation("b", spans=[Span(0, 5, "PER")]))
    again = agreement([_rec("d", text, late, early, b, withdrawn), other], "ner", bootstrap=0)
    assert again.documents_compared == 1


def test_rejected_manual_annotation_is_not_a_vote() -> None:
    rec = _rec("d", "Maria", Annotation("a", spans=[Span(0, 5, "PER")]), Annotation("b", answer=Answer.REJECT))
    with pytest.raises(NotEnoughAnnotatorsError, match="only one annotator"):
        agreement([rec], "ner")


def test_ground_truth_is_left_out_by_default_and_its_own_voter_when_included() -> None:
    text = "Maria works at Acme"
    anns = [
        Annotation("alice", spans=[Span(0, 5, "PER")]),
        Annotation("bob", spans=[Span(15, 19, "ORG")]),
        Annotation("alice", spans=[Span(0, 5, "PER"), Span(15, 19, "ORG")], ground_truth=True),
    ]
    default = agreement([_rec("d", text, *anns)], "ner", bootstrap=0)
    assert default.annotators == ["alice", "bob"]
    assert sum(n for reason, n in default.excluded.items() if reason.startswith("ground truth")) == 1
    assert default.overall["f1_exact"].value == pytest.approx(0.0)
    included = agreement([_rec("d", text, *anns)], "ner", bootstrap=0, include_ground_truth=True)
    assert included.annotators == ["alice", "alice (ground truth)", "bob"]
    pair = included.pair("alice", "alice (ground truth)")
    assert pair is not None and pair.figures["f1_exact"].value == pytest.approx(2 / 3)


def test_consensus_is_the_majority_of_the_others() -> None:
    records = []
    for i in range(30):
        truth = "pos" if i % 3 else "neg"
        wrong = "neg" if truth == "pos" else "pos"
        anns = [
            Annotation("a", categories={truth: 1.0}),
            Annotation("b", categories={truth: 1.0}),
            Annotation("c", categories={wrong if i % 2 else truth: 1.0}),
        ]
        records.append(_rec(str(i), f"text {i}", *anns))
    report = agreement(records, "textcat", bootstrap=0)
    people = {p.name: p for p in report.per_annotator}
    # a's others are b and c: a strict majority only where they agree (c right): a agrees with it there
    assert people["a"].consensus["observed"].value == pytest.approx(1.0)
    assert people["a"].consensus["observed"].n == 15
    # c's others (a, b) always agree: half of c's answers are wrong
    assert people["c"].consensus["observed"].value == pytest.approx(0.5)
    assert people["c"].consensus["observed"].n == 30
    assert people["a"].agreement["b"] == pytest.approx(1.0)


def test_answers_per_hour_uses_the_median_gap() -> None:
    records = []
    minutes = [0, 1, 2, 3, 120, 121]  # a two-hour break between sessions
    for i, m in enumerate(minutes):
        anns = [
            Annotation("a", categories={"x": 1.0}, created_at=T0 + timedelta(minutes=m)),
            Annotation("b", categories={"x": 1.0}),
        ]
        records.append(_rec(str(i), f"t{i}", *anns))
    report = agreement(records, "textcat_multilabel", bootstrap=0)
    people = {p.name: p for p in report.per_annotator}
    assert people["a"].answers_per_hour == pytest.approx(60.0)  # median gap 1 minute
    assert people["b"].answers_per_hour is None  # no timestamps
    assert people["a"].documents == 6 and people["a"].answers == 6


def test_multilabel_absent_label_is_no_and_labels_filter() -> None:
    records = [
        _rec("1", "one", Annotation("a", categories={"x": 1.0, "y": 1.0}), Annotation("b", categories={"x": 1.0})),
        _rec("2", "two", Annotation("a", categories={"y": 1.0}), Annotation("b", categories={"y": 1.0})),
    ]
    report = agreement(records, "textcat_multilabel", bootstrap=0)
    assert report.labels == ["x", "y"]
    # x: doc1 yes/yes, doc2 no/no (absent in a manual vote means no); y: doc1 yes/no, doc2 yes/yes
    assert report.per_label["x"]["observed"].value == pytest.approx(1.0)
    assert report.per_label["y"]["observed"].value == pytest.approx(0.5)
    assert report.overall["observed"].value == pytest.approx(0.75) and report.overall["observed"].n == 4
    only_x = agreement(records, "textcat_multilabel", labels=["x"], bootstrap=0)
    assert list(only_x.per_label) == ["x"] and only_x.overall["observed"].n == 2


def test_too_few_annotators_and_wrong_task_are_clear_errors() -> None:
    one = [_rec(str(i), f"t{i}", Annotation("solo", spans=[Span(0, 1, "X")])) for i in range(3)]
    with pytest.raises(NotEnoughAnnotatorsError, match=r"only one annotator \(solo\) in 3 records"):
        agreement(one, "ner")
    apart = [_rec("1", "a", Annotation("x", spans=[Span(0, 1, "X")])), _rec("2", "b", Annotation("y"))]
    with pytest.raises(NotEnoughAnnotatorsError, match="no document has votes from two"):
        agreement(apart, "ner")
    with pytest.raises(UsageError, match="none of the 3 records has a category"):
        agreement(one, "textcat")
    with pytest.raises(UsageError, match="bootstrap"):
        agreement(one, "ner", bootstrap=-1)


# --------------------------------------------------------------------------- bootstrap and report


def _noisy_records(n: int, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        truth = int(rng.integers(0, 3))
        anns = [
            Annotation(name, categories={f"c{truth if rng.random() < 0.7 else int(rng.integers(0, 3))}": 1.0})
            for name in ("a", "b", "c")
        ]
        records.append(_rec(str(i), f"t{i}", *anns))
    return records


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    records = _noisy_records(120, 0)
    first = agreement(records, "textcat", bootstrap=300, seed=7)
    again = agreement(records, "textcat", bootstrap=300, seed=7)
    other = agreement(records, "textcat", bootstrap=300, seed=8)
    for name in ("alpha", "fleiss_kappa", "observed"):
        est = first.overall[name]
        assert est.ci is not None and est.value is not None
        assert est.ci[0] < est.value < est.ci[1]
        assert est.ci == again.overall[name].ci
        assert est.ci != other.overall[name].ci
    small = agreement(_noisy_records(30, 0), "textcat", bootstrap=300, seed=7).overall["alpha"].ci
    large = agreement(_noisy_records(600, 0), "textcat", bootstrap=300, seed=7).overall["alpha"].ci
    assert small is not None and large is not None and (large[1] - large[0]) < (small[1] - small[0])
    assert agreement(records, "textcat", bootstrap=0).overall["alpha"].ci is None


def test_report_to_dict_is_strict_json_and_no_text_leaves_no_text() -> None:
    text = "Secretive Zanzibar Holdings bought Quixotic Ltd"
    a = Annotation("a", spans=[Span(10, 27, "ORG"), Span(35, 47, "ORG")])
    b = Annotation("b", spans=[Span(10, 19, "LOC")])
    with_text = agreement([_rec("d", text, a, b)], "ner", bootstrap=50)
    dumped = json.dumps(with_text.to_dict(), allow_nan=False)
    assert "Zanzibar" in dumped and with_text.examples[0]["votes"]["a"][0]["text"] == "Zanzibar Holdings"
    without = json.dumps(agreement([_rec("d", text, a, b)], "ner", bootstrap=50, include_text=False).to_dict())
    for word in ("Secretive", "Zanzibar", "Holdings", "Quixotic"):
        assert word not in without
    assert '"text_hash": "sha1:' in without
