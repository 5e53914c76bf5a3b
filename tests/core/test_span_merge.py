"""Per-span merging (issue #11): agreed entities are kept, disputed regions are missing, not the whole document lost.

The real-data tests read Prodigy review output (tests/data/prodigy/review_two_versions.jsonl: two versions per
document, by sessions ``original_annotations`` and ``ner_model``) through the Prodigy adapter. The reviewer's
final decision (the ground-truth annotation) is left out: these tests are about the two annotators' votes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

import annobridge
from annobridge.adapters.jsonl import write_records
from annobridge.convert import DocConverter
from annobridge.export import export
from annobridge.merge import (
    DISAGREE_UNANIMOUS,
    POLICY_REASONS,
    TIE_MAJORITY,
    Merged,
    MergeSkip,
    merge_record,
    vote_spans,
)
from annobridge.model import Annotation, Answer, Document, LabelSchema, Record, Span

DATA = Path(__file__).resolve().parents[1] / "data" / "prodigy" / "review_two_versions.jsonl"
NLP = spacy.blank("en")
LABELS = ["PERSON", "GPE", "LOC", "ORG", "DATE"]
TEXT = "Maria Smith moved to Oslo in May ."  # blank "en" tokens: Maria Smith moved to Oslo in May .
MARIA_SMITH, MARIA, OSLO_GPE, OSLO_LOC, MAY = (
    Span(0, 11, "PERSON"),
    Span(0, 5, "PERSON"),
    Span(21, 25, "GPE"),
    Span(21, 25, "LOC"),
    Span(29, 32, "DATE"),
)


def review_records() -> list[Record]:
    """The real review records, without the reviewer's decision: two annotators, each a complete version."""
    with annobridge.open_adapter(f"prodigy:{DATA}") as source:
        records = list(source.pull())
    out = []
    for record in records:
        votes = [a for a in record.annotations if not a.ground_truth]
        assert {a.annotator for a in votes} == {"original_annotations", "ner_model"}, record.id
        out.append(Record(record.document, votes, record.predictions, record.native_ids))
    return out


def tags(doc: Doc) -> list[str]:
    """ent_iob_ + type per token; "" is missing."""
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else t.ent_iob_ for t in doc]


def convert(annotations: list[Annotation], policy: str = "majority", task: str = "ner", text: str = TEXT):
    schema = LabelSchema(task, LABELS)
    return DocConverter(NLP, schema, policy=policy).convert(Record(Document.create(text, id="d"), annotations))


# -- real annotations ---------------------------------------------------------------------------------


def _exported_docs(out: Path) -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    loaded: dict[str, list[Doc]] = {}
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["file"] not in loaded:
            loaded[entry["file"]] = list(DocBin().from_disk(out / entry["file"]).get_docs(NLP.vocab))
        docs[entry["id"]] = loaded[entry["file"]][entry["index"]]
    return docs


def test_real_review_every_agreed_entity_is_kept_and_disputed_regions_are_missing(tmp_path: Path) -> None:
    records = review_records()
    assert len(records) == 80
    src = tmp_path / "records.jsonl"
    write_records(src, records)

    # before: versions were decided whole, and two differing versions are a tie: every document was lost
    before = [merge_record(r, "majority") for r in records]
    assert all(isinstance(m, MergeSkip) and m.reason == TIE_MAJORITY for m in before)

    report = export(f"jsonl:{src}", tmp_path / "out", task="ner", policy="majority", split="1,0,0")
    assert report.balanced and report.data_errors == 0
    docs = _exported_docs(tmp_path / "out")
    assert len(docs) == report.records_exported

    shared_total = kept_total = 0
    disputed_labels: Counter[str] = Counter()
    for record in records:
        first, second = ({s.key for s in a.spans} for a in record.annotations)
        shared = first & second
        shared_total += len(shared)
        disputed_labels.update(label for _, _, label in first ^ second)
        doc = docs.get(record.id)
        if doc is None:
            # dropped only when nothing is left: no agreed entity, and no token both left outside
            assert not shared, record.id
            covered = {i for a in record.annotations for s in a.spans for i in range(s.start, s.end)}
            assert all(ch.isspace() or i in covered for i, ch in enumerate(record.text)), record.id
            continue
        assert {(e.start_char, e.end_char, e.label_) for e in doc.ents} == shared, record.id
        kept_total += len(shared)
        # the reference, the obvious way: inside an agreed entity -> its tag; covered by any version's span -> missing;
        # otherwise O
        agreed = {}
        for start, end, label in shared:
            span = doc.char_span(start, end)
            assert span is not None
            for n, token in enumerate(span):
                agreed[token.i] = f"{'B' if n == 0 else 'I'}-{label}"
        expected = []
        for token in doc:
            chars = range(token.idx, token.idx + len(token))
            anyone = any(s.start < chars.stop and chars.start < s.end for a in record.annotations for s in a.spans)
            expected.append(agreed.get(token.i, "" if anyone else "O"))
        assert tags(doc) == expected, record.id

    assert kept_total == shared_total > 0  # every agreed entity of the kept documents, and no document lost one
    assert report.records_exported > 60  # 0 before
    assert report.disputed_spans == disputed_labels  # two annotators: every span one of them marked is a tie
    assert report.docs_with_disputes == report.records_exported  # the two versions always differ
    assert report.records_skipped == Counter({TIE_MAJORITY: 80 - report.records_exported})
    # two annotators: unanimous asks the same bar, so it gives the same documents
    same = export(f"jsonl:{src}", tmp_path / "u", task="ner", policy="unanimous", split="1,0,0")
    assert same.records_exported == report.records_exported and same.disputed_spans == report.disputed_spans


