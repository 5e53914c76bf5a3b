from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.tokens import Doc

from annobridge.al import Learner
from annobridge.al.strategies import _shingles, near_duplicate, uncertainty
from annobridge.convert import DocConverter
from annobridge.model import LabelSchema, Record

DATA = Path(__file__).resolve().parent.parent / "data" / "al"


def load(name: str) -> list[Record]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [Record.from_dict(json.loads(line)) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def sms() -> list[Record]:
    """The SMS spam sample (textcat); a fixture for tests/al and tests/ray (their conftests import it)."""
    return load("sms_spam_small.jsonl")


@pytest.fixture(scope="session")
def fashion() -> list[Record]:
    """The fashion-brands sample (ner)."""
    return load("fashion_brands_small.jsonl")


def gold_docs(records: list[Record], task: str, labels: list[str]) -> list[Doc]:
    converter = DocConverter(spacy.blank("en"), LabelSchema(task, labels))
    docs = []
    for record in records:
        result = converter.convert(record)
        assert result.doc is not None, (record.id, result.reason)
        docs.append(result.doc)
    return docs


def write_documents(path: Path, records: list[Record]) -> Path:
    """A pool file: documents only, no labels."""
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.document.to_dict(), ensure_ascii=False) + "\n")
    return path


def write_records(path: Path, records: list[Record]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    return path


def annotate_jsonl(project: Path, gold: dict[str, Record]) -> int:
    """Play the annotator on a ``jsonl:`` project: copy the gold annotation onto every unlabelled task."""
    from datetime import datetime, timezone

    lines = project.read_text(encoding="utf-8").splitlines()
    out, done = [], 0
    for line in lines:
        record = Record.from_dict(json.loads(line))
        if not record.annotations and record.id in gold:
            for ann in gold[record.id].annotations:
                ann.created_at = datetime.now(timezone.utc)
                record.annotations.append(ann)
            done += 1
        out.append(json.dumps(record.to_dict(), ensure_ascii=False))
    project.write_text("\n".join(out) + "\n", encoding="utf-8")
    return done


def check_least_certain(
    learner: Learner, pool: list[Record], seen: set[str], selected: list[dict[str, Any]], strategy: str
) -> None:
    """Selected = the most uncertain remaining pool docs, except ones that near-duplicate a better pick."""
    brute = {}
    for record in pool:
        if record.id in seen:
            continue
        batch = next(learner.batches([record.document], batch_size=1))
        brute[record.id] = float(learner.ops.to_numpy(uncertainty(batch.probs, strategy, learner.ops))[0])
    chosen = {item["id"] for item in selected}
    for item in selected:
        assert item["score"] == pytest.approx(brute[item["id"]], abs=1e-5)
    floor = min(item["score"] for item in selected)
    texts = {r.id: r.text for r in pool}
    for doc_id, score in brute.items():
        if doc_id not in chosen and score > floor + 1e-6:
            assert any(near_duplicate(_shingles(texts[doc_id]), _shingles(texts[c]), 0.8) for c in chosen), (
                f"{doc_id} (score {score}) is more uncertain than the batch floor {floor} but was not selected"
            )
