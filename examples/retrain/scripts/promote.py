"""Promote the newly trained model only when it beats the promoted one on the same test split.

    python scripts/promote.py --new training/model-best --new-metrics metrics/new.json \\
        --promoted models/promoted --promoted-metrics metrics/promoted.json --metric ents_f \\
        --log models/promotions.jsonl --corpus corpus

Reads both ``spacy evaluate`` outputs (the new model's and the promoted model's, on the current export's test
split), decides, appends one JSON line with both scores to the log, and exits 0 whichever way it decided.
The first run (no promoted model yet) promotes. Otherwise the new model must be better by more than
``--min-gain`` (default 0: strictly better; a tie keeps the promoted model).

Promotion copies the new model into a hidden sibling of ``--promoted`` and renames it into place; the model it
replaces becomes ``previous/`` beside it (to roll back: rename it back). A reader never sees a half-copied
model; if a run dies between the two renames, the next run puts ``previous/`` back (see :func:`recover`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def previous_of(promoted: Path) -> Path:
    return promoted.with_name("previous")


def recover(promoted: Path) -> None:
    """Undo a promotion that stopped between its two renames (``promoted`` gone, ``previous`` there)."""
    previous = previous_of(promoted)
    if not promoted.exists() and previous.exists() and (previous / "promotion.json").exists():
        previous.rename(promoted)
        print(f"recovered {promoted} from {previous} (an earlier promotion did not finish)")


def score(metrics_file: Path, metric: str) -> float | None:
    """The metric from a ``spacy evaluate --output`` JSON (None when it has no such score)."""
    data = json.loads(metrics_file.read_text(encoding="utf-8"))
    value = data.get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def decide(new: float | None, promoted: float | None, *, has_promoted: bool, min_gain: float) -> tuple[bool, str]:
    """(promote?, why)."""
    if new is None:
        return False, "the new model has no score"
    if not has_promoted:
        return True, "no promoted model yet"
    if promoted is None:
        return True, "the promoted model has no score"
    if new > promoted + min_gain:
        return True, f"better by {new - promoted:.4f}"
    return False, "not better" if min_gain == 0 else f"not better by more than {min_gain}"


def swap_in(new_model: Path, promoted: Path, record: dict[str, Any]) -> None:
    """Copy ``new_model`` to ``promoted`` (whole or not at all); the replaced model becomes ``previous``."""
    incoming = promoted.with_name(f".{promoted.name}.incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    shutil.copytree(new_model, incoming)
    (incoming / "promotion.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    previous = previous_of(promoted)
    if promoted.exists():
        shutil.rmtree(previous, ignore_errors=True)
        promoted.rename(previous)
    incoming.rename(promoted)


def corpus_facts(corpus: Path | None) -> dict[str, Any]:
    if corpus is None or not (corpus / "report.json").is_file():
        return {}
    report = json.loads((corpus / "report.json").read_text(encoding="utf-8"))
    return {"records": report.get("records_exported"), "test_docs": (report.get("docs_per_split") or {}).get("test")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Promote the new model when it is better on the test split.")
    parser.add_argument("--new", type=Path, required=True, help="the model just trained")
    parser.add_argument("--new-metrics", type=Path, required=True, help="spacy evaluate --output of the new model")
    parser.add_argument("--promoted", type=Path, required=True, help="where the promoted model lives")
    parser.add_argument("--promoted-metrics", type=Path, required=True,
                        help="spacy evaluate --output of the promoted model on the same test split")
    parser.add_argument("--metric", default="ents_f", help="score to compare (a key of spacy evaluate's JSON)")
    parser.add_argument("--min-gain", type=float, default=0.0, help="promote only when better by more than this")
    parser.add_argument("--log", type=Path, required=True, help="promotion log (one JSON line per decision)")
    parser.add_argument("--corpus", type=Path, default=None, help="the export (its report.json is quoted in the log)")
    args = parser.parse_args(argv)

    recover(args.promoted)
    has_promoted = args.promoted.exists()
    if has_promoted and not args.promoted_metrics.is_file():
        print(f"{args.promoted} exists but {args.promoted_metrics} does not: evaluate it first", file=sys.stderr)
        return 2
    new = score(args.new_metrics, args.metric)
    old = score(args.promoted_metrics, args.metric) if has_promoted else None
    promote, why = decide(new, old, has_promoted=has_promoted, min_gain=args.min_gain)
    record: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "decision": "promoted" if promote else "kept",
        "reason": why,
        "metric": args.metric,
        "new": new,
        "promoted": old,
        "model": str(args.new),
        **corpus_facts(args.corpus),
    }
    if promote:
        swap_in(args.new, args.promoted, record)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    verdict = f"promoted to {args.promoted}" if promote else f"kept {args.promoted}"
    print(f"{args.metric}: new {shown(new)}, promoted {shown(old)}: {verdict} ({why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