def test_real_review_ground_truth_stays_a_whole_version(tmp_path: Path) -> None:
    # with the reviewer's decision in, the default policy takes it whole: every document, no missing tokens
    with annobridge.open_adapter(f"prodigy:{DATA}") as source:
        records = list(source.pull())
    for record in records:
        merged = merge_record(record, "ground_truth", task="ner")
        assert isinstance(merged, Merged) and merged.span_votes is None
        truth = next(a for a in record.annotations if a.ground_truth)
        assert {s.key for s in merged.spans} == {s.key for s in truth.spans}


# -- the rules, case by case ------------------------------------------------------------------------


def test_two_annotators_boundary_conflict_is_missing_the_rest_is_kept() -> None:
    result = convert([Annotation("a", [MARIA_SMITH, OSLO_GPE]), Annotation("b", [MARIA, OSLO_GPE])])
    assert result.doc is not None
    assert tags(result.doc) == ["", "", "O", "O", "B-GPE", "O", "O", "O"]
    assert result.disputed_spans == {"PERSON": 2} and result.missing_tokens == 2
    assert result.conflict == "partly resolved per span by majority (disputed regions missing)"


def test_label_conflict_on_the_same_tokens_is_missing() -> None:
    result = convert([Annotation("a", [OSLO_GPE]), Annotation("b", [OSLO_LOC])])
    assert result.doc is not None and tags(result.doc) == ["O", "O", "O", "O", "", "O", "O", "O"]
    assert result.disputed_spans == {"GPE": 1, "LOC": 1}


def test_majority_of_three_kept_spans_win_outvoted_spans_become_o() -> None:
    a = Annotation("a", [MARIA_SMITH, OSLO_GPE])
    b = Annotation("b", [MARIA_SMITH, OSLO_LOC, MAY])
    c = Annotation("c", [MARIA_SMITH, OSLO_GPE])
    result = convert([a, b, c])
    assert result.doc is not None
    # PERSON 3/3, GPE 2/3 kept; LOC and DATE 1/3: outvoted, and two of three left May outside -> O
    assert tags(result.doc) == ["B-PERSON", "I-PERSON", "O", "O", "B-GPE", "O", "O", "O"]
    assert result.outvoted_spans == {"LOC": 1, "DATE": 1} and not result.disputed_spans
    assert result.missing_tokens == 0 and result.conflict == "resolved per span by majority"


def test_majority_of_three_minority_boundaries_still_leave_a_region_missing() -> None:
    # a: Maria Smith, b: Maria, c: nothing. Both spans are outvoted (1 of 3), but two of three put "Maria" in some
    # entity: it is not known to be O, so it is missing; "Smith" was left outside by two of three: O
    result = convert([Annotation("a", [MARIA_SMITH]), Annotation("b", [MARIA]), Annotation("c", [])])
    assert result.doc is not None
    assert tags(result.doc)[:3] == ["", "O", "O"] and result.missing_tokens == 1
    assert result.outvoted_spans == {"PERSON": 2}


