import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from annobridge.errors import DataError
from annobridge.readers import read_documents


def test_jsonl_with_ids_meta_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"text": "a", "meta": {"id": "m1"}}),
                "{oops",
                json.dumps({"text": "b", "id": 5}),
                json.dumps({"txt": 1}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    skipped: list[tuple[str, str]] = []
    docs = list(read_documents(path, on_skip=lambda w, r: skipped.append((w, r))))
    assert [(d.id, d.text) for d in docs] == [("m1", "a"), ("5", "b")]
    assert [w for w, _ in skipped] == ["c.jsonl:2", "c.jsonl:4"]
    with pytest.raises(DataError):
        list(read_documents(path))  # no on_skip: the first bad line is an error


def test_text_and_docbin(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("one line\n\nsecond line\r\n", encoding="utf-8")
    assert [d.text for d in read_documents(tmp_path / "t.txt")] == ["one line", "second line"]
    nlp = spacy.blank("en")
    DocBin(docs=[nlp("first doc"), nlp("second doc")]).to_disk(tmp_path / "d.spacy")
    assert [d.text for d in read_documents(tmp_path / "d.spacy")] == ["first doc", "second doc"]


def test_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(DataError, match="Unknown corpus format"):
        list(read_documents(tmp_path / "x.xml"))
