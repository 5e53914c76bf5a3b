"""Emoji: Argilla counts code points; a JavaScript front end counts UTF-16 units. Both are handled."""

from __future__ import annotations

from typing import Any

import pytest

from annobridge.model import Document, LabelSchema, Prediction, Span, TaskKind
from annobridge.offsets import codepoint_to_utf16
from annobridge_argilla import read_offsets

TEXTS = {
    "rocket": "Some text yeah 🚀 rocket",  # the example from the notes: "rocket" is (17, 23) in code points
    "two": "🔥🔥 Nike and Adidas 👟 drop new Yeezy today",
    "flag": "Zara 🇪🇸 vs Uniqlo 🇯🇵 basics",  # flags are two astral code points each
    "plain": "No emoji here, only Gucci.",
}
SPANS = {
    "rocket": [("rocket", "PRODUCT")],
    "two": [("Nike", "FASHION_BRAND"), ("Adidas", "FASHION_BRAND"), ("Yeezy", "PRODUCT")],
    "flag": [("Zara", "FASHION_BRAND"), ("Uniqlo", "FASHION_BRAND")],
    "plain": [("Gucci", "FASHION_BRAND")],
}


def _spans(key: str) -> list[Span]:
    text = TEXTS[key]
    return [Span(text.index(word), text.index(word) + len(word), label) for word, label in SPANS[key]]


def test_offsets_are_read_by_the_kit() -> None:
    text = TEXTS["two"]
    nike = Span(text.index("Nike"), text.index("Nike") + 4, "B")
    assert read_offsets(text, [nike]) == [(Span(nike.start, nike.end, "B", text="Nike"), None)]
    as16 = Span(codepoint_to_utf16(text, nike.start), codepoint_to_utf16(text, nike.end), "B")
    ((fixed, note),) = read_offsets(text, [as16])
    assert (fixed.start, fixed.end, fixed.text, note) == (nike.start, nike.end, "Nike", "utf16 offsets converted")
    # out of range for code points, and no UTF-16 reading: left for the exporter to drop and report
    ((out, note),) = read_offsets(text, [Span(5, 500, "B")])
    assert out.text is None and note is not None and "outside" in note
    # only the code-point reading falls on word edges: nothing is moved
    assert read_offsets("🙂 ab cd", [Span(2, 4, "X")]) == [(Span(2, 4, "X", text="ab"), None)]
    # both readings fall on word edges and nothing else decides: code points, Argilla's own unit, win
    twice = "😀😀😀 ab ab"
    assert read_offsets(twice, [Span(7, 9, "X")]) == [(Span(7, 9, "X", text="ab"), None)]
    # no astral character: never converted
    assert read_offsets("abc def", [Span(1, 5, "X")]) == [(Span(1, 5, "X", text="bc d"), None)]


def test_emoji_texts_on_the_server(argilla_server: Any, open_adapter: Any, dataset_name: str) -> None:
    adapter = open_adapter(dataset_name)
    docs = [Document(key, text) for key, text in TEXTS.items()]
    preds = {key: Prediction("m", spans=[Span(s.start, s.end, s.label, score=0.8) for s in _spans(key)], score=0.8)
             for key in TEXTS}
    result = adapter.import_documents(docs, schema=LabelSchema(TaskKind.NER, ["FASHION_BRAND", "PRODUCT"]),
                                      predictions=preds)
    assert (result.created, result.failed) == (len(docs), [])  # code points are accepted as they are
    assert _spans("rocket")[0].key == (17, 23, "PRODUCT")

    ann1, ann2 = argilla_server.annotators
    for key in TEXTS:
        text = TEXTS[key]
        right = [{"start": s.start, "end": s.end, "label": s.label} for s in _spans(key)]
        utf16: list[dict[str, Any]] = [
            {"start": codepoint_to_utf16(text, s.start), "end": codepoint_to_utf16(text, s.end), "label": s.label}
            for s in _spans(key)
        ]
        with argilla_server.client(ann1.api_key) as api:
            api.post(f"/records/{result.native_ids[key]}/responses",
                     json={"status": "submitted", "values": {"entities": {"value": right}}}).raise_for_status()
        with argilla_server.client(ann2.api_key) as api:
            resp = api.post(f"/records/{result.native_ids[key]}/responses",
                            json={"status": "submitted", "values": {"entities": {"value": utf16}}})
            if max(s["end"] for s in utf16) > len(text):
                # the server rejects offsets past the end; inside the text they are accepted silently
                assert resp.status_code == 422 and "must have a value lower or equal" in resp.text
            else:
                assert resp.status_code == 201, resp.text

    records = {r.id: r for r in adapter.pull()}
    for key in TEXTS:
        expected = {s.key for s in _spans(key)}
        record = records[key]
        assert {s.key for s in record.predictions[0].spans} == expected
        for ann in record.annotations:
            assert {s.key for s in ann.spans} == expected, (key, ann.annotator)
            assert all(record.text[s.start:s.end] == s.text for s in ann.spans)
    assert {a.annotator for a in records["rocket"].annotations} == {"annotator1"}
    assert {a.annotator for a in records["two"].annotations} == {"annotator1", "annotator2"}
    repaired = {where.split("/")[1] for where, _ in adapter.repairs}
    assert repaired == {"two", "flag"}
    assert len(adapter.repairs) == len(SPANS["two"]) + len(SPANS["flag"]) - 1  # "Zara" precedes any emoji


@pytest.mark.parametrize("bad", [Span(3, 200, "FASHION_BRAND", text="Zara"), Span(0, 4, "FASHION_BRAND", text="Nope")])
def test_prediction_offsets_are_checked_before_sending(open_adapter: Any, dataset_name: str, bad: Span) -> None:
    adapter = open_adapter(dataset_name)
    doc = Document("d", "I like Zara 🙂 and Zara.")
    result = adapter.import_documents([doc], schema=LabelSchema(TaskKind.NER, ["FASHION_BRAND"]),
                                      predictions={"d": Prediction("m", spans=[bad])})
    assert result.created == 0
    ((doc_id, reason),) = result.failed
    assert doc_id == "d" and "prediction span" in reason