def test_unanimous_keeps_only_what_everyone_marked() -> None:
    a = Annotation("a", [MARIA_SMITH, OSLO_GPE])
    b = Annotation("b", [MARIA_SMITH, OSLO_GPE, MAY])
    c = Annotation("c", [MARIA_SMITH, OSLO_LOC])
    result = convert([a, b, c], "unanimous")
    assert result.doc is not None
    assert tags(result.doc) == ["B-PERSON", "I-PERSON", "O", "O", "", "O", "", "O"]
    assert result.disputed_spans == {"GPE": 1, "LOC": 1, "DATE": 1} and not result.outvoted_spans
    # the same votes under majority: GPE 2/3 kept, DATE 1/3 outvoted
    majority = convert([a, b, c], "majority")
    assert majority.doc is not None and tags(majority.doc)[4:7] == ["B-GPE", "O", "O"]


def test_prefer_takes_the_preferred_version_whole_and_latest_otherwise() -> None:
    a = Annotation("alice", [MARIA_SMITH, OSLO_GPE])
    b = Annotation("bob", [MARIA, OSLO_LOC, MAY])
    result = convert([a, b], "prefer:bob")
    assert result.doc is not None and result.missing_tokens == 0
    assert tags(result.doc) == ["B-PERSON", "O", "O", "O", "B-LOC", "O", "B-DATE", "O"]
    assert result.conflict == "resolved by preferring bob"
    absent = convert([a, b], "prefer:zoe")  # no timestamps: the latest is a tie, as before
    assert absent.doc is None and absent.reason == "tie: equal timestamps (latest)"


def test_a_document_is_dropped_only_when_every_token_is_disputed() -> None:
    text = "Oslo"
    result = convert([Annotation("a", [Span(0, 4, "GPE")]), Annotation("b", [Span(0, 4, "LOC")])], text=text)
    assert result.doc is None and result.reason == TIE_MAJORITY and result.reason in POLICY_REASONS
    assert result.disputed_spans == {"GPE": 1, "LOC": 1}
    unanimous = convert([Annotation("a", [Span(0, 4, "GPE")]), Annotation("b", [])], "unanimous", text=text)
    assert unanimous.doc is None and unanimous.reason == DISAGREE_UNANIMOUS
    # one O token is something to learn
    kept = convert([Annotation("a", [Span(0, 4, "GPE")]), Annotation("b", [])], text="Oslo !")
    assert kept.doc is not None and tags(kept.doc) == ["", "O"]


def test_votes_are_counted_after_offset_repair_and_alignment() -> None:
    # "Oslo " (trailing space, trimmed) and "Osl" (expanded to the token) are the same entity as "Oslo"
    a = Annotation("a", [Span(21, 26, "GPE", text="Oslo ")])
    b = Annotation("b", [Span(21, 24, "GPE", text="Osl")])
    c = Annotation("c", [OSLO_GPE, MAY])
    result = convert([a, b, c], "unanimous")
    assert result.doc is not None
    assert tags(result.doc) == ["O", "O", "O", "O", "B-GPE", "O", "", "O"]
    assert result.disputed_spans == {"DATE": 1}


def test_spans_task_leaves_disputed_spans_out_and_counts_them() -> None:
    a = Annotation("a", [MARIA_SMITH, MARIA, OSLO_GPE])
    b = Annotation("b", [MARIA_SMITH, OSLO_LOC])
    result = convert([a, b], task="spans")
    assert result.doc is not None
    assert [(s.start_char, s.end_char, s.label_) for s in result.doc.spans["sc"]] == [MARIA_SMITH.key]
    assert result.disputed_spans == {"PERSON": 1, "GPE": 1, "LOC": 1}
    assert result.conflict == "partly resolved per span by majority (disputed spans left out)"
    nothing = convert([Annotation("a", [OSLO_GPE]), Annotation("b", [OSLO_LOC])], task="spans")
    assert nothing.doc is None and nothing.reason == TIE_MAJORITY


def test_agreeing_versions_and_single_annotators_are_untouched() -> None:
    agreeing = Record(Document.create(TEXT), [Annotation("a", [MARIA]), Annotation("b", [MARIA])])
    same = merge_record(agreeing, "majority", "ner")
    assert isinstance(same, Merged) and same.span_votes is None and same.conflict is None
    # versions that differ only in categories agree for ner
    cats = [Annotation("a", [MARIA], {"X": 1.0}), Annotation("b", [MARIA], {"Y": 1.0})]
    assert merge_record(Record(Document.create(TEXT), cats), "unanimous", "ner").conflict is None  # type: ignore[union-attr]


