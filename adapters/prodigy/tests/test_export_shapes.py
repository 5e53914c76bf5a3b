"""Every kind of Prodigy data through ``annobridge.export.export``: the report must add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.tokens import DocBin

from annobridge import Answer, open_adapter
from annobridge_prodigy import ProdigyAdapter

export_module = pytest.importorskip("annobridge.export")


def _tasks(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _docs(out: Path, report: Any) -> list[Any]:
    vocab = spacy.blank("en").vocab
    docs = []
    for files in report.files.values():
        for name in files:
            docs.extend(DocBin().from_disk(out / name).get_docs(vocab))
    return docs


def _check_balance(report: Any, source_url: str) -> None:
    adapter = open_adapter(source_url)
    pulled = list(adapter.pull())
    assert report.balanced
    assert report.records_read == len(pulled) + len(adapter.skipped)
    assert report.records_read == report.records_exported + sum(report.records_skipped.values())
    assert sum(report.docs_per_split.values()) == report.records_exported
    manifest = (Path(report.out_dir) / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == report.records_exported


CASES = [
    ("fashion_brands_training_head.jsonl", "ner"),
    ("ner_tweets_sample.jsonl", "ner"),
    ("news_headlines_ner_manual.jsonl", "ner"),
    ("reddit_product_ner_teach.jsonl", "ner"),
    ("restaurant_reviews_review.jsonl", "ner"),
    ("restaurant_reviews_review.jsonl", "spans"),
    ("reddit_insult_textcat_binary.jsonl", "textcat_multilabel"),
    ("docs_issues_textcat_binary.jsonl", "textcat_multilabel"),
    ("nel_emerson_choice.jsonl", "textcat"),
    ("cooking_cats_train_head.jsonl", "textcat_multilabel"),
]


@pytest.mark.parametrize(("name", "task"), CASES)
def test_export_report_adds_up(data_dir: Path, tmp_path: Path, name: str, task: str) -> None:
    url = f"prodigy:{data_dir / name}"
    out = tmp_path / "corpus"
    report = export_module.export(url, out, task=task, split="0.8,0.2", seed=1)
    _check_balance(report, url)
    docs = _docs(out, report)
    assert len(docs) == report.records_exported
    # the only bad data in these real exports: a tweet that is a single space (accepted twice)
    blank = len({t["_input_hash"] for t in _tasks(data_dir / name) if not t["text"].strip()})
    assert report.records_skipped["empty text"] == blank
    assert report.data_errors == blank, report.to_dict()
    assert set(report.records_skipped) <= export_module.POLICY_REASONS | {"empty text"}, report.records_skipped


def test_unannotated_stream_exports_nothing_and_says_so(data_dir: Path, tmp_path: Path) -> None:
    """A raw input stream (no answers) exports 0 of N: an error naming why, and no output folder."""
    out = tmp_path / "corpus"
    with pytest.raises(export_module.NothingExportedError) as info:
        export_module.export(f"prodigy:{data_dir / 'raw_shares_newsapi_prehashed.jsonl'}", out, task="ner")
    report = info.value.report
    assert report.records_read == 55 and report.records_exported == 0
    assert report.records_skipped == {"no annotations": 55}
    assert "0 of 55 records exported (no annotations (55))" in str(info.value)
    assert not out.exists()


def test_manual_ner_export_keeps_every_entity(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "fashion_brands_training_head.jsonl"
    tasks = _tasks(path)
    report = export_module.export(f"prodigy:{path}", tmp_path / "out", task="ner", split="1.0")
    docs = _docs(tmp_path / "out", report)
    assert report.records_exported == len(tasks)
    by_text = {d.text: d for d in docs}
    for task in tasks:
        doc = by_text[task["text"]]
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
            (s["start"], s["end"], s["label"]) for s in task["spans"]
        ]


def test_ignored_answers_are_skipped_and_counted(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "ner_tweets_sample.jsonl"
    tasks = _tasks(path)
    report = export_module.export(f"prodigy:{path}", tmp_path / "out", task="ner", split="1.0")
    per_input: dict[int, set[str]] = {}
    for task in tasks:
        per_input.setdefault(task["_input_hash"], set()).add(task["answer"])
    only_ignored = sum(1 for answers in per_input.values() if answers == {"ignore"})
    assert only_ignored > 0
    assert report.records_skipped["only ignored or skipped answers"] == only_ignored
    blank = len({t["_input_hash"] for t in tasks if not t["text"].strip()})
    assert blank == 1
    assert report.records_exported == len(per_input) - only_ignored - blank


def test_binary_ner_rejects_become_incorrect_spans(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "reddit_product_ner_teach.jsonl"
    report = export_module.export(f"prodigy:{path}", tmp_path / "out", task="ner", split="1.0")
    assert report.incorrect_spans > 100
    docs = _docs(tmp_path / "out", report)
    assert sum(len(d.ents) for d in docs) > 0


def test_binary_textcat_labels(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "reddit_insult_textcat_binary.jsonl"
    tasks = _tasks(path)
    report = export_module.export(f"prodigy:{path}", tmp_path / "out", task="textcat_multilabel", split="1.0")
    docs = _docs(tmp_path / "out", report)
    by_text: dict[str, set[str]] = {}
    for task in tasks:
        by_text.setdefault(task["text"], set()).add(task["answer"])
    for doc in docs:
        answers = by_text[doc.text] - {"ignore"}
        if answers == {"accept"}:
            assert doc.cats == {"INSULT": 1.0}
        elif answers == {"reject"}:
            assert doc.cats == {"INSULT": 0.0}


def test_review_export_uses_the_reviewers_decision(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "restaurant_reviews_review.jsonl"
    tasks = _tasks(path)
    report = export_module.export(f"prodigy:{path}", tmp_path / "out", task="ner", split="1.0")
    assert report.records_exported == len(tasks)
    disagreements = sum(1 for t in tasks if len({v["_task_hash"] for v in t["versions"]}) > 1)
    assert disagreements > 0
    assert sum(report.conflicts.values()) >= disagreements
    by_text = {d.text: d for d in _docs(tmp_path / "out", report)}
    for task in tasks:
        assert [(e.start_char, e.end_char, e.label_) for e in by_text[task["text"]].ents] == [
            (s["start"], s["end"], s["label"]) for s in task["spans"]
        ]
    assert set(report.annotators) >= {"original_annotations"}


def test_choice_and_cats_exports(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "cooking_cats_train_head.jsonl"
    tasks = _tasks(path)
    report = export_module.export(f"prodigy:{path}", tmp_path / "cooking", task="textcat_multilabel", split="1.0")
    assert report.records_exported == len(tasks)
    assert len(report.labels) == 11
    docs = {d.text: d for d in _docs(tmp_path / "cooking", report)}
    assert all(docs[t["text"]].cats == t["cats"] for t in tasks)

    path = data_dir / "nel_emerson_choice.jsonl"
    tasks = _tasks(path)
    report = export_module.export(f"prodigy:{path}", tmp_path / "nel", task="textcat", split="1.0")
    docs = {d.text: d for d in _docs(tmp_path / "nel", report)}
    for task in tasks:
        chosen = [k for k, v in docs[task["text"]].cats.items() if v == 1.0]
        assert chosen == task["accept"]


def test_export_from_a_database_with_bad_lines(data_dir: Path, tmp_path: Path) -> None:
    tasks = _tasks(data_dir / "news_headlines_ner_manual.jsonl")
    db_url = f"prodigy:{tmp_path / 'prodigy.db'}?dataset=headlines"
    with open_adapter(db_url) as adapter:
        assert isinstance(adapter, ProdigyAdapter)
        adapter.add_tasks(tasks)
        adapter.add_tasks([{"meta": {"no": "text"}}, {"text": "bad answer", "answer": "perhaps"}], answer=None)
    report = export_module.export(db_url, tmp_path / "out", task="ner", split="0.5,0.5", seed=3)
    _check_balance(report, db_url)
    assert report.records_skipped["no 'text' field"] == 1
    assert report.records_skipped["unknown answer 'perhaps'"] == 1
    ignored = sum(t["answer"] == "ignore" for t in tasks)
    assert report.records_skipped["only ignored or skipped answers"] == ignored
    assert report.records_exported == len(tasks) - ignored


def test_export_with_answers_filter(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "reddit_product_ner_teach.jsonl"
    report = export_module.export(f"prodigy:{path}", tmp_path / "out", task="ner", split="1.0", answers={Answer.ACCEPT})
    _check_balance(report, f"prodigy:{path}")
    assert report.incorrect_spans == 0
