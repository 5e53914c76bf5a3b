"""Bring your own pipeline: a pipeline trained the way users train one (``spacy train``) is fine-tuned, not reset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
import spacy
from al_helpers import gold_docs, write_records
from spacy.cli.init_config import init_config
from spacy.cli.train import train
from spacy.tokens import DocBin
from typer.testing import CliRunner

from annobridge.al import Learner
from annobridge.al.pipeline import is_initialized
from annobridge.al_cli import app
from annobridge.errors import UsageError
from annobridge.model import Record

LABELS = ["FASHION_BRAND"]


@pytest.fixture(scope="module")
def trained_ner(tmp_path_factory: pytest.TempPathFactory, fashion: list[Record]) -> Path:
    """``spacy init config --pipeline ner`` + ``spacy train``: a tok2vec component and a greedy ner listening to it."""
    work = tmp_path_factory.mktemp("spacy-train")
    docs = gold_docs(fashion[:180], "ner", LABELS)
    DocBin(docs=docs[:150]).to_disk(work / "train.spacy")
    DocBin(docs=docs[150:]).to_disk(work / "dev.spacy")
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency")
    config.to_disk(work / "config.cfg")
    train(
        work / "config.cfg",
        work / "out",
        overrides={
            "paths.train": str(work / "train.spacy"),
            "paths.dev": str(work / "dev.spacy"),
            "training.max_steps": 300,
            "training.eval_frequency": 300,
            "training.batcher.size.start": 100,
            "training.batcher.size.stop": 300,
            "system.seed": 0,
        },
    )
    return work / "out" / "model-last"


def _f1(learner: Learner, docs: list) -> float:  # type: ignore[type-arg]
    return learner.evaluate(docs)["score"]


def test_a_spacy_trained_ner_is_fine_tuned_not_reset(trained_ner: Path, fashion: list[Record]) -> None:
    assert spacy.load(trained_ner).get_pipe("ner").cfg["beam_width"] == 1  # spacy train's ner is greedy

    learner = Learner.from_pipeline(trained_ner, "ner", LABELS, warm_epochs=1, warm_min_steps=4)
    assert learner.component == "ner"
    assert learner.pipe.cfg["beam_width"] == learner.config.beam_width  # now decoded with a beam
    assert "tok2vec" in learner._trainable  # the ner listens to it: both are fine-tuned
    assert any("greedy" in n for n in learner.notes) and any("fine-tuning" in n for n in learner.notes)
    # The trained weights score the pool at once: no random cold start.
    assert learner.fitted
    pool = [r.document for r in fashion[180:]]
    scores = learner.score_pool(pool, "entropy", keep=5)
    assert not scores.cold_start and scores.strategy == "entropy"

    dev = gold_docs(fashion[180:], "ner", LABELS)
    before = _f1(learner, dev)
    assert before > 0.1, "the pretrained ner already finds brands"
    embed = learner.nlp.get_pipe("tok2vec").model.get_ref("embed")
    tables_before = [n.get_param("E").copy() for n in embed.walk() if n.has_param("E")]
    fit_docs = gold_docs(fashion[150:180], "ner", LABELS)
    learner.fit(fit_docs)
    after = _f1(learner, dev)
    fresh = Learner("ner", LABELS, warm_epochs=1, warm_min_steps=4)
    fresh.fit(fit_docs)
    # Reset weights fit on 30 documents for a few steps find next to nothing (measured: 0.06 vs 0.34).
    assert after > 0.5 * before
    assert after > _f1(fresh, dev) + 0.1
    tables_after = [n.get_param("E") for n in embed.walk() if n.has_param("E")]
    assert any(not numpy.array_equal(a, b) for a, b in zip(tables_before, tables_after, strict=True)), (
        "the listened-to tok2vec is fine-tuned too"
    )


def test_fine_tuned_pipeline_survives_save_and_load(trained_ner: Path, fashion: list[Record], tmp_path: Path) -> None:
    learner = Learner.from_pipeline(trained_ner, "ner", LABELS, warm_epochs=1, warm_min_steps=2)
    learner.fit(gold_docs(fashion[150:170], "ner", LABELS))
    learner.save(tmp_path / "model")
    again = Learner.load(tmp_path / "model")
    assert again.pipe.cfg["beam_width"] == learner.config.beam_width
    assert again.base_pipeline == str(trained_ner)
    pool = [r.document for r in fashion[180:210]]
    a = learner.score_pool(pool, "entropy", keep=10, with_predictions=False)
    b = again.score_pool(pool, "entropy", keep=10, with_predictions=False)
    assert [c.document.id for c in a.candidates] == [c.document.id for c in b.candidates]
    assert [c.score for c in a.candidates] == pytest.approx([c.score for c in b.candidates], abs=1e-5)


def test_retrain_returns_to_the_pretrained_weights(
    trained_ner: Path, fashion: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    learner = Learner.from_pipeline(trained_ner, "ner", LABELS, fit_mode="retrain", epochs=1, min_steps=2)
    base = learner.nlp.get_pipe("ner").to_bytes()
    at_start: list[bytes] = []
    update = learner.nlp.update

    def first_update(*args: object, **kwargs: object) -> object:
        if len(at_start) < learner.fits + 1:  # the weights each fit starts from
            at_start.append(learner.nlp.get_pipe("ner").to_bytes())
        return update(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(learner.nlp, "update", first_update)
    docs = gold_docs(fashion[150:170], "ner", LABELS)
    learner.fit(docs)
    assert learner.nlp.get_pipe("ner").to_bytes() != base  # it trained
    learner.fit(docs)
    assert at_start == [base, base]


def test_a_new_component_is_added_beside_the_trained_ones(trained_ner: Path, sms: list[Record]) -> None:
    nlp = spacy.load(trained_ner)
    rng = numpy.random.default_rng(0)
    for word in ("free", "call", "now", "win", "prize", "home", "later", "ok"):
        nlp.vocab.set_vector(word, rng.standard_normal(16).astype("float32"))
    ner_bytes = nlp.get_pipe("ner").to_bytes(exclude=["vocab"])
    learner = Learner.from_pipeline(nlp, "textcat", ["ham", "spam"])
    assert learner.component == "textcat" and learner.nlp.pipe_names[-1] == "textcat"
    assert "TextCatEnsemble" in learner.nlp.get_pipe_config("textcat")["model"]["@architectures"]
    assert any("16-d static vectors" in n for n in learner.notes)
    assert learner._upstream == [] and learner._trainable == {"textcat"}
    assert not learner.fitted
    learner.fit(gold_docs(sms[:120], "textcat", ["ham", "spam"]))
    assert is_initialized(learner.pipe)
    assert learner.nlp.get_pipe("ner").to_bytes(exclude=["vocab"]) == ner_bytes, "the trained ner is left as it was"
    assert learner.evaluate(gold_docs(sms[400:], "textcat", ["ham", "spam"]))["score"] > 0.7


def test_clear_errors(trained_ner: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="spacy download"):
        Learner.from_pipeline(tmp_path / "no-such-pipeline", "ner", LABELS)
    with pytest.raises(UsageError, match="'ner' component; task textcat needs"):
        Learner.from_pipeline(trained_ner, "textcat", ["a", "b"], component="ner")
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat").add_label("ham")  # type: ignore[attr-defined]
    nlp.get_pipe("textcat").add_label("spam")  # type: ignore[attr-defined]
    nlp.initialize()
    with pytest.raises(UsageError, match="keeps its label set"):
        Learner.from_pipeline(nlp, "textcat", ["ham", "spam", "eggs"])


def test_cli_simulate_from_a_pipeline(trained_ner: Path, fashion: list[Record], tmp_path: Path) -> None:
    data = write_records(tmp_path / "fashion.jsonl", fashion[150:])
    out = tmp_path / "out"
    args = ["simulate", f"jsonl:{data}", "--task", "ner", "--vs", "random", "--rounds", "1", "--batch", "10",
            "--dev-size", "40", "--pool-size", "40", "--pipeline", str(trained_ner), "--out", str(out), "--no-plot"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["full_score"] > 0.1  # the pretrained ner fine-tuned on the 40-document pool
    result = CliRunner().invoke(app, [*args[:-3], "--component", "tok2vec", "--out", str(out)])
    assert result.exit_code == 2 and "task ner needs" in result.output
