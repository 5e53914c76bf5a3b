import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy
from core_data import synthetic_records
from spacy.tokens import DocBin

from annobridge.adapters.jsonl import write_records
from annobridge.errors import UsageError
from annobridge.export import export


def test_report_accounts_for_every_record(records_file: Path, tmp_path: Path) -> None:
    report = export(f"jsonl:{records_file}", tmp_path / "out", task="ner")
    assert report.records_read == 304  # 300 good + 2 unreadable lines + 1 ignored + 1 bad span
    assert report.records_exported == 301
    assert report.records_skipped == Counter(
        {
            "invalid JSON (Expecting property name enclosed in double quotes)": 1,
            "not an annobridge record (KeyError: 'text')": 1,
            "only ignored or skipped answers": 1,
        }
    )
    assert report.spans_dropped == Counter({"span text not found in the document": 1})
    assert report.data_errors == 3
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["records_read"] == saved["records_exported"] + sum(saved["records_skipped"].values())


def test_docbins_and_manifest_agree(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(250))
    report = export(f"jsonl:{src}", tmp_path / "out", task="ner", shard_size=40)
    nlp = spacy.blank("en")
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").open()]
    assert len(manifest) == report.records_exported == 250
    by_file: dict[str, list] = {}
    for name in report.files:
        for file in report.files[name]:
            by_file[file] = list(DocBin().from_disk(tmp_path / "out" / file).get_docs(nlp.vocab))
    assert len(report.files["train"]) > 1  # sharded
    texts = {r.id: r.text for r in synthetic_records(250)}
    for entry in manifest:
        doc = by_file[entry["file"]][entry["index"]]
        assert doc.text == texts[entry["id"]]
        assert entry["split"] == entry["file"].split("/")[0]
    ents = sum(len(d.ents) for docs in by_file.values() for d in docs)
    assert ents == sum(sum(report.labels_per_split[s].values()) for s in report.labels_per_split)


def test_split_is_stable_when_the_corpus_grows(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    write_records(small, synthetic_records(100))
    write_records(big, synthetic_records(400))  # the same first 100 docs plus 300 more
    export(f"jsonl:{small}", tmp_path / "a", task="ner", seed=7)
    export(f"jsonl:{big}", tmp_path / "b", task="ner", seed=7)
    a = {e["id"]: e["split"] for e in map(json.loads, (tmp_path / "a" / "manifest.jsonl").open())}
    b = {e["id"]: e["split"] for e in map(json.loads, (tmp_path / "b" / "manifest.jsonl").open())}
    assert all(b[doc_id] == split for doc_id, split in a.items())


def test_group_by_keeps_groups_together(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(200))
    export(f"jsonl:{src}", tmp_path / "o", task="ner", group_by="group")
    groups: dict[str, set[str]] = {}
    for entry in map(json.loads, (tmp_path / "o" / "manifest.jsonl").open()):
        groups.setdefault(f"g{int(entry['id'].split('-')[1]) % 7}", set()).add(entry["split"])
    assert all(len(splits) == 1 for splits in groups.values())


def test_textcat_exclusive_and_fasttext(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(100))
    report = export(f"jsonl:{src}", tmp_path / "ft", task="textcat", format="fasttext", stratify=True)
    assert report.labels == ["other", "travel"]
    lines = (tmp_path / "ft" / "train.txt").read_text(encoding="utf-8").splitlines()
    assert lines and all(line.startswith(("__label__travel ", "__label__other ")) for line in lines)
    assert sum(report.docs_per_split.values()) == 100


def test_conll_output_is_accepted_by_spacy_convert(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(60))
    export(f"jsonl:{src}", tmp_path / "c", task="ner", format="conll", split="1")
    iob = tmp_path / "c" / "train.iob"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "convert",
            str(iob),
            str(tmp_path),
            "--converter",
            "ner",
            "--file-type",
            "spacy",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(spacy.blank("en").vocab))
    ents = [e.label_ for d in docs for e in d.ents]
    assert len(docs) == 60 and set(ents) <= {"PERSON", "GPE", "ORG"} and ents


def test_format_task_mismatch_is_a_usage_error(tmp_path: Path, records_file: Path) -> None:
    with pytest.raises(UsageError):
        export(f"jsonl:{records_file}", tmp_path / "out", task="ner", format="fasttext")
    with pytest.raises(UsageError):
        export(f"jsonl:{records_file}", tmp_path / "out", task="textcat", format="conll")


def test_package_level_export_stays_callable(tmp_path: Path) -> None:
    import annobridge
    import annobridge.export  # importing the submodule must not shadow the function

    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(5))
    for run in range(2):
        assert annobridge.export(f"jsonl:{src}", tmp_path / f"o{run}", task="ner").records_read == 5


def test_conll_refuses_docs_with_undecided_tokens_instead_of_writing_o(tmp_path: Path) -> None:
    """IOB has no missing tag spaCy reads: a disputed region written as O would say "no entity" where
    nobody decided. Such a doc is skipped with the reason; the agreed doc is written."""
    from annobridge.formats import MISSING_IN_CONLL
    from annobridge.model import Annotation, Document, Record, Span

    agreed = Record(Document("a", "Anna lives in Oslo"), [Annotation("x", [Span(0, 4, "PER")]),
                                                         Annotation("y", [Span(0, 4, "PER")])])
    disputed = Record(Document("d", "Anna lives in Oslo"), [Annotation("x", [Span(0, 4, "PER"), Span(14, 18, "LOC")]),
                                                           Annotation("y", [Span(0, 4, "PER")])])
    src = tmp_path / "r.jsonl"
    write_records(src, [agreed, disputed])
    report = export(f"jsonl:{src}", tmp_path / "c", task="ner", format="conll", split="1", policy="majority")
    assert report.records_exported == 1 and report.records_skipped == {MISSING_IN_CONLL: 1}
    assert report.balanced and report.data_errors == 1
    lines = (tmp_path / "c" / "train.iob").read_text(encoding="utf-8").splitlines()
    assert "Oslo O" in lines and "Anna B-PER" in lines and len([x for x in lines if x.startswith("Anna")]) == 1
    # the same disputed doc in DocBin keeps its region missing
    spacy_report = export(f"jsonl:{src}", tmp_path / "s", task="ner", split="1", policy="majority")
    assert spacy_report.records_exported == 2
