"""A fifth adapter, ``memory:NAME``, written the way any third party would write one.

Records live in a process-wide dict keyed by NAME; useful in tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

import annobridge
from annobridge import Adapter, Answer, Capabilities, Document, ImportResult, LabelSchema, Prediction, Record

STORES: dict[str, dict[str, Record]] = {}


class MemoryAdapter(Adapter):
    scheme = "memory"
    description = "records kept in this Python process (example plugin)"
    url_example = "memory:scratch"
    # only what this adapter really does: the contract suite (annobridge.testing) checks each flag
    capabilities = Capabilities(
        create_project=True,
        import_documents=True,
        push_predictions=True,
        pull=True,
        per_annotator=True,
        prediction_scores=True,
    )

    @property
    def store(self) -> dict[str, Record]:
        return STORES.setdefault(self.url.path or "default", {})

    def ensure_project(self, schema: LabelSchema) -> dict[str, Record]:
        return self.store

    def write_documents(
        self, items: Iterator[tuple[Document, Prediction | None]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        # the core has already ensured the project, and refused duplicates and documents no tool can take
        result = ImportResult()
        for doc, prediction in items:
            if doc.id in self.store:
                result.existing += 1
                continue
            record = Record(doc)
            if prediction is not None:
                record.predictions.append(prediction)
            self.store[doc.id] = record
            result.created += 1
        return result

    def push_predictions(self, items: Iterable[tuple[Document, Prediction]]) -> ImportResult:
        result = ImportResult()
        for doc, prediction in items:
            record = self.store.get(doc.id)
            if record is None:
                record = self.store[doc.id] = Record(doc)
                result.created += 1
            else:
                result.existing += 1
            record.predictions.append(prediction)
        return result

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        for record in self.store.values():
            anns = [a for a in record.annotations if answers is None or a.answer in answers]
            yield Record(record.document, anns, list(record.predictions), dict(record.native_ids))


@annobridge.hookimpl
def register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    register(MemoryAdapter)
