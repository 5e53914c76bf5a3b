"""Pre-annotations from a spaCy pipeline: turn its output into :class:`Prediction` objects.

Scores come from where spaCy has them: ``doc.cats`` for text classifiers,
``doc.spans[key].attrs["scores"]`` for spancat. Greedy NER has no per-entity
probabilities, so its spans carry no score (see docs/active-learning.md for
beam NER and spancat, which do).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from spacy.language import Language

from .model import Document, Prediction, Span, TaskKind


def model_version(nlp: Language) -> str:
    meta = nlp.meta
    return f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}-{meta.get('version', '0.0.0')}"


def predict_documents(
    nlp: Language,
    documents: Iterable[Document],
    task: TaskKind | str,
    *,
    spans_key: str = "sc",
    batch_size: int = 256,
    version: str | None = None,
) -> Iterator[tuple[Document, Prediction]]:
    """Run ``nlp`` over documents (streaming, in batches) and yield one prediction per document."""
    task = TaskKind(task)
    version = version or model_version(nlp)
    pairs = ((doc.text, doc) for doc in documents)
    for spacy_doc, document in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
        prediction = Prediction(model_version=version)
        if task == TaskKind.NER:
            prediction.spans = [Span(ent.start_char, ent.end_char, ent.label_, text=ent.text) for ent in spacy_doc.ents]
        elif task == TaskKind.SPANS:
            group = spacy_doc.spans.get(spans_key, [])
            scores = list(group.attrs.get("scores", [])) if len(group) else []
            prediction.spans = [
                Span(
                    s.start_char, s.end_char, s.label_, score=float(scores[i]) if i < len(scores) else None, text=s.text
                )
                for i, s in enumerate(group)
            ]
            if scores:
                prediction.score = float(min(scores))
        else:
            prediction.categories = {label: float(value) for label, value in spacy_doc.cats.items()}
            if prediction.categories:
                prediction.score = max(prediction.categories.values())
        yield document, prediction
