"""Simulation with gold labels as the oracle: curves, AUC, share to 95%, CSV + PNG, and the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from al_helpers import write_records
from typer.testing import CliRunner

from annobridge.al import LearnerConfig
from annobridge.al.simulate import CurvePoint, SimulationResult, area_under_curve, simulate
from annobridge.al_cli import app
from annobridge.errors import UsageError
from annobridge.model import Record

SMALL = LearnerConfig(width=32, depth=1, epochs=4, min_steps=20)


def test_area_under_curve() -> None:
    assert area_under_curve([10, 20, 30], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert area_under_curve([0, 10], [0.0, 1.0]) == pytest.approx(0.5)
    assert area_under_curve([10, 20, 40], [0.2, 0.4, 0.4]) == pytest.approx((0.3 * 10 + 0.4 * 20) / 30)
    assert area_under_curve([5], [0.7]) == 0.7
    assert math.isnan(area_under_curve([], []))


def test_share_to_95_and_summaries() -> None:
    pts = [
        CurvePoint("entropy", s, r, n, n / 100, sc, 0.0, 0.0)
        for s, curve in enumerate([[0.5, 0.96, 0.99], [0.5, 0.8, 0.97]])
        for r, (n, sc) in enumerate(zip([10, 20, 30], curve, strict=True))
    ] + [CurvePoint("random", 0, r, n, n / 100, 0.5, 0.0, 0.0) for r, n in enumerate([10, 20, 30])]
    result = SimulationResult("textcat", 100, 10, 10, 2, full_score=1.0, points=pts)
    entropy, rnd = result.summaries()
    assert entropy.share95_mean == pytest.approx(0.25) and entropy.reached95 == 2
    assert entropy.share95_std == pytest.approx(math.sqrt(0.005))
    assert math.isnan(rnd.share95_mean) and rnd.reached95 == 0
    assert "not reached" in result.to_markdown()


def test_simulate_textcat_writes_curves(tmp_path: Path, sms: list[Record]) -> None:
    result = simulate(
        sms,
        task="textcat",
        strategies=["entropy", "random"],
        rounds=2,
        batch=15,
        seeds=[0, 1],
        dev_size=150,
        config=SMALL,
    )
    # an all-ham guess scores a macro F of ~0.46
    assert result.pool_size == 350 and result.dev_size == 150 and result.full_score > 0.6
    assert len(result.points) == 2 * 2 * 3
    for strategy in ("entropy", "random"):
        for seed in (0, 1):
            curve = result.curve(strategy, seed)
            assert [p.labels for p in curve] == [15, 30, 45]
            assert all(0.0 <= p.score <= 1.0 for p in curve)
    # Round 0 is the same cold start (random, seeded) for every strategy.
    assert result.curve("entropy", 0)[0].score == result.curve("random", 0)[0].score
    csv_path = result.write_csv(tmp_path / "curve.csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 12 and set(rows[0]) >= {"strategy", "seed", "labels", "share", "score"}
    png = result.plot(tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_rejects_impossible_budgets(sms: list[Record]) -> None:
    with pytest.raises(UsageError, match="need 600 pool documents; the pool has 400"):
        simulate(sms, task="textcat", rounds=5, batch=100, dev_size=100, config=SMALL, full_score=1.0)
    with pytest.raises(UsageError, match="No record converts"):
        simulate(sms, task="textcat", labels=["a", "b"], rounds=1, batch=5, config=SMALL, full_score=1.0)


def test_cli_simulate(tmp_path: Path, fashion: list[Record]) -> None:
    data = write_records(tmp_path / "fashion.jsonl", fashion)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            f"jsonl:{data}",
            "--task",
            "ner",
            "--strategy",
            "entropy",
            "--vs",
            "random",
            "--rounds",
            "1",
            "--batch",
            "15",
            "--dev-size",
            "40",
            "--pool-size",
            "80",
            "--width",
            "32",
            "--depth",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| entropy | 1 |" in result.output and "| random | 1 |" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pool_size"] == 80 and summary["dev_size"] == 40
    assert [s["strategy"] for s in summary["summaries"]] == ["entropy", "random"]
    assert (out / "curve.png").stat().st_size > 1000
    assert len((out / "curve.csv").read_text().splitlines()) == 1 + 2 * 2
