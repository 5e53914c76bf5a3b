import json
from pathlib import Path

import spacy
from typer.testing import CliRunner

from annobridge.cli import app
from annobridge.model import Document
from annobridge.predict import predict_documents


def _ruler_pipeline(path: Path) -> Path:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "GPE", "pattern": "Oslo"}, {"label": "ORG", "pattern": "Acme"}])
    nlp.meta["name"] = "ruler"
    nlp.to_disk(path)
    return path


def test_predictions_carry_spans_and_model_version(tmp_path: Path) -> None:
    nlp = spacy.load(_ruler_pipeline(tmp_path / "m"))
    docs = [Document.create("Acme opened in Oslo 😀", id="1"), Document.create("nothing here", id="2")]
    out = dict((d.id, p) for d, p in predict_documents(nlp, docs, "ner"))
    assert [(s.label, s.text) for s in out["1"].spans] == [("ORG", "Acme"), ("GPE", "Oslo")]
    assert out["2"].spans == [] and out["1"].model_version == "en_ruler-0.0.0"


def test_import_with_model_pushes_pre_annotations(tmp_path: Path) -> None:
    model = _ruler_pipeline(tmp_path / "m")
    corpus = tmp_path / "c.txt"
    corpus.write_text("Acme opened in Oslo\nplain text\n", encoding="utf-8")
    store = tmp_path / "store.jsonl"
    result = CliRunner().invoke(app, ["import", str(corpus), f"jsonl:{store}", "--task", "ner", "--model", str(model)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in store.read_text(encoding="utf-8").splitlines()]
    spans = records[0]["predictions"][0]["spans"]
    assert [(s["start"], s["end"], s["label"]) for s in spans] == [(0, 4, "ORG"), (15, 19, "GPE")]
    assert records[1]["predictions"][0]["model_version"] == "en_ruler-0.0.0"


def test_import_with_model_keeps_only_the_projects_labels(tmp_path: Path) -> None:
    model = _ruler_pipeline(tmp_path / "m")
    corpus = tmp_path / "c.txt"
    corpus.write_text("Acme opened in Oslo\n", encoding="utf-8")
    store = tmp_path / "store.jsonl"
    args = ["import", str(corpus), f"jsonl:{store}", "--task", "ner", "--labels", "GPE", "--model", str(model)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "left out: ORG (1)" in result.output
    spans = json.loads(store.read_text(encoding="utf-8"))["predictions"][0]["spans"]
    assert [s["label"] for s in spans] == ["GPE"]
