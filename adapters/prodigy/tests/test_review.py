"""Adjudication round trip through Prodigy's database, on real review data.

``restaurant_reviews_review.jsonl`` is real ``prodigy review`` output: 25 documents where two sessions
(``original_annotations`` and ``ner_model``) disagreed, each with its two ``versions`` and the reviewer's
decision at the top level, and 25 where they agreed. The annotators' own answers are rebuilt from the
versions (what their sessions saved before the review), so the source is what Prodigy held before review
and the reviewer's saved decisions are the adjudication, not data annobridge made up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import spacy
from conftest import UrlFactory
from spacy.tokens import DocBin

from annobridge import open_adapter
from annobridge.export import export
from annobridge.review import AGREED, NOT_SAMPLED, Adjudicated, review
from annobridge_prodigy import ProdigyAdapter


def _review_output(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "restaurant_reviews_review.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _annotators_answers(reviewed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each session's own saved answer, as it was before the review (one example per session and input)."""
    answers = []
    for task in reviewed:
        for version in task["versions"]:
            for session in version["sessions"]:
                own = {k: v for k, v in version.items() if k not in ("sessions", "default")}
                own["_session_id"] = own["_annotator_id"] = session
                answers.append(own)
    return answers


def _spans(task: dict[str, Any]) -> set[tuple[int, int, str]]:
    return {(s["start"], s["end"], s["label"]) for s in task.get("spans", [])}


def _open(url: str) -> ProdigyAdapter:
    adapter = open_adapter(url)
    assert isinstance(adapter, ProdigyAdapter)
    return adapter


def test_review_round_trip_through_prodigys_database(db_url: UrlFactory, data_dir: Path, tmp_path: Path) -> None:
    reviewed = _review_output(data_dir)
    disputed = [t for t in reviewed if len(t["versions"]) == 2]
    assert len(disputed) == 25
    with _open(db_url("annotations")) as source:
        source.add_tasks(_annotators_answers(reviewed), answer=None)
    source_url, review_url = db_url("annotations"), db_url("to_review")
    gold_url = review_url + "_gold"  # where `prodigy review` saves its decisions

    # 1. conflicts out: one example per annotator's version, the input `prodigy review` reads
    with _open(source_url) as source, _open(review_url) as dest:
        report = review(source, dest, task="ner", only="conflicts")
    dataset = review_url.split("dataset=")[1]
    assert report.reviewer_command == f"prodigy review {dataset}_gold {dataset} --view-id ner_manual"
    assert report.decisions_at == gold_url
    assert report.records == 50 and report.conflicts == 25
    assert report.sent.created == 25 and not report.sent.failed
    assert report.not_sent == {AGREED: 25} and report.balanced
    with _open(review_url) as dest:
        sent = {r.id: r for r in dest.pull()}
    by_hash = {str(t["_input_hash"]): t for t in disputed}
    assert set(sent) == set(by_hash)
    for doc_id, record in sent.items():
        versions = {v["sessions"][0]: _spans(v) for v in by_hash[doc_id]["versions"]}
        assert {a.annotator: {s.key for s in a.spans} for a in record.annotations} == versions

    # a second run sends nothing twice
    with _open(source_url) as source, _open(review_url) as dest:
        again = review(source, dest, task="ner", only="conflicts")
    assert again.sent.created == 0 and again.sent.existing == 25

    # 2. the reviewer's decisions, saved as `prodigy review` saves them
    with _open(gold_url) as gold:
        gold.add_tasks(disputed, answer=None)

    # 3. in: the export takes the reviewer's version where there is one, the agreed version elsewhere
    with _open(source_url) as source, _open(gold_url) as gold:
        result = export(Adjudicated(source, gold), tmp_path / "corpus", task="ner", split="1,0", policy="ground_truth")
    assert result.balanced and result.records_exported == 50, result.to_dict()
    nlp = spacy.blank("en")
    shards = sorted((tmp_path / "corpus").rglob("*.spacy"))
    docs = [d for f in shards for d in DocBin().from_disk(f).get_docs(nlp.vocab)]
    assert len(docs) == 50
    want = {t["text"]: _spans(t) for t in reviewed}
    got = {d.text: {(e.start_char, e.end_char, e.label_) for e in d.ents} for d in docs}
    assert got == want
    # the reviewer did overrule someone: the test would pass without --adjudicated only by accident
    assert any(_spans(t) != _spans(t["versions"][0]) for t in disputed)


def test_review_sample_is_stable_and_accounted_for(tmp_path: Path, data_dir: Path) -> None:
    reviewed = _review_output(data_dir)
    src = tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in _annotators_answers(reviewed)), encoding="utf-8")
    picked = []
    for run in range(2):
        dest = tmp_path / f"review{run}.jsonl"
        with _open(f"prodigy:{src}") as source, _open(f"prodigy:{dest}") as out:
            report = review(source, out, task="ner", only="all", sample=10, seed=3)
        assert report.sent.created == 10 and report.not_sent == {NOT_SAMPLED: 40} and report.balanced
        lines = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
        # the review recipe's own task format: one task per document with its versions
        assert all(t["_view_id"] == "review" and t["view_id"] == "ner_manual" and t["versions"] for t in lines)
        picked.append(sorted(t["text"] for t in lines))
    assert picked[0] == picked[1]


def test_review_and_export_commands(tmp_path: Path, data_dir: Path) -> None:
    """The commands a user runs: review, then the printed export line (with the reviewer's decisions)."""
    import shlex

    from typer.testing import CliRunner

    from annobridge.cli import app

    reviewed = _review_output(data_dir)
    folder = tmp_path / "with [brackets]"
    folder.mkdir()
    src, dest = folder / "answers.jsonl", folder / "to_review.jsonl"
    gold = folder / "to_review_gold.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in _annotators_answers(reviewed)), encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(app, ["review", f"prodigy:{src}", f"prodigy:{dest}", "--task", "ner"])
    assert out.exit_code == 0, out.output
    assert "25 sent for review" in out.output and "annotators agree: 25" in out.output
    line = next(x for x in out.output.splitlines() if x.startswith("When the review is done: "))
    words = shlex.split(line.removeprefix("When the review is done: "))
    assert words[:2] == ["annobridge", "export"] and f"prodigy:{src}" in words  # the brackets survive
    # the reviewer's saved decisions, then the printed command as is (its --out made absolute)
    mark = f"prodigy mark to_review_gold {shlex.quote(str(dest))} --view-id review; prodigy db-out to_review_gold > "
    assert f"The reviewer starts with: {mark}{shlex.quote(str(gold))}" in out.output
    assert f"prodigy:{gold}" in words
    gold.write_text("".join(json.dumps(t) + "\n" for t in reviewed if len(t["versions"]) == 2), encoding="utf-8")
    words[words.index("--out") + 1] = str(tmp_path / "corpus")
    exported = runner.invoke(app, [*words[1:], "--split", "1,0", "--json"])
    assert exported.exit_code == 0, exported.output
    report = json.loads(exported.output)
    assert report["records_exported"] == 50


def test_annotators_per_doc_names_prodigys_own_setting(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from annobridge.cli import app

    corpus = tmp_path / "texts.jsonl"
    corpus.write_text('{"text": "any asian cuisine around"}\n', encoding="utf-8")
    out = CliRunner().invoke(
        app, ["import", str(corpus), f"prodigy:{tmp_path / 'stream.jsonl'}", "--annotators-per-doc", "2"]
    )
    assert out.exit_code == 0, out.output
    assert 'put {"annotations_per_task": 2} in prodigy.json' in " ".join(out.output.split())
    assert "1 imported" in out.output
