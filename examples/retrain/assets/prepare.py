"""Rebuild the two annotation rounds of the retraining example from the original Prodigy export.

    python examples/retrain/assets/prepare.py [examples/data/fashion_brands_training.jsonl]

Reads Prodigy ``ner_manual`` answers (explosion/projects' fashion brands data, see SOURCE.md) and writes

- ``round1.jsonl``: the answers the annotators give first (alice and bob share the documents);
- ``round2.jsonl``: later answers: new documents, plus alice's correction of one round-1 document
  (she re-opens it in ``ner_manual`` and adds the brand she missed: the same ``_input_hash`` and
  ``_task_hash``, as Prodigy saves a re-annotation of the same question, with different spans).

The tasks are kept as Prodigy saved them except for ``tokens`` (dropped to keep the files small: the spans
carry character offsets, and spaCy tokenizes again) and ``_annotator_id`` / ``_session_id``, which name the
annotator. ``_timestamp`` is added by ``scripts/annotate.py`` when a round is saved.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1] / "data" / "fashion_brands_training.jsonl"
DATASET = "fashion_brands"
#: the round-1 document alice corrects in round 2: she had missed "PINK" (Victoria's Secret's brand)
CORRECTED_TEXT_START = "Virginia: Carolina boots with shorts. Every girl wears PINK."
MISSED = "PINK"
ROUND1 = (110, 50)  # documents with spans, without
ROUND2 = (40, 15)


def _task(task: dict[str, Any], annotator: str) -> dict[str, Any]:
    out = {key: value for key, value in task.items() if key != "tokens"}
    out["_annotator_id"] = out["_session_id"] = f"{DATASET}-{annotator}"
    return out


def rounds(tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    corrected = next(t for t in tasks if t["text"].startswith(CORRECTED_TEXT_START))
    with_spans = [t for t in tasks if t.get("spans") and t is not corrected]
    without = [t for t in tasks if not t.get("spans")]
    rng = random.Random(12)
    rng.shuffle(with_spans)
    rng.shuffle(without)
    first = [corrected, *with_spans[: ROUND1[0] - 1], *without[: ROUND1[1]]]
    second = [*with_spans[ROUND1[0] - 1 : ROUND1[0] - 1 + ROUND2[0]], *without[ROUND1[1] : ROUND1[1] + ROUND2[1]]]
    rng.shuffle(first)
    rng.shuffle(second)
    round1 = [_task(t, "alice" if i % 2 == 0 else "bob") for i, t in enumerate(first)]
    round2 = [_task(t, "alice" if i % 2 == 0 else "bob") for i, t in enumerate(second)]

    fix = next(t for t in round1 if t["_input_hash"] == corrected["_input_hash"])
    fix = {**fix, "_annotator_id": f"{DATASET}-alice", "_session_id": f"{DATASET}-alice"}
    start = fix["text"].index(MISSED)
    spans = [*fix["spans"], {"start": start, "end": start + len(MISSED), "label": "FASHION_BRAND"}]
    fix["spans"] = sorted(spans, key=lambda s: s["start"])
    # alice annotated it in round 1 too: the correction supersedes her own earlier answer
    for task in round1:
        if task["_input_hash"] == corrected["_input_hash"]:
            task["_annotator_id"] = task["_session_id"] = f"{DATASET}-alice"
    round2.insert(len(round2) // 2, fix)
    return round1, round2


def write(path: Path, tasks: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks), encoding="utf-8")
    print(f"{path.name}: {len(tasks)} answers, {path.stat().st_size / 1024:.0f} KiB")


def main(source: Path) -> None:
    tasks = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    round1, round2 = rounds([t for t in tasks if t.get("answer") == "accept"])
    write(HERE / "round1.jsonl", round1)
    write(HERE / "round2.jsonl", round2)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
