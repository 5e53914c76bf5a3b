"""Sources told by content, and CoNLL / spaCy DocBin files as sources, on real data (WNUT-17, Prodigy)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.tokens import Span as SpacySpan

from annobridge.adapter import AdapterURL
from annobridge.adapters.conll import sentence_spans
from annobridge.adapters.jsonl import write_records
from annobridge.errors import UsageError
from annobridge.export import export
from annobridge.plugins import open_adapter
from annobridge.readers import read_documents
from annobridge.sniff import Kind, sniff

DATA = Path(__file__).resolve().parents[1] / "data"
FASHION = DATA / "prodigy" / "fashion_brands_training_head.jsonl"
WNUT = DATA / "conll" / "wnut17_dev_head.conll"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "annobridge", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def _wnut_entities() -> Counter[tuple[str, str]]:
    """(entity text, type) from the raw file: B- starts, I- continues (the file is IOB2)."""
    found: Counter[tuple[str, str]] = Counter()
    words: list[str] = []
    label = None
    for line in [*WNUT.read_text(encoding="utf-8").splitlines(), ""]:
        parts = line.split("\t")
        tag = parts[-1].strip() if line.strip() else "O"
        if label is not None and not tag.startswith("I-"):
            found[(" ".join(words), label)] += 1
            label = None
        if tag.startswith("B-"):
            words, label = [parts[0]], tag[2:]
        elif tag.startswith("I-"):
            words.append(parts[0])
    return found


def _entities(records: list) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for record in records:
        for ann in record.annotations:
            for span in ann.spans:
                found[(record.text[span.start : span.end], span.label)] += 1
    return found


def _squeezed(entities: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter({("".join(text.split()), label): n for (text, label), n in entities.items()})


# -- sniffing ---------------------------------------------------------------------------------


def test_bare_paths_are_told_by_content_whatever_their_name(tmp_path: Path) -> None:
    prodigy = tmp_path / "data.jsonl"
    shutil.copy(FASHION, prodigy)
    assert sniff(prodigy) == Kind.PRODIGY_TASKS
    assert AdapterURL.parse(str(prodigy)).scheme == "prodigy"
    packed = tmp_path / "export.jsonl.gz"
    packed.write_bytes(gzip.compress(FASHION.read_bytes()))
    assert AdapterURL.parse(str(packed)).scheme == "prodigy"

    records = tmp_path / "records.jsonl"
    with open_adapter(f"prodigy:{FASHION}") as adapter:
        write_records(records, list(adapter.pull())[:5])
    assert AdapterURL.parse(str(records)).scheme == "jsonl"

    conll_as_txt = tmp_path / "tokens.txt"
    shutil.copy(WNUT, conll_as_txt)
    assert AdapterURL.parse(str(conll_as_txt)).scheme == "conll"
    assert AdapterURL.parse(str(WNUT) + "?doc=1").params == {"doc": "1"}

    nlp = spacy.blank("en")
    docbin = tmp_path / "corpus.bin"  # no .spacy suffix
    DocBin(docs=[nlp("A doc.")]).to_disk(docbin)
    assert AdapterURL.parse(str(docbin)).scheme == "spacy"
    (tmp_path / "shards").mkdir()
    DocBin(docs=[nlp("A doc.")]).to_disk(tmp_path / "shards" / "0000.spacy")
    assert AdapterURL.parse(str(tmp_path / "shards")).scheme == "spacy"  # a folder holding .spacy files

    table = tmp_path / "texts.dat"
    table.write_text("id,text\n1,hello there\n", encoding="utf-8")
    assert sniff(table) == Kind.TABLE

    # names still decide where there is nothing to read, and nonsense still gets the clear error
    assert AdapterURL.parse(str(tmp_path / "new.jsonl")).scheme == "jsonl"
    assert AdapterURL.parse(str(tmp_path / "new.conll")).scheme == "conll"
    junk = tmp_path / "junk.xyz"
    junk.write_bytes(b"\x00\x01binary nothing")
    with pytest.raises(UsageError, match="Cannot tell which tool"):
        AdapterURL.parse(str(junk))


def test_cli_exports_a_bare_prodigy_path_as_prodigy(tmp_path: Path) -> None:
    source = tmp_path / "annotations.jsonl"
    shutil.copy(FASHION, source)
    proc = _cli("export", str(source), "--out", str(tmp_path / "corpus"), "--task", "ner", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "corpus" / "report.json").read_text(encoding="utf-8"))
    assert (report["records_read"], report["records_exported"], report["records_skipped"]) == (80, 80, {})
    assert "FASHION_BRAND" in report["labels"]


def test_cli_import_with_a_bad_byte_does_not_crash(tmp_path: Path) -> None:
    lines = FASHION.read_bytes().splitlines()
    lines[9] = lines[9].replace(b'"text":', b'"text":"\xff', 1)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    proc = _cli("import", str(corpus), f"jsonl:{tmp_path / 'project.jsonl'}", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "79 imported" in proc.stdout and "1 unreadable" in proc.stdout
    assert sum(1 for _ in (tmp_path / "project.jsonl").open(encoding="utf-8")) == 79


# -- CoNLL ------------------------------------------------------------------------------------


def test_wnut17_sentences_become_records_with_exact_offsets() -> None:
    with open_adapter(f"conll:{WNUT}") as adapter:
        records = list(adapter.pull())
        assert adapter.skipped == []
        assert adapter.count() == 400
    assert len(records) == 400
    assert _entities(records) == _wnut_entities()
    first = records[0]
    assert first.id == "wnut17_dev_head.conll:0" and first.text.startswith("Stabilized approach or not ?")
    for record in records:
        for span in record.annotations[0].spans:
            assert record.text[span.start : span.end] == span.text
            assert span.start == 0 or record.text[span.start - 1] == " "
    assert len({r.id for r in records}) == 400


def test_a_malformed_line_costs_only_its_sentence(tmp_path: Path) -> None:
    lines = WNUT.read_bytes().split(b"\n")
    lines[20] = b"Redondo\tB-location\tX-bad"  # line 21, in the second sentence: an unknown tag
    lines[40] = lines[40] + b"\xff"  # line 41: not UTF-8
    path = tmp_path / "broken.conll"
    path.write_bytes(b"\n".join(lines))
    with open_adapter(f"conll:{path}") as adapter:
        records = list(adapter.pull())
        skipped = list(adapter.skipped)
    assert [w for w, _ in skipped] == ["broken.conll:21", "broken.conll:41"]
    assert "unknown tag 'X-bad'" in skipped[0][1] and skipped[1][1] == "line is not UTF-8"
    assert len(records) == 398
    assert [r.id for r in records[:2]] == ["broken.conll:0", "broken.conll:3"]  # ids do not shift


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], [(0, 3, "PER"), (6, 7, "LOC"), (8, 9, "LOC")]),  # IOB2
        (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], [(0, 3, "PER"), (6, 7, "LOC"), (8, 9, "LOC")]),  # IOB1
        (["B-PER", "E-PER", "O", "S-LOC", "S-LOC"], [(0, 3, "PER"), (6, 7, "LOC"), (8, 9, "LOC")]),  # IOBES
        (["B-PER", "L-PER", "O", "U-LOC", "U-LOC"], [(0, 3, "PER"), (6, 7, "LOC"), (8, 9, "LOC")]),  # BILUO
        (["B-PER", "I-ORG", "O", "O", "I-LOC"], [(0, 1, "PER"), (2, 3, "ORG"), (8, 9, "LOC")]),  # type change
    ],
)
def test_tag_schemes_decode_to_the_same_spans(tags: list[str], expected: list[tuple[int, int, str]]) -> None:
    words = ["a", "b", "c", "d", "e"]
    assert [s.key for s in sentence_spans(words, tags)] == expected


def test_documents_mode_and_conll_as_an_import_corpus(tmp_path: Path) -> None:
    path = tmp_path / "two_docs.conll"
    path.write_text(
        "-DOCSTART- -X- O O\n\nMaria NNP B-NP B-PER\nsmiled VBD B-VP O\n\nIn IN B-PP O\nOslo NNP B-NP B-LOC\n\n"
        "-DOCSTART- -X- O O\n\nAcme NNP B-NP B-ORG\n",
        encoding="utf-8",
    )
    with open_adapter(f"conll:{path}?doc=1") as adapter:
        docs = list(adapter.pull())
    assert [(r.text, [s.key for s in r.annotations[0].spans]) for r in docs] == [
        ("Maria smiled In Oslo", [(0, 5, "PER"), (16, 20, "LOC")]),
        ("Acme", [(0, 4, "ORG")]),
    ]
    with open_adapter(f"conll:{path}") as adapter:
        assert [r.text for r in adapter.pull()] == ["Maria smiled", "In Oslo", "Acme"]
    assert [d.text for d in read_documents(path)] == ["Maria smiled", "In Oslo", "Acme"]
    assert len(list(read_documents(WNUT))) == 400


def test_annobridge_conll_output_reads_back_with_the_same_entities(tmp_path: Path) -> None:
    report = export(f"conll:{WNUT}", tmp_path / "out", task="ner", format="conll")
    assert report.records_exported == 400
    back = []
    for name in report.files.values():
        for file in name:
            with open_adapter(f"conll:{tmp_path / 'out' / file}") as adapter:
                back.extend(adapter.pull())
                assert adapter.skipped == []
    assert len(back) == 400
    # CoNLL keeps tokens, not the spaces between them: spaCy's tokens of "spider-man" come back as
    # "spider - man". The same entities, then, up to whitespace.
    assert _squeezed(_entities(back)) == _squeezed(_wnut_entities())
    assert sum(_entities(back).values()) == sum(_wnut_entities().values())


# -- spaCy DocBin -----------------------------------------------------------------------------


def test_an_exported_docbin_folder_reads_back_with_the_same_entities(tmp_path: Path) -> None:
    report = export(f"conll:{WNUT}", tmp_path / "corpus", task="ner")
    assert report.records_exported == 400
    with open_adapter(str(tmp_path / "corpus")) as adapter:  # a bare folder path: sniffed as DocBins
        records = list(adapter.pull())
    assert len(records) == 400
    assert _entities(records) == _wnut_entities()
    assert len({r.id for r in records}) == 400
    assert records[0].id.startswith(("dev/", "test/", "train/"))


def test_docbin_span_groups_cats_and_ids(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    doc = nlp("Maria flew from Oslo to New York")
    doc.ents = [SpacySpan(doc, 0, 1, "PER")]
    doc.spans["sc"] = [SpacySpan(doc, 3, 4, "CITY"), SpacySpan(doc, 5, 7, "CITY"), SpacySpan(doc, 5, 6, "WORD")]
    doc.cats = {"TRAVEL": 1.0, "SPORT": 0.0}
    doc.user_data["id"] = "trip-1"
    plain = nlp("No annotation here")
    path = tmp_path / "mixed.spacy"
    DocBin(docs=[doc, plain], store_user_data=True).to_disk(path)

    with open_adapter(f"spacy:{path}") as adapter:
        first, second = list(adapter.pull())
    assert first.id == "trip-1" and second.id == "mixed.spacy:1"
    assert [s.key for s in first.annotations[0].spans] == [(0, 5, "PER")]
    assert first.annotations[0].categories == {"TRAVEL": 1.0, "SPORT": 0.0}
    assert second.annotations == []
    with open_adapter(f"spacy:{path}?spans_key=sc") as adapter:
        grouped = next(iter(adapter.pull()))
    assert sorted(s.key for s in grouped.annotations[0].spans) == [(16, 20, "CITY"), (24, 27, "WORD"),
                                                                   (24, 32, "CITY")]
    assert len(list(read_documents(path, on_skip=lambda w, r: None))) == 2

    broken = tmp_path / "broken.spacy"
    broken.write_bytes(b"x\x9c not really zlib")
    with open_adapter(f"spacy:{broken}") as adapter:
        assert list(adapter.pull()) == []
        assert adapter.skipped and adapter.skipped[0][0] == "broken.spacy"


def test_a_bare_json_array_of_records_is_read_as_records(tmp_path: Path) -> None:
    with open_adapter(f"prodigy:{FASHION}") as adapter:
        records = list(adapter.pull())[:7]
    path = tmp_path / "records.json"
    path.write_text(json.dumps([r.to_dict() for r in records], ensure_ascii=False), encoding="utf-8")
    url = AdapterURL.parse(str(path))
    assert url.scheme == "jsonl"
    with open_adapter(url) as adapter:
        assert [r.to_dict() for r in adapter.pull()] == [r.to_dict() for r in records]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "a", "text": "x"}, {oops]', encoding="utf-8")
    with open_adapter(f"jsonl:{broken}") as adapter, pytest.raises(UsageError, match="invalid JSON"):
        list(adapter.pull())
