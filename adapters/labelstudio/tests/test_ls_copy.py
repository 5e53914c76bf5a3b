"""Copy matrix on a real Label Studio: Prodigy review output -> Label Studio -> annobridge JSONL -> Prodigy.

Real data: ``prodigy review`` output (two sessions' versions plus the reviewer's decision per text). Every
span, label, annotator (renamed by an annotator map to Label Studio users), answer and ground-truth flag
must arrive; a second run copies nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ls_helpers import LabelStudioServer, adapter_for

from annobridge import open_adapter
from annobridge.copy import copy_project, read_annotator_map
from annobridge.model import Record

pytestmark = pytest.mark.server

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "prodigy" / "restaurant_reviews_review.jsonl"


def _view(records: list[Record], rename: dict[str, str] | None = None) -> dict[str, set[tuple[object, ...]]]:
    """Per text: (annotator, answer, ground truth, spans) for every annotation."""
    rename = rename or {}
    out: dict[str, set[tuple[object, ...]]] = {}
    for r in records:
        out[r.text] = {
            (rename.get(a.annotator, a.annotator), a.answer.value, a.ground_truth, frozenset(s.key for s in a.spans))
            for a in r.annotations
        }
    return out


def test_copy_matrix_through_label_studio(ls_server: LabelStudioServer, new_project_url: str, tmp_path: Path) -> None:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    src_file = tmp_path / "review.jsonl"
    src_file.write_text("\n".join(lines[:6] + lines[25:31]) + "\n", encoding="utf-8")  # disputed and agreed ones
    ann1, ann2, _ = ls_server.annotators
    map_file = tmp_path / "annotators.csv"
    map_file.write_text(f"source,destination\noriginal_annotations,{ann1.email}\nner_model,{ann2.email}\n",
                        encoding="utf-8")
    rename = read_annotator_map(map_file)
    with open_adapter(f"prodigy:{src_file}") as source:
        original = list(source.pull())
    assert sum(len(r.annotations) for r in original) > len(original) * 2  # versions and decisions

    # 1. Prodigy -> Label Studio, annotators renamed to Label Studio users
    with open_adapter(f"prodigy:{src_file}") as source:
        report = copy_project(source, adapter_for(ls_server, new_project_url), task="ner", annotators=rename)
    read = sum(len(r.annotations) for r in original)
    assert report.balanced and report.annotations_read == read
    assert (report.documents.created, report.annotations.created, report.refused) == (12, read, 0), report.to_dict()
    in_ls = list(adapter_for(ls_server, new_project_url).pull())
    assert _view(in_ls) == _view(original, rename)

    # a second run copies nothing
    with open_adapter(f"prodigy:{src_file}") as source:
        again = copy_project(source, adapter_for(ls_server, new_project_url), task="ner", annotators=rename)
    assert (again.documents.created, again.annotations.created, again.predictions.created) == (0, 0, 0)
    assert (again.documents.existing, again.annotations.existing) == (12, read)

    # 2. Label Studio -> annobridge JSONL -> Prodigy: nothing lost on the way on
    jsonl = tmp_path / "copy.jsonl"
    with open_adapter(f"jsonl:{jsonl}") as out:
        to_jsonl = copy_project(adapter_for(ls_server, new_project_url), out, task="ner")
    assert to_jsonl.refused == 0 and to_jsonl.annotations.created == read
    back = tmp_path / "back.jsonl"
    with open_adapter(f"jsonl:{jsonl}") as src, open_adapter(f"prodigy:{back}") as out:
        to_prodigy = copy_project(src, out, task="ner")
    assert to_prodigy.refused == 0
    with open_adapter(f"prodigy:{back}") as out:
        final = list(out.pull())
    assert _view(final) == _view(original, rename)
    assert all(json.loads(line)["_annotator_id"] in (ann1.email, ann2.email) for line in
               back.read_text(encoding="utf-8").splitlines() if "answer" in json.loads(line))
