"""The loop against the real ``jsonl:`` adapter: stages, scores pushed, resume after a crash, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from al_helpers import annotate_jsonl, check_least_certain, write_documents, write_records
from typer.testing import CliRunner

from annobridge.al import Learner
from annobridge.al.loop import STAGES, ActiveLearningLoop
from annobridge.al_cli import app
from annobridge.errors import UsageError
from annobridge.model import Record

SMALL = {"width": 32, "depth": 1, "epochs": 4, "min_steps": 20}
LABELS = ["ham", "spam"]


def _project(path: Path) -> list[Record]:
    return [Record.from_dict(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_two_rounds_step_by_step_with_a_restart(tmp_path: Path, sms: list[Record]) -> None:
    pool_records, dev = sms[:300], sms[400:]
    gold = {r.id: r for r in pool_records}
    pool = write_documents(tmp_path / "pool.jsonl", pool_records)
    project = tmp_path / "project.jsonl"
    state = tmp_path / "state"

    def make_loop() -> ActiveLearningLoop:
        return ActiveLearningLoop(
            f"jsonl:{project}",
            Learner("textcat", LABELS, **SMALL),
            pool,
            dev,
            state_dir=state,
            strategy="margin",
            batch=12,
            poll_interval=0.01,
            wait_timeout=0,
        )

    loop = make_loop()
    assert loop.next_stage == "score" and loop.round == 0
    with pytest.raises(UsageError, match="next stage of round 0 is 'score'"):
        loop.push()
    scored = loop.step()
    assert scored.stage == "score" and scored.detail["cold_start"] and scored.detail["scored"] == 300
    assert len(loop.selected) == 12 and all(item["prediction"] is None for item in loop.selected)
    loop.step()  # push: plain documents (nothing to pre-annotate with yet)
    assert {r.id for r in _project(project)} == {item["id"] for item in loop.selected}
    waiting = loop.step(timeout=0)
    assert waiting.stage == "wait" and not waiting.done and waiting.detail["labelled"] == 0
    assert annotate_jsonl(project, gold) == 12
    assert loop.step(timeout=0).done
    pulled = loop.step()
    assert pulled.detail["labels"] == 12 and not pulled.detail["unusable"]
    trained = loop.step()
    assert trained.detail["mode"] == "retrain" and (state / "model" / "learner.json").exists()
    report = loop.step().detail["report"]
    assert report.round == 0 and report.labels == 12 and report.cold_start and report.dev_score is not None
    assert set(report.stage_seconds) == set(STAGES)

    # Round 1: uncertainty sampling with a model.
    loop.step()
    selected = loop.selected
    assert len(selected) == 12 and loop.state["cold_start"] is False
    seen0 = {r.id for r in _project(project)}
    check_least_certain(loop.learner, pool_records, seen0, selected, "margin")
    loop.step()  # push with predictions
    pushed = {r.id: r for r in _project(project) if r.id not in seen0}
    assert set(pushed) == {item["id"] for item in selected}
    for item in selected:
        record = pushed[item["id"]]
        (pred,) = record.predictions
        assert pred.score == pytest.approx(item["score"], abs=1e-6)
        assert pred.model_version.endswith("round1") and set(pred.categories) == set(LABELS)
        assert record.document.meta["al"]["rank"] == item["rank"]

    # A crash here: a new loop on the same state folder goes on at "wait", with the saved model.
    del loop
    resumed = make_loop()
    assert resumed.round == 1 and resumed.next_stage == "wait" and resumed.learner.fitted
    annotate_jsonl(project, gold)
    reports = resumed.run(rounds=2)
    assert [r.round for r in reports] == [1]
    assert resumed.history[-1].labels == 24 and resumed.history[-1].new_labels == 12
    assert resumed.history[-1].dev_score is not None and not resumed.history[-1].cold_start
    assert resumed.round == 2 and resumed.next_stage == "score"
    state_json = json.loads((state / "state.json").read_text())
    assert len(state_json["history"]) == 2 and len(state_json["seen"]) == 24

    with pytest.raises(UsageError, match="belongs to a textcat loop"):
        ActiveLearningLoop(f"jsonl:{project}", Learner("textcat", ["a", "b"]), pool, None, state_dir=state)


def test_ner_round_pushes_scored_spans(tmp_path: Path, fashion: list[Record]) -> None:
    labels = ["FASHION_BRAND"]
    labelled, rest = fashion[:40], fashion[40:140]
    project = write_records(tmp_path / "project.jsonl", labelled)
    learner = Learner("ner", labels, **SMALL)
    loop = ActiveLearningLoop(
        f"jsonl:{project}",
        learner,
        [r.document for r in rest],
        fashion[200:],
        state_dir=tmp_path / "s",
        batch=8,
        wait_timeout=0,
        poll_interval=0.01,
    )
    # Labels already in the tool count: a first round can start by training on them.
    loop.state["done"] = ["score", "push", "wait"]
    loop.step()
    assert loop.step().detail["examples"] == 40
    assert loop.step().detail["report"].labels == 40
    loop.step()
    selected = loop.selected
    assert len(selected) == 8 and all(item["prediction"] is not None for item in selected)
    check_least_certain(loop.learner, rest, set(), selected, "entropy")
    loop.step()
    texts = {r.id: r.text for r in rest}
    pushed = [r for r in _project(project) if r.predictions]
    assert {r.id for r in pushed} == {item["id"] for item in selected}
    for record in pushed:
        for span in record.predictions[0].spans:
            assert texts[record.id][span.start : span.end] == span.text and span.score is not None


def test_cli_run_waits_then_resumes(tmp_path: Path, sms: list[Record]) -> None:
    pool = write_documents(tmp_path / "pool.jsonl", sms[:200])
    dev = write_records(tmp_path / "dev.jsonl", sms[400:])
    project = tmp_path / "project.jsonl"
    args = [
        "run",
        f"jsonl:{project}",
        "--pool",
        str(pool),
        "--task",
        "textcat",
        "--dev",
        str(dev),
        "--strategy",
        "entropy",
        "--batch",
        "10",
        "--rounds",
        "1",
        "--wait",
        "0",
        "--state",
        str(tmp_path / "st"),
    ]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 3, first.output
    assert "Waiting for labels on round 0" in first.output
    annotate_jsonl(project, {r.id: r for r in sms[:200]})
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "Resuming round 0 at stage 'wait'" in second.output
    assert "round 0: 10 labels (+10)" in second.output
    bad = runner.invoke(app, [*args[:6], "--task", "textcat", "--strategy", "bald", "--labels", "ham,spam"])
    assert bad.exit_code == 2 and "Unknown strategy 'bald'" in bad.output


def test_exhausted_pool_and_gz_dev(tmp_path: Path, sms: list[Record]) -> None:
    import gzip

    dev_path = tmp_path / "dev.jsonl.gz"
    with gzip.open(dev_path, "wt", encoding="utf-8") as fh:
        for record in sms[400:450]:
            fh.write(json.dumps(record.to_dict()) + "\n")
    project = tmp_path / "project.jsonl"
    pool = [r.document for r in sms[:5]]
    loop = ActiveLearningLoop(
        f"jsonl:{project}",
        Learner("textcat", LABELS, **SMALL),
        pool,
        dev_path,
        state_dir=tmp_path / "s",
        batch=10,
        wait_timeout=0,
    )
    assert len(loop.dev_docs()) == 50
    loop.step()
    assert len(loop.selected) == 5  # fewer than the batch: all that is left
    loop.step()
    annotate_jsonl(project, {r.id: r for r in sms[:5]})
    loop.run_round()
    with pytest.raises(UsageError, match="no documents left"):
        loop.step()
    assert loop.next_stage == "score"  # nothing was recorded as done


def test_wait_polls_with_a_cursor(tmp_path: Path, sms: list[Record]) -> None:
    """After the first poll the wait stage asks only for what changed (issue #10): the real jsonl
    adapter's pull is wrapped to record its ``since`` argument, and still does the work."""
    pool_records = sms[:60]
    gold = {r.id: r for r in pool_records}
    project = tmp_path / "project.jsonl"
    loop = ActiveLearningLoop(
        f"jsonl:{project}",
        Learner("textcat", LABELS, **SMALL),
        write_documents(tmp_path / "pool.jsonl", pool_records),
        sms[400:440],
        state_dir=tmp_path / "state",
        batch=6,
        poll_interval=0.01,
        wait_timeout=0,
    )
    loop.step()  # score
    loop.step()  # push
    seen_since: list[object] = []
    real_pull = loop.adapter.pull

    def recording_pull(**kwargs: object):  # type: ignore[no-untyped-def]
        seen_since.append(kwargs.get("since"))
        return real_pull(**kwargs)  # type: ignore[arg-type]

    loop.adapter.pull = recording_pull  # type: ignore[method-assign]
    pushed = [item["id"] for item in loop.selected]
    assert annotate_jsonl(project, {i: gold[i] for i in pushed[:3]}) == 3
    first = loop.step(timeout=0)
    assert not first.done and first.detail["labelled"] == 3
    assert annotate_jsonl(project, {i: gold[i] for i in pushed[3:]}) == 3
    done = loop.step(timeout=0)
    assert done.done and done.detail["labelled"] == 6
    # the first poll reads everything; the next one only what changed after its cursor
    assert seen_since[0] is None and seen_since[1] is not None, seen_since
