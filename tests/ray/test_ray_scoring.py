"""Pool scoring on Ray Data: the same selection as the local engine, the CLI, the install hint."""

from __future__ import annotations

import gzip
import json
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from al_helpers import gold_docs, write_records
from typer.testing import CliRunner

from annobridge.al import Learner, ray_engine
from annobridge.al.learner import PoolScores
from annobridge.al_cli import app
from annobridge.errors import UsageError
from annobridge.model import Document, Record
from annobridge.readers import read_documents

SMALL = {"width": 32, "depth": 1, "epochs": 4, "min_steps": 20}


def _pool_file(path: Path, documents: list[Document]) -> Path:
    """A pool file with what real files hold besides documents: a BOM, CRLF endings, blank and bad lines,
    and an empty text (skipped, like an excluded id)."""
    lines = [json.dumps(d.to_dict(), ensure_ascii=False) for d in documents]
    lines.insert(3, json.dumps({"id": "empty", "text": "   "}))
    lines.insert(7, "")
    lines.insert(11, "{not json")
    lines.insert(13, json.dumps({"id": "no-text"}))
    lines.insert(17, "[1, 2]")
    body = "\r\n".join(lines[:20]) + "\r\n" + "\n".join(lines[20:]) + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    return path


def _selection(scores: PoolScores) -> list[tuple[Any, ...]]:
    return [
        (c.document.id, c.document.text, c.document.meta, c.score, c.index, c.prediction) for c in scores.candidates
    ]


def _same(local: PoolScores, ray: PoolScores) -> None:
    assert ray.engine == "ray" and local.engine == "local"
    assert (ray.scored, ray.skipped, ray.strategy, ray.cold_start) == (
        local.scored,
        local.skipped,
        local.strategy,
        local.cold_start,
    )
    assert _selection(ray) == _selection(local)


def test_shards_read_exactly_what_the_reader_reads(tmp_path: Path, sms: list[Record]) -> None:
    path = _pool_file(tmp_path / "pool.jsonl", [r.document for r in sms[:40]])
    path.write_bytes(path.read_bytes() + b'{"id": "latin1", "text": "caf\xe9"}\n' + b"  \n")
    skipped: list[str] = []
    expected = list(read_documents(path, on_skip=lambda where, reason: skipped.append(reason)))
    size = path.stat().st_size
    for per in (1, 7, 64, 1000, size):  # boundaries inside, at the end of and between lines
        bounds = [*range(0, size, per), size]
        rows = [row for a, b in pairwise(bounds) for row in ray_engine.read_shard(str(path), a, b)]
        assert [d for _, d, _ in rows if d is not None] == expected
        reasons = [bad.split("\x00", 1)[1] for _, d, bad in rows if d is None]
        assert reasons == skipped and len(skipped) == 4, reasons
        offsets = [off for off, _, _ in rows]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_actor_ships_predictions_only_for_documents_that_can_enter(ray_local: Any, sms: list[Record]) -> None:
    learner = Learner("textcat", ["ham", "spam"], **SMALL)
    learner.fit(gold_docs(sms[:60], "textcat", ["ham", "spam"]))
    blob = ray_engine.pack_dir(_saved(learner))
    settings = ray_engine.ActorSettings("entropy", 5, 100, "v1", True, True, 0)
    actor = ray_engine.ScoreActor([ray_local.put((blob, frozenset({sms[61].id})))], settings)
    rows = [(i, r.document, "") for i, r in enumerate(sms[60:260])]
    first = actor._score(rows[:100], ship_documents=True)
    assert first["kind"][0] == ray_engine.SUMMARY and first["n"][0] == 99 and first["skipped"][0] == 1
    kept = [j for j, kind in enumerate(first["kind"]) if kind == ray_engine.CANDIDATE]
    assert 5 <= len(kept) < 99 and all(first["prediction"][j] and first["document"][j] for j in kept)
    # The second batch: only documents that beat the actor's five best so far travel.
    second = actor._score(rows[100:], ship_documents=True)
    floor = sorted(first["score"][j] for j in kept)[-5]
    sent = [s for s, kind in zip(second["score"], second["kind"], strict=True) if kind == ray_engine.CANDIDATE]
    assert all(s > floor for s in sent) and len(sent) < 100
    local = learner.score_pool([r.document for r in sms[60:260]], "entropy", keep=5, exclude_ids=[sms[61].id])
    shipped = {
        json.loads(d)["id"]
        for out in (first, second)
        for d, k in zip(out["document"], out["kind"], strict=True)
        if k == ray_engine.CANDIDATE
    }
    assert {c.document.id for c in local.candidates} <= shipped


