from __future__ import annotations

import random

from annobridge.model import Annotation, Document, Record, Span

WORDS = ["Maria", "moved", "to", "Oslo", "with", "Acme", "and", "saw", "東京", "😀", "friends", "today"]
ENTITIES = {"Maria": "PERSON", "Oslo": "GPE", "Acme": "ORG", "東京": "GPE"}


def synthetic_records(n: int, seed: int = 0) -> list[Record]:
    """Small NER + textcat records whose spans are built from the text itself."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        text, spans = "", []
        for word in words:
            if text:
                text += " "
            start = len(text)
            text += word
            if word in ENTITIES:
                spans.append(Span(start, start + len(word), ENTITIES[word], text=word))
        cats = {"travel": 1.0 if "Oslo" in words else 0.0, "other": 0.0 if "Oslo" in words else 1.0}
        records.append(
            Record(
                Document.create(text, id=f"doc-{i}", meta={"group": f"g{i % 7}"}),
                [Annotation("alice", spans=spans, categories=cats)],
            )
        )
    return records
