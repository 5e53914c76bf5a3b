import json
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from annobridge.model import Annotation, Answer, Document, LabelSchema, Prediction, Record, Span, TaskKind, content_id

labels = st.sampled_from(["PERSON", "ORG", "GPE", "spam", "ham", "Ünïcode label"])
texts = st.text(min_size=0, max_size=60)
scores = st.none() | st.floats(min_value=0, max_value=1, allow_nan=False)
times = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
metas = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3)


@st.composite
def spans(draw):
    start = draw(st.integers(0, 100))
    return Span(start, start + draw(st.integers(1, 20)), draw(labels), draw(scores), draw(st.none() | texts))


annotations = st.builds(
    Annotation,
    annotator=st.text(min_size=1, max_size=12),
    spans=st.lists(spans(), max_size=4),
    categories=st.dictionaries(labels, st.sampled_from([0.0, 1.0]), max_size=3),
    answer=st.sampled_from(list(Answer)),
    mode=st.sampled_from(["manual", "binary"]),
    ground_truth=st.booleans(),
    created_at=times,
    updated_at=times,
    native_ids=metas,
    meta=metas,
)
predictions = st.builds(
    Prediction,
    model_version=st.text(min_size=1, max_size=10),
    spans=st.lists(spans(), max_size=3),
    categories=st.dictionaries(labels, st.floats(0, 1, allow_nan=False), max_size=3),
    score=scores,
    created_at=times,
    native_ids=metas,
)
records = st.builds(
    Record,
    document=st.builds(Document, id=st.text(min_size=1, max_size=16), text=texts, meta=metas),
    annotations=st.lists(annotations, max_size=3),
    predictions=st.lists(predictions, max_size=2),
    native_ids=metas,
)


@given(records)
def test_jsonl_round_trip_is_lossless(record: Record) -> None:
    line = json.dumps(record.to_dict(), ensure_ascii=False)
    assert Record.from_dict(json.loads(line)) == record


def test_document_without_id_gets_a_content_hash() -> None:
    a, b = Document.create("same text"), Document.create("same text")
    assert a.id == b.id == content_id("same text")
    assert Document.create("other").id != a.id
    assert Document.create("x", id=7).id == "7"


def test_naive_and_epoch_timestamps_parse() -> None:
    ann = Annotation.from_dict({"annotator": "a", "created_at": 1633931094, "updated_at": "2024-05-01T10:00:00Z"})
    assert ann.created_at == datetime(2021, 10, 11, 5, 44, 54, tzinfo=timezone.utc)
    assert ann.updated_at is not None and ann.updated_at.utcoffset() == timedelta(0)
    assert ann.timestamp == ann.updated_at


def test_label_schema_infers_sorted_labels() -> None:
    recs = [
        Record(Document.create("a b"), [Annotation("x", spans=[Span(0, 1, "B"), Span(2, 3, "A")])]),
        Record(Document.create("c"), predictions=[Prediction("m", categories={"C": 0.3})]),
    ]
    schema = LabelSchema.infer("ner", recs)
    assert schema.task is TaskKind.NER and schema.labels == ["A", "B"]
    assert LabelSchema.infer("textcat", recs).labels == ["C"]
    assert LabelSchema.from_dict(schema.to_dict()) == schema
