from datetime import datetime, timezone

import pytest

from annobridge.errors import UsageError
from annobridge.merge import POLICY_REASONS, TIE_MAJORITY, Merged, MergeSkip, merge_record
from annobridge.model import Annotation, Answer, Document, Record, Span

DOC = Document.create("Maria moved to Oslo.", id="d1")
PERSON = Span(0, 5, "PERSON")
GPE = Span(15, 19, "GPE")


def at(hour: int) -> datetime:
    return datetime(2024, 1, 1, hour, tzinfo=timezone.utc)


def manual(who: str, spans, hour: int = 0, **kw) -> Annotation:
    return Annotation(who, spans=list(spans), created_at=at(hour), **kw)


def merged(record: Record, policy: str = "ground_truth") -> Merged:
    result = merge_record(record, policy)
    assert isinstance(result, Merged), result
    return result


def test_agreeing_annotators_are_no_conflict() -> None:
    rec = Record(DOC, [manual("a", [PERSON]), manual("b", [PERSON], 1)])
    result = merged(rec)
    assert result.spans == [PERSON] and result.conflict is None and result.annotators == ["a", "b"]


def test_latest_wins_and_conflict_is_reported() -> None:
    rec = Record(DOC, [manual("a", [PERSON], 5), manual("b", [PERSON, GPE], 2)])
    result = merged(rec, "latest")
    assert result.spans == [PERSON] and result.conflict == "resolved by latest"


def test_ground_truth_beats_latest() -> None:
    rec = Record(DOC, [manual("a", [PERSON], 5), manual("b", [PERSON, GPE], 2, ground_truth=True)])
    assert merged(rec).spans == [PERSON, GPE]
    assert merged(rec).conflict == "resolved by ground truth"


def test_majority_and_tie() -> None:
    rec = Record(DOC, [manual("a", [PERSON]), manual("b", [GPE]), manual("c", [PERSON])])
    assert merged(rec, "majority").spans == [PERSON]
    tie = Record(DOC, [manual("a", [PERSON]), manual("b", [GPE])])
    skip = merge_record(tie, "majority")
    # a deliberate policy outcome under its own name, not a data error
    assert isinstance(skip, MergeSkip) and skip.reason == TIE_MAJORITY and skip.reason in POLICY_REASONS


def test_unanimous_drops_disagreement_and_prefer_picks_annotator() -> None:
    rec = Record(DOC, [manual("a", [PERSON], 9), manual("b", [GPE], 1)])
    assert isinstance(merge_record(rec, "unanimous"), MergeSkip)
    assert merged(rec, "prefer:b").spans == [GPE]
    assert merged(rec, "prefer:zoe").conflict == "resolved by latest (preferred annotator absent)"


def test_ignore_and_manual_reject_are_dropped() -> None:
    rec = Record(DOC, [manual("a", [PERSON], answer=Answer.IGNORE), manual("b", [GPE], answer=Answer.REJECT)])
    skip = merge_record(rec)
    assert isinstance(skip, MergeSkip) and skip.reason == "only rejected manual annotations"
    assert merge_record(Record(DOC, [manual("a", [], answer=Answer.SKIP)])).reason == "only ignored or skipped answers"  # type: ignore[union-attr]
    assert merge_record(Record(DOC)).reason == "no annotations"  # type: ignore[union-attr]


def test_binary_rejects_are_negative_information() -> None:
    rec = Record(
        DOC,
        [
            Annotation("a", spans=[PERSON], answer=Answer.ACCEPT, mode="binary"),
            Annotation("a", spans=[GPE], answer=Answer.REJECT, mode="binary"),
            Annotation("b", categories={"TRAVEL": 1.0}, answer=Answer.REJECT, mode="binary"),
            Annotation("b", categories={"NEWS": 1.0}, answer=Answer.ACCEPT, mode="binary"),
        ],
    )
    result = merged(rec)
    assert result.spans == [PERSON] and result.incorrect_spans == [GPE]
    assert result.categories == {"TRAVEL": 0.0, "NEWS": 1.0}
    assert result.complete is False


def test_binary_conflict_on_same_question() -> None:
    rec = Record(
        DOC,
        [
            Annotation("a", spans=[PERSON], answer=Answer.ACCEPT, mode="binary", created_at=at(1)),
            Annotation("b", spans=[PERSON], answer=Answer.REJECT, mode="binary", created_at=at(2)),
        ],
    )
    result = merged(rec, "latest")
    assert result.incorrect_spans == [PERSON] and result.conflict == "resolved by latest"
    unanimous = merged(rec, "unanimous")
    assert unanimous.spans == [] and unanimous.incorrect_spans == []


def test_unknown_policy_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        merge_record(Record(DOC), "coin-flip")
    with pytest.raises(UsageError):
        merge_record(Record(DOC), "prefer")
