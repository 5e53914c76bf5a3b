from __future__ import annotations

import json
from pathlib import Path

import pytest
from core_data import synthetic_records

from annobridge.adapters.jsonl import write_records
from annobridge.model import Annotation, Answer, Document, Record, Span


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    write_records(path, synthetic_records(300))
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"no": "text"}) + "\n")
        rec = Record(Document.create("ignored one", id="ign"), [Annotation("bob", answer=Answer.IGNORE)])
        fh.write(json.dumps(rec.to_dict()) + "\n")
        bad = Record(
            Document.create("Paris is nice", id="bad"), [Annotation("bob", spans=[Span(0, 5, "GPE", text="Oslo")])]
        )
        fh.write(json.dumps(bad.to_dict()) + "\n")
    return path
