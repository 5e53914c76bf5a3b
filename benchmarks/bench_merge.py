"""Merging categories: ``--merge dawid-skene`` against ``--merge majority`` on simulated annotators.

    python benchmarks/bench_merge.py                  # 5 seeds per setting, 2,000 items
    python benchmarks/bench_merge.py --seeds 3 --items 1000 --no-write

Each simulated annotator answers the true class with their accuracy, else one of the other classes uniformly
(the spammer: uniformly at random; the adversary: the wrong class of a binary question with probability 0.85).
Both policies run through annobridge's own merge (``merge_record``: a tie under majority drops the item, which
counts as wrong; ``Policy("dawid-skene", model)`` with the model fitted over the whole simulated pull by
``fit_category_model``). Majority is also shown with ties broken at random (the best a plain vote can do),
and the fitted annotator accuracies against the realised ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from annobridge.dawid_skene import fit_category_model  # noqa: E402
from annobridge.merge import Merged, Policy, merge_record  # noqa: E402
from annobridge.model import Annotation, Document, Record  # noqa: E402

SETTINGS: list[tuple[str, int, tuple[float, ...]]] = [
    # name, classes, accuracies (-1: a spammer answering at random)
    ("5 annotators 0.9/0.8/0.65/0.55/0.5, 2 classes", 2, (0.9, 0.8, 0.65, 0.55, 0.5)),
    ("5 annotators 0.9/0.8/0.65/0.55/0.5, 3 classes", 3, (0.9, 0.8, 0.65, 0.55, 0.5)),
    ("5 annotators 0.9/0.8/0.65/0.55/0.5, 5 classes", 5, (0.9, 0.8, 0.65, 0.55, 0.5)),
    ("4 annotators 0.8/0.7/0.65/0.6 + 1 spammer (random), 3 classes", 3, (0.8, 0.7, 0.65, 0.6, -1.0)),
    ("4 annotators 0.8/0.7/0.65/0.6 + 1 adversary (0.15), 2 classes", 2, (0.8, 0.7, 0.65, 0.6, 0.15)),
]


def simulate(
    n_items: int, n_classes: int, accuracies: Sequence[float], seed: int
) -> tuple[list[Record], list[str], list[float]]:
    """Records (one manual textcat answer per annotator), the true labels, each annotator's realised accuracy.

    An accuracy of -1 is a spammer: a uniformly random class.
    """
    rng = np.random.default_rng(seed)
    classes = [f"C{k}" for k in range(n_classes)]
    truth = rng.integers(0, n_classes, n_items)
    right = [0] * len(accuracies)
    records = []
    for i in range(n_items):
        anns = []
        t = int(truth[i])
        for j, acc in enumerate(accuracies):
            if acc < 0:
                k = int(rng.integers(0, n_classes))
            elif rng.random() < acc:
                k = t
            else:
                k = int((t + rng.integers(1, n_classes)) % n_classes)
            right[j] += k == t
            anns.append(Annotation(f"ann{j}", categories={c: float(c == classes[k]) for c in classes}))
        records.append(Record(Document.create(f"item {i}", id=f"i{i}"), anns))
    return records, [classes[int(t)] for t in truth], [r / n_items for r in right]


def merged_accuracy(records: list[Record], truth: list[str], policy: Policy | str) -> tuple[float, float]:
    """(share right, share dropped as a tie)."""
    right = dropped = 0
    for record, true in zip(records, truth, strict=True):
        merged = merge_record(record, policy, task="textcat")
        if not isinstance(merged, Merged) or not merged.categories:
            dropped += 1
        elif merged.categories.get(true) == 1.0:
            right += 1
    return right / len(records), dropped / len(records)


def random_tiebreak_accuracy(records: list[Record], truth: list[str], seed: int) -> float:
    rng = np.random.default_rng(seed + 10_000)
    right = 0
    for record, true in zip(records, truth, strict=True):
        counts: dict[str, int] = {}
        for ann in record.annotations:
            label = next(c for c, v in ann.categories.items() if v == 1.0)
            counts[label] = counts.get(label, 0) + 1
        top = max(counts.values())
        best = sorted(c for c, n in counts.items() if n == top)
        right += best[int(rng.integers(0, len(best)))] == true
    return right / len(records)


def fmt(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    rows = []
    recovery = []
    fit_seconds: list[float] = []
    for name, n_classes, accuracies in SETTINGS:
        maj, maj_ties, maj_random, ds, errors = [], [], [], [], []
        iterations = []
        for seed in range(args.seeds):
            records, truth, realised = simulate(args.items, n_classes, accuracies, seed)
            start = time.perf_counter()
            model = fit_category_model(records, "textcat", [f"C{k}" for k in range(n_classes)])
            fit_seconds.append(time.perf_counter() - start)
            iterations.append(model.models[""].iterations)
            estimated = model.accuracies()
            errors.append(max(abs(estimated[f"ann{j}"] - realised[j]) for j in range(len(accuracies))))
            acc, ties = merged_accuracy(records, truth, "majority")
            maj.append(acc)
            maj_ties.append(ties)
            maj_random.append(random_tiebreak_accuracy(records, truth, seed))
            ds.append(merged_accuracy(records, truth, Policy("dawid-skene", model))[0])
        gain = [d - m for d, m in zip(ds, maj_random, strict=True)]
        rows.append((name, fmt(maj), fmt(maj_ties), fmt(maj_random), fmt(ds), fmt(gain)))
        recovery.append((name, fmt(errors), f"{min(iterations)}–{max(iterations)}"))
        print(f"{name}: majority {fmt(maj)} (ties {fmt(maj_ties)}), random tie-break {fmt(maj_random)}, "
              f"dawid-skene {fmt(ds)}; accuracy-recovery max error {fmt(errors)}", flush=True)

    lines = [
        "## Merging categories: dawid-skene vs majority (`benchmarks/bench_merge.py`)",
        "",
        f"Simulated annotators of known accuracy, {args.items:,} items, {args.seeds} seeds per setting (mean ± sd "
        "over seeds); every annotator answers every item, a wrong answer is one of the other classes at random. "
        "Both policies run through annobridge's own merge: `majority` drops a tie (counted as wrong here; the "
        "share dropped is shown), `dawid-skene` is fitted over the whole pull first. *Random tie-break* is a plain "
        "vote that guesses among tied classes: the best a vote can do. Accuracy is against the true labels.",
        "",
        "| setting | majority | majority: ties dropped | majority, random tie-break | dawid-skene | "
        "dawid-skene − random tie-break |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        "How well the fit recovers each annotator's accuracy (largest |estimated − realised| over the annotators of "
        "a run) and how many EM iterations it took (stopping when no posterior moves by 1e-5):",
        "",
        "| setting | max accuracy error | EM iterations |",
        "|---|---:|---:|",
        *(f"| {' | '.join(row)} |" for row in recovery),
        "",
        f"Fitting {args.items:,} items x 5 annotators takes {statistics.median(fit_seconds) * 1000:.0f} ms (median, "
        "numpy).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        print(f"written: {write_section('merge', markdown)}")


if __name__ == "__main__":
    main()
