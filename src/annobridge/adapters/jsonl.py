"""``jsonl:PATH`` - annobridge's own lossless interchange format, one Record per line."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..adapter import Adapter, AdapterURL, Capabilities, ImportResult, filter_answers, since_datetime
from ..atomic import atomic_open
from ..config import AdapterConfig
from ..errors import UsageError
from ..hookspecs import hookimpl
from ..jsonio import LONE_SURROGATE, BadLine, decode_line, has_lone_surrogate, open_binary, read_items, read_json_lines
from ..model import Annotation, Answer, Document, LabelSchema, Prediction, Record


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
        write_annotations=True,
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
        for _, data in read_json_lines(self.path):
            if not isinstance(data, BadLine) and "id" in data:
                ids.add(str(data["id"]))
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
        ends_open = self.path.exists() and _ends_without_newline(self.path)
        with self.path.open("a", encoding="utf-8") as fh:
            if ends_open:  # a last line cut short would swallow the first appended record
                fh.write("\n")
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
        pending: dict[str, tuple[Document, list[Prediction], list[Annotation]]] = {}
        for doc, prediction in items:
            pending.setdefault(doc.id, (doc, [], []))[1].append(prediction)
        result = ImportResult()
        for existed, _record, _counts in self._rewrite(pending):
            if existed:
                result.existing += 1
            else:
                result.created += 1
        return result

    def write_annotations(
        self, items: Iterable[tuple[Document, Annotation]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        pending: dict[str, tuple[Document, list[Prediction], list[Annotation]]] = {}
        for doc, annotation in items:
            pending.setdefault(doc.id, (doc, [], []))[2].append(annotation)
        result = ImportResult()
        for existed, _record, (created, existing) in self._rewrite(pending):
            result.created += created
            result.existing += existing
            result.documents_created += not existed
        return result

    def _rewrite(
        self, pending: dict[str, tuple[Document, list[Prediction], list[Annotation]]]
    ) -> list[tuple[bool, Record, tuple[int, int]]]:
        """Add predictions and annotations to their records, rewriting the file whole and atomically.

        Returns per touched record: whether it was in the file, the record, and (annotations added, annotations
        already there with the same content). A line that does not parse is kept byte for byte, not lost.
        """

        def add(record: Record, preds: list[Prediction], anns: list[Annotation]) -> tuple[int, int]:
            known = [p.to_dict() for p in record.predictions]
            for pred in preds:  # the same prediction pushed again (a re-run) is there once
                if pred.to_dict() not in known:
                    record.predictions.append(pred)
                    known.append(pred.to_dict())
            have = [a.to_dict() for a in record.annotations]
            added = 0
            for ann in anns:
                if ann.to_dict() not in have:
                    record.annotations.append(ann)
                    have.append(ann.to_dict())
                    added += 1
            return added, len(anns) - added

        touched: list[tuple[bool, Record, tuple[int, int]]] = []
        with atomic_open(self.path, "wb", encoding=None) as out:
            if self.path.exists():
                with open_binary(self.path) as fh:
                    for raw in fh:
                        line = raw.rstrip(b"\r\n")
                        if not line.strip():
                            continue
                        data = decode_line(line)
                        entry = None if isinstance(data, BadLine) else pending.pop(str(data.get("id")), None)
                        if entry is None:
                            out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                            continue
                        record = Record.from_dict(data)
                        counts = add(record, entry[1], entry[2])
                        out.write(_record_line(record))
                        touched.append((True, record, counts))
            for doc, preds, anns in pending.values():
                record = Record(doc)
                counts = add(record, preds, anns)
                out.write(_record_line(record))
                touched.append((False, record, counts))
        return touched

    def count(self) -> int | None:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())

    def _items(self) -> Iterator[tuple[str, Any]]:
        """JSON Lines; a ``.json`` file holding an array of records is read too (it is parsed whole)."""
        try:
            yield from read_items(self.path)
        except ValueError as exc:  # only a whole-file .json that does not parse: nothing in it is readable
            raise UsageError(str(exc)) from None

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        if not self.path.exists():
            raise FileNotFoundError(f"No such file: {self.path}")
        since_dt: datetime | None = since_datetime(since)
        latest = since_dt
        for where, data in self._items():
            if isinstance(data, BadLine):
                self.skip(where, data.reason)
                continue
            try:
                record = Record.from_dict(data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.skip(where, f"not an annobridge record ({type(exc).__name__}: {exc})")
                continue
            except RecursionError:
                self.skip(where, "not an annobridge record (nested too deeply)")
                continue
            if not isinstance(record.document.text, str):
                self.skip(where, "not an annobridge record (text is not a string)")
                continue
            if has_lone_surrogate(record.document.text) or has_lone_surrogate(record.id):
                self.skip(where, LONE_SURROGATE)
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


def _ends_without_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        if fh.seek(0, 2) == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) != b"\n"


def _record_line(record: Record) -> bytes:
    return (json.dumps(record.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records as annobridge JSONL (atomically: the file appears complete or not at all); returns how many."""
    count = 0
    with atomic_open(path, "w") as fh:
        for record in records:
            fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count


@hookimpl
def register_adapters(register: Any) -> None:
    register(JsonlAdapter)
