"""examples/retrain end to end: `spacy project run all`, new annotations (new documents and one corrected old
document) saved into the Prodigy database, `run all` again; then what a periodic job must guarantee:
only the changes were pulled, old documents kept their splits, the correction won, both models were scored on
the same current test split, the decision was logged with both scores and acted on, the promoted model loads.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retrain"
#: what a run writes: never copied from a checkout where someone ran the example
RUN_OUTPUTS = ("state", "corpus", "training", "metrics", "models", "project.lock", "annotations.db", "__pycache__")

pytest.importorskip("annobridge_prodigy")
pytest.importorskip("weasel")


def _project(project: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", *args[:1], str(project), *args[1:]],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _splits(manifest: Path) -> dict[str, str]:
    return {row["id"]: row["split"] for row in _lines(manifest)}


def _digest(model: Path) -> str:
    return hashlib.sha256((model / "ner" / "model").read_bytes()).hexdigest()


def _ents_f(model: Path, test_split: Path) -> float:
    """The model's ents_f on the split, scored here (not read from the project's metrics)."""
    import spacy
    from spacy.training import Corpus

    nlp = spacy.load(model)
    scores = nlp.evaluate(list(Corpus(test_split)(nlp)))
    return float(scores["ents_f"])


def _exported_ents(corpus: Path, doc_id: str) -> list[str]:
    import spacy
    from spacy.tokens import DocBin

    row = next(r for r in _lines(corpus / "manifest.jsonl") if r["id"] == doc_id)
    docs = list(DocBin().from_disk(corpus / row["file"]).get_docs(spacy.blank("en").vocab))
    return [ent.text for ent in docs[row["index"]].ents]


@pytest.mark.slow
def test_retrain_project_twice(tmp_path: Path) -> None:
    project = tmp_path / "retrain"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*RUN_OUTPUTS))
    round1 = _lines(project / "assets" / "round1.jsonl")
    round2 = _lines(project / "assets" / "round2.jsonl")
    ids1 = {str(t["_input_hash"]) for t in round1}
    ids2 = {str(t["_input_hash"]) for t in round2}
    corrected = ids1 & ids2
    assert len(corrected) == 1 and len(ids2 - ids1) >= 10  # the scenario: new documents and one correction

    # -- run 1: everything is new ------------------------------------------------------------------
    _project(project, "annotate")
    _project(project, "all")
    state, models = project / "state", project / "models"
    assert {r["id"] for r in _lines(state / "pulled.jsonl")} == ids1
    cursor1 = (state / "cursor.txt").read_text().strip()
    assert cursor1 and not (state / "cursor.txt.next").exists()
    manifest1 = _splits(project / "corpus" / "manifest.jsonl")
    assert set(manifest1) == ids1
    (log1,) = _lines(models / "promotions.jsonl")
    assert log1["decision"] == "promoted" and log1["promoted"] is None and isinstance(log1["new"], float)
    first_model = _digest(models / "promoted")
    assert first_model == _digest(project / "training" / "model-best")

    # -- the annotators carry on: new documents, and alice corrects one of hers --------------------
    _project(project, "annotate", "--vars.round", "2")
    out = _project(project, "all")

    pulled = _lines(state / "pulled.jsonl")
    assert {r["id"] for r in pulled} == ids2  # only what changed since the cursor: not the 160 old ones again
    assert sum(len(r["annotations"]) for r in pulled) == len(round2)
    assert f"--since {cursor1}" in out
    cursor2 = (state / "cursor.txt").read_text().strip()
    assert cursor2 > cursor1

    records = {r["id"]: r for r in _lines(state / "records.jsonl")}
    assert set(records) == ids1 | ids2
    (doc_id,) = corrected
    assert len(records[doc_id]["annotations"]) == 2  # both answers kept; the export takes the latest

    manifest2 = _splits(project / "corpus" / "manifest.jsonl")
    assert set(manifest2) == ids1 | ids2
    moved = {i: (manifest1[i], manifest2[i]) for i in manifest1 if manifest1[i] != manifest2[i]}
    assert not moved, moved
    fix = next(t for t in round2 if str(t["_input_hash"]) == doc_id)
    expected = [fix["text"][s["start"] : s["end"]] for s in fix["spans"]]
    assert _exported_ents(project / "corpus", doc_id) == expected
    assert len(expected) > len(next(t for t in round1 if str(t["_input_hash"]) == doc_id)["spans"])

    # -- the decision: both scores, on the same current test split, acted on ------------------------
    log1_again, log2 = _lines(models / "promotions.jsonl")
    assert log1_again == log1
    assert isinstance(log2["new"], float) and isinstance(log2["promoted"], float)
    test_split = project / "corpus" / "test"
    assert log2["test_docs"] == sum(1 for split in manifest2.values() if split == "test")
    first_dir = models / ("previous" if log2["decision"] == "promoted" else "promoted")
    assert _digest(first_dir) == first_model  # the run-1 model is where the decision says
    assert _ents_f(first_dir, test_split) == pytest.approx(log2["promoted"])
    assert _ents_f(project / "training" / "model-best", test_split) == pytest.approx(log2["new"])
    if log2["new"] > log2["promoted"]:
        assert log2["decision"] == "promoted"
        assert _digest(models / "promoted") == _digest(project / "training" / "model-best")
    else:
        assert log2["decision"] == "kept"
        assert _digest(models / "promoted") == first_model
    shown = f"new {log2['new']:.4f}, promoted {log2['promoted']:.4f}"
    assert shown in out

    import spacy

    nlp = spacy.load(models / "promoted")
    assert "ner" in nlp.pipe_names and "FASHION_BRAND" in getattr(nlp.get_pipe("ner"), "labels", ())
    nlp("I bought a jacket at Uniqlo and boots from Red Wing.")

    # -- a run with nothing new pulls nothing and keeps every record ---------------------------------
    _project(project, "pull")
    _project(project, "merge")
    assert _lines(state / "pulled.jsonl") == []
    assert {r["id"]: r for r in _lines(state / "records.jsonl")} == records
    assert (state / "cursor.txt").read_text().strip() == cursor2
    # ... and with a 1 s overlap, the answers of the cursor's second come again and are kept once
    _project(project, "pull", "--vars.overlap", "1")
    merged = _project(project, "merge")
    assert {r["id"] for r in _lines(state / "pulled.jsonl")} == ids2  # round 2 was saved within one second
    assert f"annotations pulled again: {len(round2)}" in merged
    assert {r["id"]: r for r in _lines(state / "records.jsonl")} == records
    assert (state / "cursor.txt").read_text().strip() == cursor2


@pytest.mark.slow
def test_prefect_flow_runs_against_the_real_apis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prefect_flow.py (Prefect itself replaced by pass-through decorators): a whole run, then an incremental pull
    that keeps the same state files as the spaCy project."""
    import importlib.util
    import types

    project = tmp_path / "retrain"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*RUN_OUTPUTS))
    def decorator(*args: Any, **kwargs: Any) -> Any:  # @task and @task(retries=2) alike
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else (lambda fn: fn)

    stub = types.ModuleType("prefect")
    stub.flow = stub.task = decorator  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prefect", stub)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("merge", "promote", "annotate"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    spec = importlib.util.spec_from_file_location("retrain_prefect_flow", project / "prefect_flow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import annotate  # examples/retrain/scripts, put on sys.path by prefect_flow.py

    db = project / "assets" / "annotations.db"
    source = f"prodigy:{db}?dataset=fashion_brands"
    round1 = _lines(project / "assets" / "round1.jsonl")
    round2 = _lines(project / "assets" / "round2.jsonl")
    annotate.save(db, "fashion_brands", round1, now=1_700_000_000)

    assert module.retrain(source, project) == "promoted"
    assert len(_lines(project / "state" / "records.jsonl")) == len(round1)
    # through the Python API the cursor is kept whole (every answer it saw), its watermark the newest answer
    assert json.loads((project / "state" / "cursor.txt").read_text())["watermark"] == "2023-11-14T22:13:20.000000Z"
    (log,) = _lines(project / "models" / "promotions.jsonl")
    assert log["new"] == pytest.approx(_ents_f(project / "models" / "promoted", project / "corpus" / "test"))

    annotate.save(db, "fashion_brands", round2, now=1_700_000_060)
    counts = module.pull_and_merge(source, project)
    assert counts["records pulled"] == len(round2) and counts["documents updated"] == 1
    assert counts["documents"] == len({t["_input_hash"] for t in round1 + round2})
    assert json.loads((project / "state" / "cursor.txt").read_text())["watermark"] == "2023-11-14T22:14:20.000000Z"
    assert module.pull_and_merge(source, project).get("records pulled", 0) == 0
    for name in ("merge", "promote", "annotate", "retrain_prefect_flow"):
        monkeypatch.delitem(sys.modules, name, raising=False)
