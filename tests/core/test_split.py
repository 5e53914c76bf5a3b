from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annobridge.errors import UsageError
from annobridge.split import SplitSpec, StratifiedAssigner, parse_split

ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=200, unique=True)


@settings(max_examples=60)
@given(old=ids, new=ids, seed=st.integers(0, 2**31), ratios=st.sampled_from(["0.8,0.1,0.1", "0.5,0.5", "0.7,0.2,0.1"]))
def test_adding_documents_never_moves_old_ones(old, new, seed, ratios) -> None:
    spec = parse_split(ratios, seed)
    before = {doc_id: spec.assign(doc_id) for doc_id in old}
    grown = parse_split(ratios, seed)  # a fresh object: nothing is remembered between runs
    for doc_id in new:
        grown.assign(doc_id)
    assert {doc_id: grown.assign(doc_id) for doc_id in old} == before


def test_split_follows_ratios_on_many_docs() -> None:
    spec = parse_split("0.8,0.1,0.1", seed=3)
    counts = Counter(spec.assign(f"doc-{i}") for i in range(20_000))
    assert abs(counts["train"] / 20_000 - 0.8) < 0.01
    assert abs(counts["dev"] / 20_000 - 0.1) < 0.01
    assert abs(counts["test"] / 20_000 - 0.1) < 0.01


def test_seed_changes_the_assignment() -> None:
    a, b = parse_split("0.5,0.5", 1), parse_split("0.5,0.5", 2)
    assert [a.assign(str(i)) for i in range(100)] != [b.assign(str(i)) for i in range(100)]


def test_zero_ratio_split_gets_nothing() -> None:
    spec = parse_split("0.9,0,0.1")
    assert "dev" not in {spec.assign(str(i)) for i in range(2000)}


@pytest.mark.parametrize("bad", ["", "a,b", "0.8,-0.1,0.3", "0,0", "0.2,0.2,0.2,0.4"])
def test_bad_ratios_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_split(bad)


def test_stratified_split_spreads_a_rare_label() -> None:
    spec = SplitSpec((0.8, 0.1, 0.1), seed=0)
    items = [(f"c{i}", "common") for i in range(500)] + [(f"r{i}", "rare") for i in range(10)]
    assigner = StratifiedAssigner(spec, items)
    rare = Counter(assigner.assign(f"r{i}") for i in range(10))
    assert rare == {"train": 8, "dev": 1, "test": 1}
    common = Counter(assigner.assign(f"c{i}") for i in range(500))
    assert common == {"train": 400, "dev": 50, "test": 50}
