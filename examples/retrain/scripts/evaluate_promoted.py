"""``spacy evaluate`` of the promoted model on the current test split, when there is a promoted model.

    python scripts/evaluate_promoted.py models/promoted corpus/test --output metrics/promoted.json

The same evaluation as ``python -m spacy evaluate MODEL DATA --output FILE`` (spaCy's own function, run in this
process), so the new and the promoted model are scored on exactly the same documents. An earlier run's
output is removed first; with no promoted model yet (the first run) nothing is written, and promote.py
promotes the new model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from promote import recover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="spacy evaluate the promoted model, if there is one.")
    parser.add_argument("model", type=Path, help="the promoted model folder")
    parser.add_argument("data", type=Path, help="the test split (a .spacy file or a folder of them)")
    parser.add_argument("--output", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)
    args.output.unlink(missing_ok=True)
    recover(args.model)
    if not (args.model / "config.cfg").is_file():
        print(f"no promoted model at {args.model} yet: nothing to compare with")
        return 0
    from spacy.cli.evaluate import evaluate

    args.output.parent.mkdir(parents=True, exist_ok=True)
    evaluate(str(args.model), args.data, output=args.output, silent=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
