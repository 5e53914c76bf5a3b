"""The exported data is what spaCy's own tools accept: `spacy debug data` passes and `spacy train` runs."""

import subprocess
import sys
from pathlib import Path

import pytest
from core_data import synthetic_records

from annobridge.adapters.jsonl import write_records
from annobridge.export import export


def _spacy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ner", "spans", "textcat", "textcat_multilabel"])
def test_debug_data_accepts_and_train_runs(task: str, tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(400))
    out = tmp_path / "corpus"
    report = export(f"jsonl:{src}", out, task=task, split="0.8,0.2", write_config=True)
    assert report.records_exported == 400 and report.config
    debug = _spacy("debug", "data", report.config, "--no-format")
    assert debug.returncode == 0, debug.stdout + debug.stderr
    train = _spacy(
        "train",
        report.config,
        "--output",
        str(tmp_path / "model"),
        "--training.max_steps",
        "6",
        "--training.eval_frequency",
        "3",
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert (tmp_path / "model" / "model-last" / "meta.json").exists()
