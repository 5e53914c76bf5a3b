"""Diverse batches vs plain uncertainty vs random, and the stopping signal against the dev curve.

    .venv/bin/python benchmarks/bench_al_diverse.py [--quick] [--workers 2] [--seeds 3]

Three public datasets (see examples/data/al/SOURCE.md and ../shared/data/MANIFEST.md):

* SMS spam (textcat; UCI SMS Spam Collection, examples/data/al/sms_spam.jsonl.gz)
* fashion brands (ner, beam_ner; explosion/projects, examples/data/al/fashion_brands.jsonl.gz)
* StackExchange cooking (textcat_multilabel, 11 labels; explosion/projects,
  ../shared/data/textcat_multilabel_cooking, CC BY-SA 4.0), texts cut to their first 400 characters

Strategies: ``entropy`` (plain top-k), ``entropy+kcenter``, ``entropy+badge`` (both over the 10 x batch
most uncertain), ``random``; every run also records the stopping signal on a fixed stop set of pool
documents. Where ``--stop-when stable`` would fire is read off the recorded signal with the same
:class:`~annobridge.al.stopping.StoppingRule` that ``al simulate`` applies (a run is the same up to the
round where it stops: the stop set does not influence training).

Writes its own section of docs/benchmarks.md (``active-learning-diverse``) and CSV + PNG files to
docs/active-learning/ (``diverse_*``, ``stopping.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = ROOT / "examples" / "data" / "al"
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "active-learning"

from _report import write_section  # noqa: E402

from annobridge.al import LearnerConfig  # noqa: E402
from annobridge.al.simulate import CurvePoint, SimulationResult, load_records, simulate  # noqa: E402
from annobridge.al.stopping import StabilityPoint, StoppingRule  # noqa: E402
from annobridge.model import Record  # noqa: E402

STRATEGIES = ["entropy", "entropy+kcenter", "entropy+badge", "random"]
RULES = [StoppingRule(), StoppingRule(threshold=0.95, rounds=2), StoppingRule(max_slope=0.02)]
STOP_SAMPLE = 300
POOL_SWEEP = [2, 4]


def cooking_records(path: Path, limit: int, seed: int) -> list[Record]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = random.Random(seed).sample(rows, min(limit, len(rows)))
    out = []
    for i, row in enumerate(rows):
        text = " ".join(row["text"].split())[:400]
        cats = {k: float(v) for k, v in row["cats"].items()}
        out.append(
            Record.from_dict(
                {"id": f"cook-{path.stem}-{i}", "text": text, "annotations": [{"annotator": "se", "categories": cats}]}
            )
        )
    return out


def datasets(quick: bool, shared: Path) -> dict[str, dict[str, Any]]:
    sms = list(load_records(DATA / "sms_spam.jsonl.gz"))
    random.Random(7).shuffle(sms)
    fashion = load_records(DATA / "fashion_brands.jsonl.gz")
    fb_train = [r for r in fashion if r.document.meta.get("split") == "train"]
    fb_eval = [r for r in fashion if r.document.meta.get("split") == "eval"]
    cook = shared / "textcat_multilabel_cooking"
    cook_labels = sorted(json.loads((cook / "cooking-train.jsonl").open().readline())["cats"])
    return {
        "sms": {
            "name": "SMS spam (textcat)",
            "task": "textcat",
            "records": sms[1000 : 1000 + (1000 if quick else 2500)],
            "dev": sms[:1000],
            "labels": ["ham", "spam"],
            "config": LearnerConfig(),
            "batch": 20,
            "rounds": 4 if quick else 9,
        },
        "fashion": {
            "name": "fashion brands (ner, beam_ner)",
            "task": "ner",
            "records": random.Random(8).sample(fb_train, 200 if quick else 400),
            "dev": random.Random(9).sample(fb_eval, 80 if quick else 150),
            "labels": ["FASHION_BRAND"],
            "config": LearnerConfig(width=48, depth=2),
            "batch": 20,
            "rounds": 3 if quick else 6,
        },
        "cooking": {
            "name": "cooking questions (textcat_multilabel, 11 labels)",
            "task": "textcat_multilabel",
            "records": cooking_records(cook / "cooking-train.jsonl", 600 if quick else 1500, 10),
            "dev": cooking_records(cook / "cooking-dev.jsonl", 300 if quick else 500, 11),
            "labels": cook_labels,
            "config": LearnerConfig(),
            "batch": 25,
            "rounds": 4 if quick else 9,
        },
    }


def _job(kind: str, spec: dict[str, Any], strategy: str, seed: int, full: float | None, dpool: int = 10) -> Any:
    """One simulation run (one strategy, one seed) in a worker process, or the full-data score."""
    if kind == "full":
        sim = simulate(
            spec["records"],
            dev=spec["dev"],
            task=spec["task"],
            labels=spec["labels"],
            strategies=["random"],
            rounds=0,
            batch=1,
            config=spec["config"],
        )
        return sim.full_score
    return simulate(
        spec["records"],
        dev=spec["dev"],
        task=spec["task"],
        labels=spec["labels"],
        strategies=[strategy],
        rounds=spec["rounds"],
        batch=spec["batch"],
        seeds=[seed],
        config=spec["config"],
        full_score=full,
        stability_sample=STOP_SAMPLE,
        diversity_pool=dpool,
    )


def merge(results: list[SimulationResult], full: float) -> SimulationResult:
    merged = replace(results[0], points=[], full_score=full)
    for r in results:
        merged.points.extend(r.points)
    return merged


def signal(curve: list[CurvePoint]) -> list[StabilityPoint]:
    return [StabilityPoint(p.round, p.kappa, p.agreement, STOP_SAMPLE, p.dev_slope) for p in curve]


def stop_rows(key: str, spec: dict[str, Any], result: SimulationResult, seeds: list[int]) -> list[str]:
    budget = result.budget
    rows = []
    for rule in RULES:
        fired = []
        for seed in seeds:
            curve = result.curve("entropy", seed)
            at = rule.fires_at(signal(curve))
            fired.append((seed, at, curve))
        labels = [curve[at].labels for _, at, curve in fired if at is not None]
        saved = [1 - n / budget for n in labels]
        at_stop = [curve[at].score for _, at, curve in fired if at is not None]
        final = [curve[at].score - curve[-1].score for _, at, curve in fired if at is not None]
        n = len(labels)
        if n:
            rows.append(
                f"| {spec['name']} | {rule.describe()} | {n}/{len(seeds)} | {statistics.fmean(labels):.0f} of {budget} "
                f"| {statistics.fmean(saved):.1%} ± {_sd(saved):.1%} | {statistics.fmean(at_stop):.3f} "
                f"| {statistics.fmean(final):+.3f} |"
            )
        else:
            rows.append(f"| {spec['name']} | {rule.describe()} | 0/{len(seeds)} | never fired | – | – | – |")
    return rows


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def plot_stopping(merged: dict[str, SimulationResult], specs: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(merged), figsize=(5.0 * len(merged), 3.8))
    for ax, (key, result) in zip(axes, merged.items(), strict=True):
        curve = result.curve("entropy", 0)
        xs = [p.labels for p in curve]
        ax.plot(xs, [p.score for p in curve], marker="o", ms=3, color="tab:blue", label="dev score (entropy, seed 0)")
        ax.axhline(result.full_score, color="grey", lw=0.8, ls="--", label="full data")
        ax.set_xlabel("labelled documents")
        ax.set_ylabel("dev score", color="tab:blue")
        twin = ax.twinx()
        kx = [p.labels for p in curve if p.kappa is not None]
        twin.plot(kx, [p.kappa for p in curve if p.kappa is not None], marker="s", ms=3, color="tab:red", label="kappa")
        twin.set_ylim(min([0.0] + [p.kappa for p in curve if p.kappa is not None]), 1.02)
        twin.axhline(0.99, color="tab:red", lw=0.6, ls=":")
        twin.set_ylabel("kappa vs previous round (stop set)", color="tab:red")
        for rule, style in zip(RULES, ("-", "--", "-."), strict=True):
            at = rule.fires_at(signal(curve))
            if at is not None:
                ax.axvline(curve[at].labels, color="black", lw=1, ls=style, label=f"stop: {rule.describe()}")
        ax.set_title(specs[key]["name"], fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller pools, fewer rounds, 2 seeds; writes nothing")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (cooking questions)")
    args = parser.parse_args()
    seeds = list(range(2 if args.quick else args.seeds))
    t_start = time.perf_counter()
    specs = datasets(args.quick, args.shared)
    # --quick is a smoke run: its files go to a temporary folder, the docs are left alone.
    out = Path(tempfile.mkdtemp(prefix="bench_al_diverse-")) if args.quick else OUT
    out.mkdir(parents=True, exist_ok=True)

    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        full_f = {k: pool.submit(_job, "full", s, "", 0, None) for k, s in specs.items()}
        full = {k: f.result() for k, f in full_f.items()}
        print("full", full, flush=True)
        # The slow NER runs first, so the workers finish together.
        order = sorted(specs, key=lambda k: specs[k]["task"] != "ner")
        runs: dict[tuple[str, str, int], Future[Any]] = {
            (k, st, seed): pool.submit(_job, "sim", specs[k], st, seed, full[k])
            for k in order
            for st in STRATEGIES
            for seed in seeds
        }
        # The candidate set's size (diversity_pool x batch) on SMS spam, the dataset where it matters most.
        sweep: dict[tuple[int, str, int], Future[Any]] = {
            (dp, st, seed): pool.submit(_job, "sim", specs["sms"], st, seed, full["sms"], dp)
            for dp in POOL_SWEEP
            for st in STRATEGIES
            if "+" in st
            for seed in seeds
        }
        results: dict[str, list[SimulationResult]] = {k: [] for k in specs}
        for (k, st, seed), f in runs.items():
            results[k].append(f.result())
            print(f"done {k} {st} seed {seed} ({time.perf_counter() - t_start:.0f} s)", flush=True)
        swept: dict[int, list[SimulationResult]] = {dp: [] for dp in POOL_SWEEP}
        for (dp, _st, _seed), f in sweep.items():
            swept[dp].append(f.result())

    merged = {k: merge(results[k], full[k]) for k in specs}
    lines = [
        "## Active learning: diverse batches and the stopping signal (`bench_al_diverse.py`)",
        "",
        "Simulated active learning (gold labels answer), warm start, a random cold-start batch, then rounds of "
        "score -> select -> fit -> evaluate on a fixed dev set. `entropy` takes the top-k most uncertain "
        "(near-duplicates removed); `entropy+kcenter` / `entropy+badge` choose the batch among the 10 x batch most "
        "uncertain by uncertainty-weighted k-center greedy / BADGE-style k-means++ seeding over the model's own "
        "document vectors (mean-pooled tok2vec for ner; the BOW model's hashed n-gram features for textcat). "
        "**AUC** = area under the learning curve / its width; **share to 95%** = share of the pool labelled when "
        "the dev score first reached 95% of the full-data score. "
        f"Seeds: {len(seeds)} (mean ± sample sd). Stop set: {STOP_SAMPLE} pool documents.",
        "",
    ]
    verdicts = []
    for k, spec in specs.items():
        result = merged[k]
        result.write_csv(out / f"diverse_{k}.csv")
        result.plot(out / f"diverse_{k}.png")
        lines += [
            f"### {spec['name']}",
            "",
            f"Pool {result.pool_size}, dev {result.dev_size}, batch {spec['batch']}, {spec['rounds']} rounds after "
            f"the cold start (budget {result.budget} labels = {result.budget / result.pool_size:.1%} of the pool). "
            f"Full-data score: **{result.full_score:.3f}**.",
            "",
            result.to_markdown(),
            "",
            f"![learning curves](active-learning/diverse_{k}.png)",
            "",
        ]
        sums = {s.strategy: s for s in result.summaries()}
        for name in [st for st in STRATEGIES if "+" in st]:
            gap = sums[name].auc_mean - sums["entropy"].auc_mean
            spread = max(sums[name].auc_std, sums["entropy"].auc_std)
            verdict = "better" if gap > spread else ("worse" if -gap > spread else "no difference beyond the seed sd")
            verdicts.append(
                f"- {spec['name']}: {name} AUC − entropy AUC = {gap:+.3f} (largest seed sd {spread:.3f}): **{verdict}**"
            )
    lines += ["### Diverse vs plain uncertainty", "", *verdicts, ""]
    lines += [
        "### SMS spam: the size of the candidate set",
        "",
        "The diverse batch is chosen among the `diversity_pool × batch` most uncertain documents (default 10). "
        "Same runs as above with smaller candidate sets:",
        "",
        "| diversity_pool | strategy | AUC (mean ± sd) | share to 95% | final score |",
        "|---|---|---|---|---|",
    ]
    sms_sums = {s.strategy: s for s in merged["sms"].summaries()}
    for dp in [*POOL_SWEEP, 10]:
        sums_dp = sms_sums if dp == 10 else {s.strategy: s for s in merge(swept[dp], full["sms"]).summaries()}
        for st in [st for st in STRATEGIES if "+" in st]:
            sm = sums_dp[st]
            share = f"{sm.share95_mean:.1%} ({sm.reached95}/{sm.seeds})"
            if math.isnan(sm.share95_mean):
                share = "not reached"
            lines.append(
                f"| {dp} | {st} | {sm.auc_mean:.3f} ± {sm.auc_std:.3f} | {share} | "
                f"{sm.final_mean:.3f} ± {sm.final_std:.3f} |"
            )
    lines.append(
        f"| – | entropy (top-k) | {sms_sums['entropy'].auc_mean:.3f} ± {sms_sums['entropy'].auc_std:.3f} | – | "
        f"{sms_sums['entropy'].final_mean:.3f} ± {sms_sums['entropy'].final_std:.3f} |"
    )
    lines.append("")
    lines += [
        "### The stopping signal (entropy runs)",
        "",
        "Per round: Cohen's kappa between this and the previous round's model's predictions on the stop set. "
        "`--stop-when stable` stops once kappa >= threshold in k consecutive rounds. *Saved* = the share of the "
        "labelling budget not spent; *score at stop − score at budget*: what stopping there cost on the dev set "
        "(negative = lower than if the budget had been spent).",
        "",
        "| dataset | rule | runs where it fired | labels at stop | labels saved | dev score at stop "
        "| score at stop − score at budget |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, spec in specs.items():
        lines += stop_rows(k, spec, merged[k], seeds)
    plot_stopping(merged, specs, out / "stopping.png")
    lines += [
        "",
        "![stopping signal against the dev curve](active-learning/stopping.png)",
        "",
        f"Benchmark wall time {time.perf_counter() - t_start:.0f} s ({args.workers} worker processes"
        f"{', --quick' if args.quick else ''}; 15-minute load average at the end {os.getloadavg()[2]:.1f}).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.quick:
        write_section("active-learning-diverse", markdown)
    for k, result in merged.items():
        for s in result.summaries():
            if math.isnan(s.auc_mean):
                print(f"warning: {k} {s.strategy} has no curve", file=sys.stderr)


if __name__ == "__main__":
    main()
