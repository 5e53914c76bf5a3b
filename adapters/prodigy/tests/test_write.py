"""Writing recipe input streams: import_documents and push_predictions on a Prodigy JSONL file."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from annobridge import Document, LabelSchema, Prediction, Span, open_adapter
from annobridge.readers import read_documents
from annobridge_prodigy import ProdigyAdapter


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _adapter(path: Path) -> ProdigyAdapter:
    adapter = open_adapter(f"prodigy:{path}")
    assert isinstance(adapter, ProdigyAdapter)
    return adapter


def test_import_writes_the_hashes_prodigy_wrote(data_dir: Path, tmp_path: Path) -> None:
    docs = list(read_documents(data_dir / "raw_news_headlines_nyt.jsonl"))
    out = tmp_path / "stream.jsonl"
    result = _adapter(out).import_documents(docs)
    distinct = len({d.id for d in docs})
    assert (result.created, result.existing, result.failed) == (distinct, len(docs) - distinct, [])
    written = _lines(out)
    assert len(written) == distinct
    # the documents' ids (content ids: the raw lines have none) travel as annobridge_id, outside the hashes
    assert all(set(t) == {"text", "meta", "_input_hash", "_task_hash", "annobridge_id"} for t in written)
    assert [t["annobridge_id"] for t in written] == list(dict.fromkeys(d.id for d in docs))
    # The same headlines went through Prodigy (ner.manual) in the annotated export: our hashes of the
    # raw stream must be the ones Prodigy gave them.
    annotated = {t["text"]: t for t in _lines(data_dir / "news_headlines_ner_manual.jsonl")}
    common = [t for t in written if t["text"] in annotated]
    assert len(common) >= 40
    for task in common:
        assert task["_input_hash"] == annotated[task["text"]]["_input_hash"]
        assert task["_task_hash"] == annotated[task["text"]]["_task_hash"]
        assert result.native_ids[next(d.id for d in docs if d.text == task["text"])] == task["_input_hash"]


def test_import_is_idempotent(data_dir: Path, tmp_path: Path) -> None:
    docs = list(read_documents(data_dir / "raw_news_headlines_nyt.jsonl"))
    out = tmp_path / "stream.jsonl"
    first = _adapter(out).import_documents(docs)
    before = out.read_bytes()
    second = _adapter(out).import_documents(docs)
    assert second.created == 0 and second.existing == len(docs) == first.total
    assert out.read_bytes() == before
    records = list(_adapter(out).pull())
    assert len(records) == first.created
    assert all(not r.annotations and not r.predictions for r in records)


def test_documents_from_prodigy_keep_their_hashes(data_dir: Path, tmp_path: Path) -> None:
    # docs_issues hashes were made by an older scheme that also hashed `html`: a recompute would differ
    source = _adapter(data_dir / "docs_issues_textcat_binary.jsonl")
    records = list(source.pull())
    out = tmp_path / "again.jsonl"
    result = _adapter(out).import_documents([r.document for r in records])
    assert result.created == len(records)
    assert [t["_input_hash"] for t in _lines(out)] == [int(r.id) for r in records]
    assert [r.id for r in _adapter(out).pull()] == [r.id for r in records]


def test_push_ner_predictions_with_tokens(tmp_path: Path) -> None:
    text = "Maria bought H&M jeans in Oslo.  Then  she left."
    doc = Document.create(text, meta={"source": "demo"})
    pred = Prediction(
        "en_core_web_sm",
        spans=[Span(0, 5, "PERSON", score=0.9), Span(13, 14, "ORG", score=0.4), Span(26, 30, "GPE")],
        score=0.61,
    )
    out = tmp_path / "correct.jsonl"
    adapter = _adapter(out)
    result = adapter.push_predictions([(doc, pred)])
    assert (result.created, result.existing, result.failed) == (1, 0, [])
    (task,) = _lines(out)
    tokens = task["tokens"]
    assert [t["id"] for t in tokens] == list(range(len(tokens)))
    for token in tokens:
        assert text[token["start"] : token["end"]] == token["text"]
    for a, b in pairwise(tokens):
        assert a["ws"] == (b["start"] != a["end"])
    assert "".join(t["text"] + (" " if t["ws"] else "") for t in tokens) == text
    # "H&M" is one spaCy token: it is split so that ner.manual can show the span "H"
    for span in task["spans"]:
        assert tokens[span["token_start"]]["start"] == span["start"]
        assert tokens[span["token_end"]]["end"] == span["end"]
        assert span["text"] == text[span["start"] : span["end"]]
        assert span["source"] == "en_core_web_sm"
    assert task["meta"] == {"source": "demo", "score": 0.61, "model": "en_core_web_sm"}
    assert "answer" not in task

    (record,) = list(adapter.pull())
    assert record.annotations == []
    (back,) = record.predictions
    assert back.model_version == "en_core_web_sm" and back.score == pytest.approx(0.61)
    assert [(s.key, s.score) for s in back.spans] == [(s.key, s.score) for s in pred.spans]


def test_push_is_idempotent_and_replaces_the_stream_task(data_dir: Path, tmp_path: Path) -> None:
    docs = list(read_documents(data_dir / "raw_news_headlines_nyt.jsonl"))[:5]
    out = tmp_path / "stream.jsonl"
    adapter = _adapter(out)
    adapter.import_documents(docs)
    doc = docs[0]
    first_word = doc.text.split()[0]
    pred = Prediction("m1", spans=[Span(0, len(first_word), "ORG")])
    result = adapter.push_predictions([(doc, pred)])
    assert (result.created, result.existing) == (0, 1)
    tasks = _lines(out)
    assert len(tasks) == 5 and "spans" in tasks[0] and "tokens" in tasks[0]
    snapshot = out.read_bytes()
    again = adapter.push_predictions([(doc, pred)])
    assert (again.created, again.existing) == (0, 1)
    assert out.read_bytes() == snapshot
    newer = Prediction("m2", spans=[])
    adapter.push_predictions([(doc, newer), (Document.create("A brand new text."), pred)])
    tasks = _lines(out)
    assert len(tasks) == 6
    assert tasks[0]["spans"] == [] and tasks[0]["meta"]["model"] == "m2"


def test_push_textcat_predictions(tmp_path: Path) -> None:
    doc = Document.create("How long do I bake bread?")
    pred = Prediction("tc", categories={"baking": 0.9, "bread": 0.7, "eggs": 0.1})
    multi = tmp_path / "multi.jsonl"
    adapter = _adapter(multi)
    adapter.import_documents([doc], schema=LabelSchema("textcat_multilabel", ["baking", "bread", "eggs"]),
                             predictions={doc.id: pred})
    (task,) = _lines(multi)
    assert [o["id"] for o in task["options"]] == ["baking", "bread", "eggs"]
    assert task["accept"] == ["baking", "bread"]
    (record,) = list(adapter.pull())
    assert record.predictions[0].categories == pytest.approx(pred.categories)

    exclusive = tmp_path / "exclusive.jsonl"
    _adapter(exclusive).import_documents(
        [doc], schema=LabelSchema("textcat", ["baking", "bread", "eggs"]), predictions={doc.id: pred}
    )
    assert _lines(exclusive)[0]["accept"] == ["baking"]

    binary = tmp_path / "binary.jsonl"
    _adapter(binary).import_documents([doc], schema=LabelSchema("textcat", ["baking"]),
                                      predictions={doc.id: Prediction("tc", categories={"baking": 0.9})})
    (task,) = _lines(binary)
    assert task["label"] == "baking" and task["meta"]["score"] == 0.9 and "options" not in task


def test_unusable_predictions_fail_with_a_reason(tmp_path: Path) -> None:
    doc = Document.create("Anna met Bob.")
    out = tmp_path / "bad.jsonl"
    adapter = _adapter(out)
    overlapping = Prediction("m", spans=[Span(0, 4, "PERSON"), Span(2, 8, "PERSON")])
    result = adapter.import_documents([doc], schema=LabelSchema("ner", ["PERSON"]), predictions={doc.id: overlapping})
    assert result.created == 0 and result.failed[0][0] == doc.id and "overlapping" in result.failed[0][1]
    wrong = Prediction("m", spans=[Span(0, 4, "PERSON", text="Carl")])
    result = adapter.push_predictions([(doc, wrong)])
    assert result.failed == [(doc.id, "span 0-4 PERSON: span text not found in the document")]
    # spans (not ner) may overlap
    result = adapter.import_documents([doc], schema=LabelSchema("spans", ["PERSON"]), predictions={doc.id: overlapping})
    assert result.created == 1


def test_round_trip_from_prodigy_back_to_a_correct_stream(data_dir: Path, tmp_path: Path) -> None:
    records = list(_adapter(data_dir / "fashion_brands_training_head.jsonl").pull())
    items = [(r.document, Prediction("gold", spans=r.annotations[0].spans)) for r in records]
    out = tmp_path / "correct.jsonl"
    result = _adapter(out).push_predictions(items)
    assert result.created == len(records) and not result.failed
    back = {r.id: r for r in _adapter(out).pull()}
    assert list(back) == [r.id for r in records]
    for record in records:
        assert [s.key for s in back[record.id].predictions[0].spans] == sorted(
            s.key for s in record.annotations[0].spans
        )


def test_writing_refuses_compressed_or_json_files(tmp_path: Path) -> None:
    from annobridge import UsageError

    with pytest.raises(UsageError, match=r"plain \.jsonl"):
        _adapter(tmp_path / "x.jsonl.gz").import_documents([Document.create("x")])


def test_ner_stream_without_predictions_has_tokens(tmp_path: Path) -> None:
    out = tmp_path / "manual.jsonl"
    doc = Document.create("Anna met Bob in Rome.")
    _adapter(out).import_documents([doc], schema=LabelSchema("ner", ["PERSON"]))
    (task,) = _lines(out)
    assert [t["text"] for t in task["tokens"]] == ["Anna", "met", "Bob", "in", "Rome", "."]
    assert "spans" not in task and "answer" not in task


def test_push_leaves_answered_lines_alone(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed.jsonl"
    annotated = (data_dir / "fashion_brands_training_head.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    out.write_text("\n".join(annotated) + "\n", encoding="utf-8")
    record = next(iter(_adapter(out).pull()))
    result = _adapter(out).push_predictions([(record.document, Prediction("m", spans=[]))])
    # the answered task stays; the suggestion for the same input is added beside it
    assert (result.created, result.existing) == (1, 0)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == annotated and len(lines) == 4
    (back,) = [r for r in _adapter(out).pull() if r.id == record.id]
    assert len(back.annotations) == 1 and back.predictions[0].model_version == "m"