def test_binary_answers_add_spans_no_manual_annotator_proposed() -> None:
    teach = Annotation("t", [MAY], mode="binary")
    ask_disputed = Annotation("t2", [OSLO_GPE], mode="binary")
    result = convert([Annotation("a", [OSLO_GPE]), Annotation("b", [OSLO_LOC]), teach, ask_disputed])
    assert result.doc is not None
    # May: decided by its binary vote; Oslo: the manual votes (tied), the binary answer does not break the tie
    assert tags(result.doc) == ["O", "O", "O", "O", "", "O", "B-DATE", "O"]


def test_vote_spans_directly() -> None:
    vote = vote_spans([{(0, 2, "A")}, {(0, 2, "A"), (3, 4, "B")}, {(1, 2, "A")}], "majority")
    assert vote.kept == [(0, 2, "A")] and vote.outvoted == [(3, 4, "B"), (1, 2, "A")] and vote.missing == set()
    with pytest.raises(ValueError):
        vote_spans([], "latest")


def test_multilabel_manual_disagreement_is_per_label() -> None:
    doc = Document.create("Where can I buy saffron?")
    anns = [
        Annotation("a", categories={"SHOPPING": 1.0, "SPICES": 1.0}),
        Annotation("b", categories={"SHOPPING": 1.0, "SPICES": 0.0}),
    ]
    schema = LabelSchema("textcat_multilabel", ["SHOPPING", "SPICES"])
    result = DocConverter(NLP, schema, policy="majority").convert(Record(doc, anns))
    assert result.doc is not None and result.doc.cats == {"SHOPPING": 1.0}  # SPICES tied: absent (missing)
    assert result.conflict == "partly resolved per span by majority (disputed labels)"


# -- the report, and training on the output -----------------------------------------------------------


def _record(doc_id: str, *annotations: Annotation, text: str = TEXT) -> Record:
    return Record(Document.create(text, id=doc_id), list(annotations))


def test_report_adds_up_with_disputes(tmp_path: Path) -> None:
    records = [
        _record("partly", Annotation("a", [MARIA_SMITH, OSLO_GPE]), Annotation("b", [MARIA, OSLO_GPE])),
        _record("all-disputed", Annotation("a", [Span(0, 4, "GPE")]), Annotation("b", [Span(0, 4, "LOC")]),
                text="Oslo"),
        _record("agreed", Annotation("a", [OSLO_GPE]), Annotation("b", [OSLO_GPE])),
        _record("ignored", Annotation("a", [OSLO_GPE], answer=Answer.IGNORE)),
    ]
    src = tmp_path / "r.jsonl"
    write_records(src, records)
    report = export(f"jsonl:{src}", tmp_path / "out", task="ner", policy="majority", split="1,0,0")
    assert report.balanced
    assert report.records_exported == 2
    assert report.records_skipped == {TIE_MAJORITY: 1, "only ignored or skipped answers": 1}
    assert report.disputed_spans == {"PERSON": 2, "GPE": 1, "LOC": 1}
    assert report.docs_with_disputes == 1 and report.missing_tokens == 2 and report.data_errors == 0
    saved = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert saved["disputed_spans"] == {"PERSON": 2, "GPE": 1, "LOC": 1} and saved["docs_with_disputes"] == 1
    assert saved["records_read"] == saved["records_exported"] + sum(saved["records_skipped"].values())
    # missing tokens survive the DocBin
    docs = _exported_docs(tmp_path / "out")
    assert tags(docs["partly"]) == ["", "", "O", "O", "B-GPE", "O", "O", "O"]


def test_spacy_reads_missing_tokens_as_unknown_and_trains_on_them(tmp_path: Path) -> None:
    result = convert([Annotation("a", [MARIA_SMITH, OSLO_GPE]), Annotation("b", [MARIA, OSLO_GPE])])
    assert result.doc is not None
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    example = Example(nlp.make_doc(TEXT), result.doc)
    assert example.get_aligned_ner() == [None, None, "O", "O", "U-GPE", "O", "O", "O"]
    optimizer = nlp.initialize(lambda: [example])
    losses: dict[str, float] = {}
    for _ in range(3):
        nlp.update([example], sgd=optimizer, losses=losses)
    assert losses["ner"] >= 0.0  # it trains: missing tokens carry no gradient, not an error