def saved_version(state: dict[str, Any]) -> str:
    return f"annobridge-al-textcat-round{state['round']}"


def _saved(learner: Learner) -> Path:
    import tempfile

    return learner.save(Path(tempfile.mkdtemp(prefix="annobridge-test-")) / "model")


def test_textcat_selection_is_identical(
    ray_local: Any, tmp_path: Path, sms: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    learner = Learner("textcat", ["ham", "spam"], **SMALL)
    learner.fit(gold_docs(sms[:80], "textcat", ["ham", "spam"]))
    documents = [r.document for r in sms[80:]]
    path = _pool_file(tmp_path / "pool.jsonl", documents)
    exclude = [documents[i].id for i in (0, 5, 50, 200)]
    args: dict[str, Any] = {"keep": 40, "batch_size": 64, "exclude_ids": exclude, "model_version": "m1"}
    local = learner.score_pool(path, "margin", **args)
    assert local.scored == len(documents) - 4 and local.skipped == 5 and local.candidates[0].prediction is not None
    # Many small shards: lines cut at shard boundaries, and several actors' candidates merged.
    monkeypatch.setattr(ray_engine, "_MIN_SHARD", 4096)
    assert len(ray_engine.jsonl_shards(path, 2) or []) > 4
    _same(local, learner.score_pool(path, "margin", **args, engine="ray", workers=2))
    # Any other pool file (here gzip) is read on the driver by annobridge's readers, in several windows.
    monkeypatch.setattr(ray_engine, "WINDOW", 300)
    gz = tmp_path / "pool.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert ray_engine.jsonl_shards(gz, 2) is None
    _same(local, learner.score_pool(gz, "margin", **args, engine="ray"))


def test_beam_ner_selection_is_identical(ray_local: Any, tmp_path: Path, fashion: list[Record]) -> None:
    labels = ["FASHION_BRAND"]
    # enough steps that the candidates hold predicted entities, not only empty predictions
    learner = Learner("ner", labels, **{**SMALL, "min_steps": 60})
    learner.fit(gold_docs(fashion[:60], "ner", labels))
    documents = [r.document for r in fashion[60:]]
    path = _pool_file(tmp_path / "pool.jsonl", documents)
    exclude = [documents[i].id for i in (2, 9, 100)]
    local = learner.score_pool(path, "entropy", keep=25, exclude_ids=exclude, batch_size=32)
    assert any(c.prediction and c.prediction.spans for c in local.candidates)
    ray = learner.score_pool(path, "entropy", keep=25, exclude_ids=exclude, batch_size=32, engine="ray", workers=2)
    _same(local, ray)


def test_cold_start_on_ray_is_random_by_seed_and_id(
    ray_local: Any, sms: list[Record], caplog: pytest.LogCaptureFixture
) -> None:
    learner = Learner("textcat", ["ham", "spam"], **SMALL)
    documents = [r.document for r in sms[:200]]
    first = learner.score_pool(documents, "entropy", keep=10, engine="ray", seed=3)
    assert first.cold_start and first.strategy == "random" and first.scored == 200
    assert all(c.prediction is None for c in first.candidates)
    randoms = ray_engine.random_scores(3, [d.id for d in documents])
    expected = sorted(zip(randoms, range(200), strict=True), key=lambda t: -t[0])
    assert [c.score for c in first.candidates] == [s for s, _ in expected[:10]]
    # A function of (seed, id): the same in whatever order and on however many actors a document is
    # scored. 4 one-CPU actors would never all be placed on the suite's 2-CPU Ray: they are capped.
    again = learner.score_pool(list(reversed(documents)), "entropy", keep=10, engine="ray", seed=3, workers=4)
    assert "Ray has 2 CPUs: scoring with 2 actors, not 4" in caplog.text
    assert [c.document.id for c in again.candidates] == [c.document.id for c in first.candidates]
    other = learner.score_pool(documents, "entropy", keep=10, engine="ray", seed=4)
    assert [c.document.id for c in other.candidates] != [c.document.id for c in first.candidates]


def test_cli_simulate_on_ray(
    ray_local: Any, tmp_path: Path, sms: list[Record], capfd: pytest.CaptureFixture[str]
) -> None:
    data = write_records(tmp_path / "sms.jsonl", sms[:200])
    out = tmp_path / "out"
    args = [
        "simulate", f"jsonl:{data}", "--task", "textcat", "--rounds", "1", "--batch", "10", "--dev-size", "60",
        "--width", "32", "--depth", "1", "--no-plot", "--stop-sample", "0", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--engine", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["summaries"][0]["strategy"] == "entropy" and summary["pool_size"] == 140
    assert "round 1: 20 labels" in result.output
    # Ray's own progress and notices stay out of annobridge's output without --verbose.
    captured = capfd.readouterr()
    for noise in ("MapBatches", "Running Dataset", "Progress bars", "deprecated"):
        assert noise not in result.output + captured.out + captured.err
    bad = CliRunner().invoke(app, [*args, "--workers", "2"])
    assert bad.exit_code != 0 and "--address and --workers are for --engine ray" in bad.output
    bad = CliRunner().invoke(app, [*args, "--engine", "spark"])
    assert bad.exit_code != 0 and "--engine must be one of local, ray" in bad.output


def test_missing_ray_gives_the_install_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sms: list[Record]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where it is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    learner = Learner("textcat", ["ham", "spam"], **SMALL)
    with pytest.raises(UsageError, match=r"pip install 'annobridge\[ray\]'"):
        learner.score_pool([r.document for r in sms[:20]], "entropy", keep=5, engine="ray")
    data = write_records(tmp_path / "sms.jsonl", sms[:100])
    result = CliRunner().invoke(
        app, ["simulate", f"jsonl:{data}", "--task", "textcat", "--rounds", "1", "--batch", "5", "--engine", "ray"]
    )
    assert result.exit_code != 0 and "pip install 'annobridge[ray]'" in result.output
    with pytest.raises(UsageError, match="engine must be one of"):
        learner.score_pool([], "entropy", keep=5, engine="dask")


def test_cli_run_on_ray_selects_what_the_local_engine_selects(
    ray_local: Any, tmp_path: Path, sms: list[Record]
) -> None:
    from al_helpers import annotate_jsonl, write_documents

    from annobridge.al.loop import ActiveLearningLoop
    from annobridge.al.strategies import select_batch

    pool = write_documents(tmp_path / "pool.jsonl", sms[:240])
    dev = write_records(tmp_path / "dev.jsonl", sms[400:])
    project = tmp_path / "project.jsonl"
    state = tmp_path / "st"
    args = [
        "run", f"jsonl:{project}", "--pool", str(pool), "--task", "textcat", "--dev", str(dev), "--batch", "10",
        "--wait", "0", "--state", str(state), "--stop-sample", "30", "--engine", "ray", "--workers", "2",
    ]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--rounds", "1"])
    assert first.exit_code == 3, first.output  # cold start scored on Ray, pushed, waiting for labels
    # The stop set is the one the local engine's pass draws.
    local_state = tmp_path / "local"
    local_loop = ActiveLearningLoop(
        f"jsonl:{tmp_path / 'other.jsonl'}", Learner("textcat", ["ham", "spam"]), pool, None,
        state_dir=local_state, stability_sample=30,
    )  # fmt: skip
    local_loop.score()
    assert (state / "stop_set.jsonl").read_text() == (local_state / "stop_set.jsonl").read_text()
    annotate_jsonl(project, {r.id: r for r in sms[:240]})
    second = CliRunner().invoke(app, [*args, "--rounds", "2"])
    assert second.exit_code == 0, second.output  # round 0 trained; round 1 scored with the model, pushed
    assert "Waiting for labels on round 1" in second.output
    saved = json.loads((state / "state.json").read_text())
    assert saved["round"] == 1 and len(saved["selected"]) == 10
    assert all(item["prediction"]["categories"] for item in saved["selected"])
    # The same round on the local engine, with the model the loop trained: the same batch.
    learner = Learner.load(state / "model")
    before = set(saved["seen"]) - {item["id"] for item in saved["selected"]}  # round 0's batch
    assert len(before) == 10
    scores = learner.score_pool(pool, "entropy", keep=40, exclude_ids=before, model_version=saved_version(saved))
    taken, _ = select_batch(scores.candidates, 10)
    expected = [(c.document.id, round(c.score, 6), c.prediction.to_dict() if c.prediction else None) for c in taken]
    assert [(i["id"], i["score"], i["prediction"]) for i in saved["selected"]] == expected
