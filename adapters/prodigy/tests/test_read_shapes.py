"""Every shape of Prodigy data, read from real exports; expectations come from the raw JSON."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from annobridge import Answer, Record, open_adapter
from annobridge.kit import as_utc
from annobridge_prodigy import ProdigyAdapter


def _tasks(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pull(path: Path, **kwargs: Any) -> tuple[list[Record], ProdigyAdapter]:
    adapter = open_adapter(f"prodigy:{path}")
    assert isinstance(adapter, ProdigyAdapter)
    return list(adapter.pull(**kwargs)), adapter


def _task_records(path: Path) -> tuple[list[tuple[dict[str, Any], Record]], ProdigyAdapter]:
    """A file whose tasks are one input each: (task, its record) pairs, one record per task, in order."""
    tasks = _tasks(path)
    records, adapter = _pull(path)
    assert len(records) == len(tasks)
    return list(zip(tasks, records, strict=True)), adapter


def _by_id(records: list[Record]) -> dict[str, Record]:
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)), "one record per document"
    return {r.id: r for r in records}


def test_ner_manual(data_dir: Path) -> None:
    path = data_dir / "fashion_brands_training_head.jsonl"
    tasks = _tasks(path)
    records, adapter = _pull(path)
    assert adapter.skipped == []
    assert [r.id for r in records] == [str(t["_input_hash"]) for t in tasks]
    for task, record in zip(tasks, records, strict=True):
        assert record.text == task["text"]
        assert record.document.meta == task["meta"]
        (ann,) = record.annotations
        assert ann.mode == "manual" and ann.answer == Answer.ACCEPT and not ann.ground_truth
        assert ann.annotator == (task.get("_session_id") or "prodigy")
        assert [(s.start, s.end, s.label) for s in ann.spans] == [
            (s["start"], s["end"], s["label"]) for s in task["spans"]
        ]
        # no claimed text in this export: the slice is filled in, for the exporter to verify
        assert all(s.text == task["text"][s.start : s.end] for s in ann.spans)
        assert ann.native_ids["_input_hash"] == task["_input_hash"]
        assert ann.native_ids["_task_hash"] == task["_task_hash"]
        assert ann.native_ids["_view_id"] == "ner_manual"
        assert record.predictions == []
    assert sum(len(r.annotations[0].spans) for r in records) == sum(len(t["spans"]) for t in tasks) > 0
    assert adapter.count() == len(records)


def test_ner_manual_groups_repeated_inputs_and_keeps_timestamps(data_dir: Path) -> None:
    path = data_dir / "ner_tweets_sample.jsonl"
    tasks = _tasks(path)
    per_input = Counter(t["_input_hash"] for t in tasks)
    assert max(per_input.values()) > 1, "the sample holds repeated inputs"
    records, adapter = _pull(path)
    by_id = _by_id(records)
    assert len(records) == len(per_input)
    # first-seen order
    assert [r.id for r in records] == [str(h) for h in dict.fromkeys(t["_input_hash"] for t in tasks)]
    for ih, n in per_input.items():
        assert len(by_id[str(ih)].annotations) == n
    answers = Counter(a.answer.value for r in records for a in r.annotations)
    assert answers == Counter(t["answer"] for t in tasks)
    assert answers["ignore"] > 0
    stamps = sorted(a.created_at for r in records for a in r.annotations if a.created_at)
    assert stamps == sorted(datetime.fromtimestamp(t["_timestamp"], tz=timezone.utc) for t in tasks)
    assert _mark(adapter.cursor) == stamps[-1]
    # span text claimed by the export is kept as it is, else filled from the document
    claimed = Counter(
        (s["start"], s["end"], s["label"], s.get("text", t["text"][s["start"] : s["end"]]))
        for t in tasks
        for s in t["spans"]
    )
    assert any("text" in s for t in tasks for s in t["spans"])
    got = Counter((s.start, s.end, s.label, s.text) for r in records for a in r.annotations for s in a.spans)
    assert got == claimed


def test_answers_and_since_filters(data_dir: Path) -> None:
    path = data_dir / "ner_tweets_sample.jsonl"
    tasks = _tasks(path)
    accepted, _ = _pull(path, answers={Answer.ACCEPT})
    assert sum(len(r.annotations) for r in accepted) == sum(t["answer"] == "accept" for t in tasks)
    assert all(a.answer == Answer.ACCEPT for r in accepted for a in r.annotations)

    times = sorted({t["_timestamp"] for t in tasks})
    middle = times[len(times) // 2]
    since = datetime.fromtimestamp(middle, tz=timezone.utc)
    newer, adapter = _pull(path, since=since)
    assert sum(len(r.annotations) for r in newer) == sum(t["_timestamp"] > middle for t in tasks) > 0
    assert all(a.created_at and a.created_at > since for r in newer for a in r.annotations)
    assert _mark(adapter.cursor) == datetime.fromtimestamp(times[-1], tz=timezone.utc)
    # the cursor from a pull gives nothing new on the next one
    again, second = _pull(path, since=adapter.cursor)
    assert again == [] and second.cursor == adapter.cursor


def test_old_manual_ner_without_spans_key(data_dir: Path) -> None:
    path = data_dir / "news_headlines_ner_manual.jsonl"
    tasks = _tasks(path)
    records, _ = _pull(path)
    no_spans = [t for t in tasks if "spans" not in t]
    assert no_spans, "some accepted headlines have no entities at all"
    by_id = _by_id(records)
    for task in no_spans:
        (ann,) = by_id[str(task["_input_hash"])].annotations
        assert ann.mode == "manual" and ann.spans == []
    # _session_id null -> the default annotator name
    assert {a.annotator for r in records for a in r.annotations} == {"prodigy"}


def test_binary_ner_teach_keeps_rejects(data_dir: Path) -> None:
    path = data_dir / "reddit_product_ner_teach.jsonl"
    tasks = _tasks(path)
    records, _ = _pull(path)
    anns = [a for r in records for a in r.annotations]
    assert len(records) == len({t["_input_hash"] for t in tasks}) < len(tasks)
    assert all(a.mode == "binary" for a in anns)
    # every span is answered on its own in this export (spans[i].answer may differ from the task's)
    per_span = Counter((t["_task_hash"], s["start"], s["end"], s.get("answer", t["answer"])) for t in tasks
                       for s in t["spans"])
    got = Counter((a.native_ids["_task_hash"], s.start, s.end, a.answer.value) for a in anns for s in a.spans)
    assert got == per_span
    assert any(s.get("answer", t["answer"]) != t["answer"] for t in tasks for s in t["spans"])
    assert Counter(a.answer.value for a in anns)["reject"] > 100
    single = [t for t in tasks if len(t["spans"]) == 1]
    assert len(single) > 200
    first, task = records[0], tasks[0]
    span = first.annotations[0].spans[0]
    assert (span.start, span.end, span.label, span.text) == (66, 68, "PRODUCT", "MX")
    assert span.score == pytest.approx(task["spans"][0]["score"])
    # the model's proposal is also kept as a prediction, with the sorter's score
    (pred,) = first.predictions
    assert pred.model_version == "core_web_sm"
    assert pred.score == pytest.approx(task["meta"]["score"])
    assert [s.key for s in pred.spans] == [(66, 68, "PRODUCT")]


@pytest.mark.parametrize(
    "name",
    [
        "reddit_insult_textcat_binary.jsonl",
        "github_documentation_textcat_binary.jsonl",
        "docs_issues_textcat_binary.jsonl",
    ],
)
def test_binary_textcat(data_dir: Path, name: str) -> None:
    path = data_dir / name
    tasks = _tasks(path)
    records, adapter = _pull(path)
    assert adapter.skipped == []
    anns = [a for r in records for a in r.annotations]
    assert len(anns) == len(tasks)
    for task, ann in zip(tasks, anns, strict=True):
        assert ann.mode == "binary"
        assert ann.answer.value == task["answer"]
        assert ann.categories == {task["label"]: 1.0 if task["answer"] == "accept" else 0.0}
        assert ann.spans == []
        # old exports' hashes follow an older scheme: kept as they are
        assert ann.native_ids["_input_hash"] == task["_input_hash"]
    assert {r.id for r in records} == {str(t["_input_hash"]) for t in tasks}


def test_binary_textcat_scores_become_predictions(data_dir: Path) -> None:
    pairs, _ = _task_records(data_dir / "github_documentation_textcat_binary.jsonl")
    for task, record in pairs:
        (pred,) = record.predictions
        assert pred.categories == {"DOCUMENTATION": pytest.approx(task["meta"]["score"])}


def test_choice(data_dir: Path) -> None:
    pairs, _ = _task_records(data_dir / "nel_emerson_choice.jsonl")
    assert len(pairs) == 30
    for task, record in pairs:
        (ann,) = record.annotations
        assert ann.mode == "manual" and ann.answer == Answer.ACCEPT
        assert set(ann.categories) == {o["id"] for o in task["options"]}
        assert {k for k, v in ann.categories.items() if v == 1.0} == set(task["accept"])
        assert sum(ann.categories.values()) == len(task["accept"])
        assert ann.spans == []
        # the highlighted mention was the model's: a prediction, not an entity annotation
        (pred,) = record.predictions
        assert pred.model_version == "en_core_web_lg"
        assert [s.key for s in pred.spans] == [(s["start"], s["end"], s["label"]) for s in task["spans"]]


def test_review_output(data_dir: Path) -> None:
    pairs, adapter = _task_records(data_dir / "restaurant_reviews_review.jsonl")
    tasks, records = [t for t, _ in pairs], [r for _, r in pairs]
    for task, record in pairs:
        final = [a for a in record.annotations if a.ground_truth]
        assert len(final) == 1
        assert [s.key for s in final[0].spans] == [(s["start"], s["end"], s["label"]) for s in task["spans"]]
        assert final[0].mode == "manual"
        versions = [a for a in record.annotations if not a.ground_truth]
        expected = [(s, v) for v in task["versions"] for s in v["sessions"]]
        assert [a.annotator for a in versions] == [s for s, _ in expected]
        for ann, (_, version) in zip(versions, expected, strict=True):
            assert [s.key for s in ann.spans] == [(s["start"], s["end"], s["label"]) for s in version["spans"]]
            assert ann.meta["default"] == version["default"]
            assert ann.native_ids["_task_hash"] == version["_task_hash"]
    disagreements = [t for t in tasks if len(t["versions"]) > 1]
    assert disagreements, "the sample holds records the reviewer had to decide"
    annotators = {a.annotator for r in records for a in r.annotations if not a.ground_truth}
    assert annotators == {"ner_model", "original_annotations"}
    assert _mark(adapter.cursor) == max(
        datetime.fromtimestamp(t["_timestamp"], tz=timezone.utc) for t in tasks if "_timestamp" in t
    )


def test_spacy_side_cats(data_dir: Path) -> None:
    pairs, _ = _task_records(data_dir / "cooking_cats_train_head.jsonl")
    for task, record in pairs:
        (ann,) = record.annotations
        assert ann.categories == task["cats"]
        assert ann.mode == "manual" and ann.answer == Answer.ACCEPT
        assert record.document.meta == task["meta"]
        assert record.id == str(record.native_ids["_input_hash"])


def test_unannotated_and_preannotated_inputs(data_dir: Path) -> None:
    raw = data_dir / "raw_shares_newsapi_prehashed.jsonl"
    tasks = _tasks(raw)
    records, _ = _pull(raw)
    assert len(records) == len({t["_input_hash"] for t in tasks}) < len(tasks)
    assert all(not r.annotations and not r.predictions for r in records)

    bio = data_dir / "bio_events_preannotated.jsonl"
    tasks = _tasks(bio)
    records, _ = _pull(bio)
    # spans without an answer are a suggestion shown to an annotator: predictions, never labels
    assert all(not r.annotations for r in records)
    assert sum(len(p.spans) for r in records for p in r.predictions) == sum(len(t["spans"]) for t in tasks)


def test_bad_lines_are_skipped_with_reasons(data_dir: Path, tmp_path: Path) -> None:
    good = _tasks(data_dir / "fashion_brands_training_head.jsonl")[:3]
    patterns = (data_dir / "fashion_brands_patterns_head.jsonl").read_text(encoding="utf-8").splitlines()
    lines = [
        json.dumps(good[0]),
        "{not json",
        "[1, 2]",
        json.dumps({"meta": {}}),
        json.dumps({**good[1], "answer": "maybe"}),
        json.dumps({**good[1], "spans": [{"start": 0, "end": 3}]}),
        json.dumps({"image": "data:...", "answer": "accept"}),
        patterns[0],
        "",
        json.dumps(good[2]),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, adapter = _pull(path)
    assert [r.id for r in records] == [str(good[0]["_input_hash"]), str(good[2]["_input_hash"])]
    reasons = dict(adapter.skipped)
    assert len(adapter.skipped) == 7
    assert reasons["mixed.jsonl:2"].startswith("invalid JSON")
    assert reasons["mixed.jsonl:3"] == "expected a JSON object, got list"
    assert reasons["mixed.jsonl:4"] == "no 'text' field"
    assert reasons["mixed.jsonl:5"] == "unknown answer 'maybe'"
    assert reasons["mixed.jsonl:6"] == "span 0 has no label"
    assert "image" in reasons["mixed.jsonl:7"]
    assert reasons["mixed.jsonl:8"] == "a match pattern, not a task"


def test_url_forms() -> None:
    from annobridge.adapter import AdapterURL

    url = AdapterURL.parse("prodigy+postgresql://annotator@db.example:5433/prodigy?dataset=news")
    assert (url.scheme, url.transport, url.host, url.port, url.path) == (
        "prodigy",
        "postgresql",
        "db.example",
        5433,
        "/prodigy",
    )
    assert url.params == {"dataset": "news"}
    sqlite = AdapterURL.parse("prodigy:data/prodigy.db?dataset=news")
    assert (sqlite.scheme, sqlite.path, sqlite.params) == ("prodigy", "data/prodigy.db", {"dataset": "news"})
    bare = AdapterURL.parse("prodigy.db?dataset=news")
    assert bare.scheme == "prodigy"
    assert open_adapter("prodigy:data/prodigy.db?dataset=news").kind == "sqlite"  # type: ignore[attr-defined]
    assert open_adapter("prodigy:x.jsonl").kind == "jsonl"  # type: ignore[attr-defined]
    assert open_adapter("prodigy+postgresql://u@127.0.0.1/p?dataset=d").kind == "postgresql"  # type: ignore[attr-defined]


def test_since_accepts_the_cursor_as_printed(data_dir: Path) -> None:
    path = data_dir / "ner_tweets_sample.jsonl"
    _, first = _pull(path)
    assert first.cursor is not None
    mark = _mark(first.cursor)
    naive = mark.replace(tzinfo=None).isoformat()  # what a user may type back
    assert str(first.cursor) == first.cursor["watermark"]  # what `annobridge pull` prints after --since
    last_second = mark.timestamp() - 1
    again, _ = _pull(path, since=naive)
    assert again == []
    earlier, _ = _pull(path, since=datetime.fromtimestamp(last_second, tz=timezone.utc).isoformat())
    assert sum(len(r.annotations) for r in earlier) >= 1


def _mark(cursor: Any) -> datetime:
    """A cursor's watermark (its ``str``, what ``annobridge pull`` prints) as a datetime."""
    mark = as_utc(cursor["watermark"])
    assert mark is not None
    return mark
