"""What doccano 1.8.4's REST API cannot tell an incremental pull (issue 10: 50 changed of 10,000 under 10%).

These pin the facts the adapter's incremental pull is built around, on the real server: should a later doccano
add a cheap signal of which examples' labels changed, a test here fails and the adapter can use it.
Read from doccano's source (backend/examples/filters.py, views/example.py, labels/urls.py, metrics/views.py):
``ExampleFilter`` offers ``confirmed``, ``label`` (a label *name*, across all users, one row per matching label)
and exact-match ``project``/``text``/``created_at``/``updated_at``; ordering is by ``created_at``, ``updated_at``
or ``score``; labels are listed per example only; the metrics are counts per member and label type.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_doccano import ner_corpus, u16

from annobridge.model import LabelSchema, TaskKind

pytestmark = pytest.mark.server


def test_no_listing_tells_which_examples_labels_changed(make_adapter: Any, annotators: list[Any]) -> None:
    adapter = make_adapter(collaborative="true")
    docs, preds, labels = ner_corpus(8)
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    ids = adapter.import_documents(docs, predictions=preds).native_ids
    pid, (ann1, _ann2) = adapter.project_id, annotators
    path = f"/v1/projects/{pid}/examples"

    def listing(**params: Any) -> list[int]:
        return [int(e["id"]) for e in ann1.call("GET", path, params={"limit": 100, **params})["results"]]

    by_update = listing(ordering="-updated_at")
    everything = listing()
    target = docs[5]
    taken = {i for span in preds[target.id].spans for i in range(span.start, span.end)}
    free = next(i for i, ch in enumerate(target.text) if i not in taken and not ch.isspace())
    stamp = ann1.add_span(pid, ids[target.id], *u16(target.text, free, free + 1), labels[0])["created_at"]

    # a new label does not move its example's updated_at: the order by it is what it was
    assert listing(ordering="-updated_at") == by_update
    # range lookups on the timestamps are not filters doccano knows: silently ignored, everything comes back
    for lookup in ("updated_at__gte", "updated_at__gt", "created_at__gte"):
        assert sorted(listing(**{lookup: stamp})) == sorted(everything), lookup
    # the label filter matches a label name whoever made it and whenever: every example carrying it, once per label
    with_label = listing(label=labels[0])
    assert ids[target.id] in with_label and set(with_label) - {ids[target.id]} <= set(everything)
    # the example's own fields carry no label count or timestamp to compare
    detail = ann1.call("GET", f"{path}/{ids[target.id]}")
    assert not {"updated_at", "created_at", "spans", "labels"} & set(detail)
    # the cheap counters see that something changed, not where
    counts = ann1.call("GET", f"/v1/projects/{pid}/metrics/span-distribution")
    assert counts["annotator1"][labels[0]] >= 1
    assert all(isinstance(n, int) for per_label in counts.values() for n in per_label.values())
