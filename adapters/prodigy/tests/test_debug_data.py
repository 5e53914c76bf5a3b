"""`spacy debug data` accepts what `annobridge export` makes of every kind of Prodigy data.

The test copies are trimmed to a few dozen records, fewer than the 100 training docs below which
`debug data` reports an error by design; that one error is allowed, any other fails the test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from annobridge.export import export

CASES = [
    ("fashion_brands_training_head.jsonl", "ner"),  # ner_manual
    ("reddit_product_ner_teach.jsonl", "ner"),  # binary ner with rejects -> incorrect_spans
    ("docs_issues_textcat_binary.jsonl", "textcat_multilabel"),  # binary textcat
    ("nel_emerson_choice.jsonl", "textcat"),  # choice
    ("restaurant_reviews_review.jsonl", "ner"),  # review output
    ("restaurant_reviews_review.jsonl", "spans"),
    ("cooking_cats_train_head.jsonl", "textcat_multilabel"),  # multi-label cats
]
_ALLOWED = re.compile(r"Low number of examples to train a new pipeline|^\d+ errors?$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "task"), CASES)
def test_spacy_debug_data_accepts_the_export(data_dir: Path, tmp_path: Path, name: str, task: str) -> None:
    report = export(f"prodigy:{data_dir / name}", tmp_path / "corpus", task=task, split="0.75,0.25", write_config=True)
    assert report.config and report.records_exported > 0
    proc = subprocess.run(
        [sys.executable, "-m", "spacy", "debug", "data", report.config],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = _ANSI.sub("", proc.stdout + proc.stderr)
    errors = [line.split("✘", 1)[1].strip() for line in output.splitlines() if "✘" in line]
    assert all(_ALLOWED.search(error) for error in errors), output
    if not errors:
        assert proc.returncode == 0, output
    if task == "ner" and "teach" in name:
        assert report.incorrect_spans > 0
        assert "incorrect_spans_key" in Path(report.config).read_text()
