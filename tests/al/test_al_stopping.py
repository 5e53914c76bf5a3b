"""The stopping signal: kappa / agreement on constructed predictions, the items per task, the rule,
and `al simulate` / `al run` stopping by themselves before the budget is spent."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import spacy
from al_helpers import annotate_jsonl, write_documents, write_records
from sklearn.metrics import cohen_kappa_score
from spacy.tokens import Doc
from typer.testing import CliRunner

from annobridge.al.stopping import (
    StabilityPoint,
    StoppingRule,
    agreement,
    cohen_kappa,
    dev_slope,
    prediction_items,
    reservoir_sample,
    stability,
)
from annobridge.al_cli import app
from annobridge.errors import UsageError
from annobridge.model import Document, Prediction, Record, Span, TaskKind


def test_kappa_and_agreement_by_hand() -> None:
    a, b = ["A", "A", "B", "B"], ["A", "B", "B", "B"]
    # p_o = 3/4; p_e = (2*1 + 2*3) / 16 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2)
    assert agreement(a, b) == 0.75 and cohen_kappa(a, b) == pytest.approx(0.5)
    assert cohen_kappa(a, a) == 1.0
    # Opposite decisions on a balanced set: worse than chance.
    assert cohen_kappa(["x", "y"], ["y", "x"]) == pytest.approx(-1.0)
    # One rater constant, the other not: kappa 0 despite 90% raw agreement.
    assert agreement(["O"] * 10, ["O"] * 9 + ["B-X"]) == 0.9 and cohen_kappa(["O"] * 10, ["O"] * 9 + ["B-X"]) == 0.0
    # Both constant on the same label: undefined, never "stable".
    assert math.isnan(cohen_kappa(["ham"] * 5, ["ham"] * 5))
    assert stability(["ham"] * 5, ["ham"] * 5, 1).kappa is None
    with pytest.raises(ValueError, match="stop set changed"):
        agreement(["a"], ["a", "b"])


def test_kappa_matches_sklearn() -> None:
    import random

    rng = random.Random(5)
    for _ in range(5):
        a = [rng.choice("ABC") for _ in range(200)]
        b = [x if rng.random() < 0.8 else rng.choice("ABC") for x in a]
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_dev_slope_and_stability_point() -> None:
    assert dev_slope([10, 30], [0.5, 0.6]) == pytest.approx(0.5)  # +0.1 over 20 labels = +0.5 / 100
    assert dev_slope([10], [0.5]) is None and dev_slope([10, 20], [None, 0.6]) is None
    first = stability(None, ["a", "b"], 0)
    assert first.kappa is None and first.agreement is None and first.items == 2
    point = stability(["a", "b", "b", "a"], ["a", "b", "a", "a"], 3, slope=0.25)
    assert point.agreement == 0.75 and point.kappa == pytest.approx(0.5) and point.dev_slope == 0.25


def test_rule_needs_k_consecutive_rounds() -> None:
    kappas = [None, 0.95, 0.995, 0.991, 0.98, 0.999, 0.992, 0.996]
    agreements = [None, 0.96, 1.0, 0.99, 0.99, 1.0, 0.998, 1.0]
    history = [StabilityPoint(i, k, a, 10) for i, (k, a) in enumerate(zip(kappas, agreements, strict=True))]
    assert StoppingRule().fires_at(history) == 7  # 0.999, 0.992, 0.996: the first run of three
    assert StoppingRule(rounds=2).fires_at(history) == 3
    assert StoppingRule(threshold=0.999, rounds=1).fires_at(history) == 5
    assert StoppingRule(threshold=0.9999).fires_at(history) is None
    assert StoppingRule(metric="agreement", threshold=0.995, rounds=2).fires_at(history) == 6
    assert StoppingRule(metric="agreement", threshold=0.99, rounds=2).fires_at(history) == 3
    assert not StoppingRule().fires(history[:7]) and StoppingRule().fires(history)
    assert StoppingRule().describe() == "kappa >= 0.99 in 3 consecutive round(s)"
    # With a slope condition: stable predictions are not enough while the dev score still climbs.
    sloped = [replace(p, dev_slope=s) for p, s in zip(history, [None, 5, 4, 3, 2, 1.0, 0.5, 0.4], strict=True)]
    assert StoppingRule(rounds=2, max_slope=0.5).fires_at(sloped) == 7  # mean of 0.5, 0.4
    assert StoppingRule(rounds=2, max_slope=0.75).fires_at(sloped) == 6  # mean of 1.0, 0.5
    assert StoppingRule(rounds=2, max_slope=0.1).fires_at(sloped) is None
    assert StoppingRule(rounds=2, max_slope=0.1).fires_at(history) == 3  # no dev slopes: not checked
    assert StoppingRule(max_slope=0.2).describe().endswith(", dev slope <= 0.2/100 labels")
    with pytest.raises(UsageError, match="stop metric"):
        StoppingRule(metric="f1")
    with pytest.raises(UsageError, match="threshold"):
        StoppingRule(threshold=1.5)


def test_reservoir_sample_is_bounded_and_seeded() -> None:
    docs = [Document(id=str(i), text=f"text {i}") for i in range(1000)] + [Document(id="empty", text="  ")]
    sample = reservoir_sample(iter(docs), 50, seed=1)
    assert len(sample) == 50 and len({d.id for d in sample}) == 50 and "empty" not in {d.id for d in sample}
    assert [d.id for d in sample] == [d.id for d in reservoir_sample(docs, 50, seed=1)]
    assert [d.id for d in sample] != [d.id for d in reservoir_sample(docs, 50, seed=2)]
    # Not just the head of the stream.
    assert max(int(d.id) for d in sample) > 500
    assert [d.id for d in reservoir_sample(docs[:3], 50)] == ["0", "1", "2"]


# -- the items compared, on constructed predictions -----------------------------------------


@dataclass
class _Batch:
    docs: list[Doc]
    preds: list[Prediction]

    def prediction(self, i: int, version: str) -> Prediction:
        return self.preds[i]


@dataclass
class _Learner:
    task: TaskKind
    labels: list[str]
    predictions: dict[str, Prediction] = field(default_factory=dict)

    def batches(self, documents: Sequence[Document], *, batch_size: int = 256) -> Iterator[_Batch]:
        nlp = spacy.blank("en")
        for start in range(0, len(documents), batch_size):
            chunk = documents[start : start + batch_size]
            yield _Batch([nlp.make_doc(d.text) for d in chunk], [self.predictions[d.id] for d in chunk])


def _items(task: str, labels: list[str], texts: list[str], preds: list[Prediction]) -> list[str]:
    documents = [Document(id=str(i), text=t) for i, t in enumerate(texts)]
    fake: Any = _Learner(TaskKind(task), labels, {str(i): p for i, p in enumerate(preds)})
    return prediction_items(fake, documents, batch_size=1)


def test_items_per_task() -> None:
    assert _items(
        "textcat",
        ["ham", "spam"],
        ["a b", "c d"],
        [Prediction("m", categories={"ham": 0.4, "spam": 0.6}), Prediction("m", categories={"ham": 0.5, "spam": 0.5})],
    ) == ["spam", "ham"]  # a tie goes to the first label
    assert _items(
        "textcat_multilabel", ["x", "y", "z"], ["a b"], [Prediction("m", categories={"x": 0.7, "y": 0.2, "z": 0.5})]
    ) == ["1", "0", "1"]
    text = "I love Acme Corp shoes"
    ents = Prediction("m", spans=[Span(7, 16, "ORG"), Span(17, 22, "PRODUCT")])
    assert _items("ner", ["ORG", "PRODUCT"], [text, "nothing here"], [ents, Prediction("m")]) == [
        "O", "O", "B-ORG", "I-ORG", "B-PRODUCT", "O", "O",
    ]  # fmt: skip
    spans = Prediction("m", spans=[Span(7, 16, "ORG"), Span(12, 22, "PRODUCT")])
    # token x label: ORG over tokens 2-3, PRODUCT over 3-4 (overlapping spans are fine for spancat)
    org, product = ["0", "0", "1", "1", "0"], ["0", "0", "0", "1", "1"]
    assert _items("spans", ["ORG", "PRODUCT"], [text], [spans]) == [*org, *product]


# -- simulate and the loop stopping by themselves ---------------------------------------------


def test_cli_simulate_stops_when_stable(tmp_path: Path, sms: list[Record]) -> None:
    data = write_records(tmp_path / "sms.jsonl", sms)
    out = tmp_path / "out"
    args = ["simulate", f"jsonl:{data}", "--task", "textcat", "--rounds", "12", "--batch", "15"]
    args += ["--dev-size", "150", "--width", "32", "--depth", "1", "--out", str(out), "--no-plot"]
    args += ["--stop-when", "stable", "--stop-threshold", "0.9", "--stop-rounds", "2", "--stop-sample", "200"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    budget = 15 * 13
    assert summary["budget"] == budget
    (stop,) = summary["stops"]
    assert stop["strategy"] == "entropy" and stop["labels"] < budget
    assert stop["saved"] == pytest.approx(1 - stop["labels"] / budget, abs=1e-6) and stop["saved"] > 0
    assert f"{stop['saved']:.1%} of the budget saved" in result.output
    rows = [line.split(",") for line in (out / "curve.csv").read_text().splitlines()]
    header, body = rows[0], rows[1:]
    assert len(body) == stop["round"] + 1  # the run ended where the rule fired
    kappas = [float(r[header.index("kappa")]) if r[header.index("kappa")] else None for r in body]
    assert kappas[0] is None and all(k is not None and k >= 0.9 for k in kappas[-2:])
    assert not all(k is not None and k >= 0.9 for k in kappas[-3:-1])  # it fired at the first chance
    assert "kappa" in result.output and "slope" in result.output


def test_cli_run_stops_when_stable_and_pushes_diverse_batches(tmp_path: Path, sms: list[Record]) -> None:
    pool = write_documents(tmp_path / "pool.jsonl", sms[:200])
    dev = write_records(tmp_path / "dev.jsonl", sms[400:])
    project = tmp_path / "project.jsonl"
    state = tmp_path / "st"
    args = ["run", f"jsonl:{project}", "--pool", str(pool), "--task", "textcat", "--dev", str(dev)]
    args += ["--batch", "10", "--rounds", "6", "--wait", "0", "--state", str(state), "--diversity", "kcenter"]
    args += ["--stop-when", "stable", "--stop-metric", "agreement", "--stop-threshold", "0.5", "--stop-rounds", "1"]
    args += ["--stop-sample", "60"]
    runner = CliRunner()
    outputs = []
    for _ in range(4):
        result = runner.invoke(app, args)
        outputs.append(result.output)
        if "Stopped after round" in result.output:
            break
        assert result.exit_code in (0, 3) and "Waiting for labels" in result.output, result.output
        annotate_jsonl(project, {r.id: r for r in sms[:200]})
    assert result.exit_code == 0, result.output
    # Round 0 has no previous model; round 1's model agrees with round 0's on over half the stop set.
    assert "Stopped after round 1" in result.output
    assert "20 labels of a 60-label budget (66.7% not needed)" in result.output
    assert any("kappa n/a (first model)" in o for o in outputs)
    saved = json.loads((state / "state.json").read_text())
    assert saved["stopped"]["round"] == 1 and saved["diversity"] == "kcenter" and len(saved["history"]) == 2
    first, second = saved["history"]
    assert first["agreement"] is None and second["agreement"] >= 0.5 and second["stop_items"] == 60
    # The recorded signal is the agreement of the two saved prediction sets on the stop set.
    preds = json.loads((state / "stop_predictions.json").read_text())
    assert preds["round"] == 1 and agreement(preds["previous"], preds["items"]) == pytest.approx(second["agreement"])
    assert len((state / "stop_set.jsonl").read_text().splitlines()) == 60
    # Round 1 was chosen by k-center (cold-start round 0 is random).
    records = [Record.from_dict(json.loads(line)) for line in project.read_text().splitlines()]
    tags = [r.document.meta["al"] for r in records]
    assert len(tags) == 20 and {t["strategy"] for t in tags if t["round"] == 1} == {"entropy+kcenter"}
    # A rerun stays stopped.
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "Stopped after round 1" in again.output
