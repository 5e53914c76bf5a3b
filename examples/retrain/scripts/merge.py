"""Merge the records of an incremental pull into the accumulated records file (annobridge JSONL).

    python scripts/merge.py state/pulled.jsonl state/records.jsonl --cursor state/cursor.txt

An incremental pull yields, per document, only the annotations that are new or changed since the cursor,
so a pulled record does not replace the accumulated one wholesale (that would drop every annotation it does
not repeat, e.g. another annotator's). Per document id:

- a new id is added;
- for a known id, each pulled annotation replaces the earlier version of *the same annotation* (the tool's
  annotation id: Label Studio's ``annotation_id``, Argilla's ``argilla_response_id``; doccano: the annotator's
  annotation of that example) or is added next to the others. Prodigy saves every answer as a row of its own,
  so a re-annotation is added, and the export's merge policy takes each annotator's latest answer as their
  vote (the earlier one is *superseded*, see docs/concepts.md); an answer pulled twice is kept once;
- annotations the tool reports deleted (``native_ids["deleted_annotation_ids"]``) are removed;
- when the document's text itself changed, its earlier annotations (offsets into the old text) are dropped.

The file is replaced atomically; then the pull's pending cursor (``CURSOR.next``, written by ``pull.py``)
becomes the saved cursor, so the cursor never runs ahead of the records.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from annobridge import Annotation, Record

#: native ids that name one annotation across its versions
ANNOTATION_ID_KEYS = ("annotation_id", "argilla_response_id")
DELETED = "deleted_annotation_ids"


def annotation_key(annotation: Annotation) -> tuple[str, ...]:
    """What identifies an annotation across pulls (a later version with the same key replaces it)."""
    native = annotation.native_ids
    for key in ANNOTATION_ID_KEYS:
        if native.get(key) is not None:
            return (key, str(native[key]))
    if "example" in native and "_input_hash" not in native:  # doccano: one annotation per user per example
        return ("example", str(native["example"]), annotation.annotator)
    # every answer its own annotation (Prodigy rows, files): only an identical one is the same
    return ("content", json.dumps(annotation.to_dict(), sort_keys=True, ensure_ascii=False))


def read_records(path: Path) -> Iterator[Record]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield Record.from_dict(json.loads(line))


def merge_record(old: Record, new: Record, counts: Counter[str]) -> Record:
    """``old`` updated with what an incremental pull brought for the same document."""
    deleted = {str(x) for x in new.native_ids.get(DELETED) or ()}
    kept: dict[tuple[str, ...], Annotation] = {}
    if new.text != old.text:
        counts["text changed (earlier annotations dropped)"] += 1
        counts["annotations removed"] += len(old.annotations)
    else:
        for annotation in old.annotations:
            if deleted & {str(annotation.native_ids.get(k)) for k in ANNOTATION_ID_KEYS}:
                counts["annotations removed"] += 1
                continue
            kept[annotation_key(annotation)] = annotation
    for annotation in new.annotations:
        key = annotation_key(annotation)
        before = kept.get(key)
        if before is None:
            counts["annotations added"] += 1
        elif before.to_dict() == annotation.to_dict():
            counts["annotations pulled again"] += 1
        else:
            counts["annotations replaced"] += 1
        kept[key] = annotation
    native = {**old.native_ids, **{k: v for k, v in new.native_ids.items() if k != DELETED}}
    return Record(new.document, list(kept.values()), new.predictions or old.predictions, native)


def merge(accumulated: Iterable[Record], pulled: Iterable[Record]) -> tuple[list[Record], Counter[str]]:
    """The accumulated records with the pulled ones merged in (new documents at the end)."""
    counts: Counter[str] = Counter()
    records: dict[str, Record] = {record.id: record for record in accumulated}
    for record in pulled:
        counts["records pulled"] += 1
        old = records.get(record.id)
        if old is None:
            record.native_ids.pop(DELETED, None)
            records[record.id] = record
            counts["documents added"] += 1
            counts["annotations added"] += len(record.annotations)
        else:
            records[record.id] = merge_record(old, record, counts)
            counts["documents updated"] += 1
    counts["documents"] = len(records)
    counts["annotations"] = sum(len(r.annotations) for r in records.values())
    return list(records.values()), counts


def write_atomically(path: Path, records: Iterable[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Merge an incremental pull into the accumulated records.")
    parser.add_argument("pulled", type=Path, help="what this pull wrote (annobridge pull -o)")
    parser.add_argument("records", type=Path, help="the accumulated records (annobridge JSONL, kept between runs)")
    parser.add_argument("--cursor", type=Path, required=True, help="the saved cursor; CURSOR.next becomes it")
    args = parser.parse_args(argv)
    records, counts = merge(read_records(args.records), read_records(args.pulled))
    write_atomically(args.records, records)
    waiting = args.cursor.with_name(args.cursor.name + ".next")
    if waiting.exists():
        os.replace(waiting, args.cursor)
    summary = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **counts}
    summary["cursor"] = args.cursor.read_text(encoding="utf-8").strip() if args.cursor.exists() else None
    with (args.records.parent / "merges.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(summary) + "\n")
    print(", ".join(f"{key}: {value}" for key, value in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
