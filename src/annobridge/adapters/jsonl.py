"""``jsonl:PATH`` - annobridge's own lossless interchange format, one Record per line."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import srsly

from ..adapter import Adapter, AdapterURL, Capabilities, ImportResult, as_datetime, filter_answers
from ..config import AdapterConfig
from ..hookspecs import hookimpl
from ..model import Answer, Document, LabelSchema, Prediction, Record


class JsonlAdapter(Adapter):
    scheme = "jsonl"
    description = "annobridge records, one JSON object per line (lossless)"
    url_example = "jsonl:records.jsonl"
    capabilities = Capabilities(
        create_project=True,
        import_documents=True,
        push_predictions=True,
        pull=True,
        pull_since=True,
        per_annotator=True,
        prediction_scores=True,
        overlapping_spans=True,
    )

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None) -> None:
        super().__init__(url, config)
        if not url.path:
            raise ValueError("jsonl: needs a file path, e.g. jsonl:records.jsonl")
        self.path = Path(url.path).expanduser()

    def ensure_project(self, schema: LabelSchema) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        return self.path

    def _existing_ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        ids: set[str] = set()
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        ids.add(str(json.loads(line)["id"]))
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue
        return ids

    def import_documents(
        self,
        documents: Iterable[Document],
        *,
        schema: LabelSchema | None = None,
        predictions: dict[str, Prediction] | None = None,
    ) -> ImportResult:
        result = ImportResult()
        seen = self._existing_ids()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for doc in documents:
                if doc.id in seen:
                    result.existing += 1
                    continue
                seen.add(doc.id)
                record = Record(doc)
                if predictions and doc.id in predictions:
                    record.predictions.append(predictions[doc.id])
                fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                result.created += 1
        return result

    def push_predictions(self, items: Iterable[tuple[Document, Prediction]]) -> ImportResult:
        pending: dict[str, tuple[Document, list[Prediction]]] = {}
        for doc, prediction in items:
            pending.setdefault(doc.id, (doc, []))[1].append(prediction)
        result = ImportResult()
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as out:
            if self.path.exists():
                with self.path.open(encoding="utf-8") as fh:
                    for line in fh:
                        if not line.strip():
                            continue
                        data = json.loads(line)
                        entry = pending.pop(str(data.get("id")), None)
                        if entry is not None:
                            record = Record.from_dict(data)
                            record.predictions.extend(entry[1])
                            data = record.to_dict()
                            result.existing += 1
                        out.write(json.dumps(data, ensure_ascii=False) + "\n")
            for doc, preds in pending.values():
                out.write(json.dumps(Record(doc, predictions=preds).to_dict(), ensure_ascii=False) + "\n")
                result.created += 1
        os.replace(tmp, self.path)
        return result

    def count(self) -> int | None:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        if not self.path.exists():
            raise FileNotFoundError(f"No such file: {self.path}")
        since_dt: datetime | None = as_datetime(since)
        latest = since_dt
        with self.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{self.path.name}:{lineno}"
                try:
                    record = Record.from_dict(_loads(line))
                except json.JSONDecodeError as exc:
                    self.skip(where, f"invalid JSON ({exc.msg})")
                    continue
                except (KeyError, TypeError, ValueError) as exc:
                    self.skip(where, f"not an annobridge record ({type(exc).__name__}: {exc})")
                    continue
                if since_dt is not None:
                    record.annotations = [
                        a for a in record.annotations if a.timestamp is not None and a.timestamp > since_dt
                    ]
                    if not record.annotations:
                        continue
                for ann in record.annotations:
                    if ann.timestamp is not None and (latest is None or ann.timestamp > latest):
                        latest = ann.timestamp
                yield filter_answers(record, answers)
        self.cursor = latest


def _loads(line: str) -> Any:
    """Parse with ujson (srsly) for speed; on failure re-parse with json for a readable error."""
    try:
        return srsly.json_loads(line)
    except ValueError:
        return json.loads(line)


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records as annobridge JSONL; returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count


@hookimpl
def register_adapters(register: Any) -> None:
    register(JsonlAdapter)
