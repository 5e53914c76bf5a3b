"""One real loop round against a real Label Studio server (annobridge_labelstudio.testserver).

The tasks pushed must be exactly the least certain documents of the pool, each carrying its
uncertainty as the prediction score; labels posted as the UI posts them come back and train the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from al_helpers import check_least_certain, gold_docs

from annobridge.adapter import AdapterURL
from annobridge.al import Learner
from annobridge.al.loop import ActiveLearningLoop
from annobridge.config import AdapterConfig
from annobridge.model import Record
from annobridge_labelstudio import LabelStudioAdapter
from annobridge_labelstudio.testserver import LabelStudioServer

LABELS = ["ham", "spam"]
SMALL = {"width": 32, "depth": 1, "epochs": 4, "min_steps": 20}


@pytest.fixture(scope="module")
def label_studio() -> Iterator[Any]:
    with LabelStudioServer() as server:
        yield server


@pytest.mark.server
def test_one_round_pushes_the_least_certain_with_scores(label_studio: Any, tmp_path: Path, sms: list[Record]) -> None:
    url = label_studio.adapter_url("new") + "?title=annobridge-al-round"
    adapter = LabelStudioAdapter(AdapterURL.parse(url), AdapterConfig({"api_key": label_studio.admin.token}, env={}))
    learner = Learner("textcat", LABELS, **SMALL)
    learner.fit(gold_docs(sms[:80], "textcat", LABELS))
    pool = sms[80:380]
    gold = {r.id: r for r in pool}
    loop = ActiveLearningLoop(
        adapter,
        learner,
        [r.document for r in pool],
        sms[400:],
        state_dir=tmp_path / "state",
        strategy="entropy",
        batch=10,
        poll_interval=0.5,
        wait_timeout=60,
    )

    scored = loop.step()
    assert scored.stage == "score" and not scored.detail["cold_start"]
    selected = loop.selected
    assert len(selected) == 10
    check_least_certain(learner, pool, set(), selected, "entropy")

    loop.step()  # push to Label Studio
    tasks = {r.id: r for r in adapter.pull()}
    assert set(tasks) == {item["id"] for item in selected}
    for item in selected:
        task = tasks[item["id"]]
        assert task.text == item["text"] and not task.annotations
        (prediction,) = task.predictions
        assert prediction.score == pytest.approx(item["score"], abs=1e-5)
        assert prediction.model_version == "annobridge-al-textcat-round0"
        assert prediction.categories and max(prediction.categories, key=prediction.categories.get) == max(
            item["prediction"]["categories"], key=item["prediction"]["categories"].get
        )

    # Not labelled yet: a short wait gives up and says so.
    waiting = loop.step(timeout=0)
    assert not waiting.done and waiting.detail == {"labelled": 0, "pushed": 10, "needed": 10}

    # An annotator answers every task in the UI (what Submit posts).
    annotator = label_studio.annotators[0]
    for item in selected:
        task_id = tasks[item["id"]].native_ids["task_id"]
        (answer,) = [k for k, v in gold[item["id"]].annotations[0].categories.items() if v == 1.0]
        body = {
            "result": [
                {
                    "id": f"r{task_id}",
                    "from_name": "category",
                    "to_name": "text",
                    "type": "choices",
                    "origin": "manual",
                    "value": {"choices": [answer]},
                }
            ],
            "lead_time": 3.0,
        }
        resp = httpx.post(
            f"{label_studio.url}/api/tasks/{task_id}/annotations/",
            json=body,
            headers={"Authorization": f"Token {annotator.token}"},
            timeout=60,
        )
        assert resp.status_code == 201, resp.text

    assert loop.step().done  # wait
    pulled = loop.step()
    assert pulled.detail["labels"] == 10 and not pulled.detail["unusable"]
    trained = loop.step()
    assert trained.detail["mode"] == "warm" and trained.detail["examples"] == 10
    report = loop.step().detail["report"]
    assert report.round == 0 and report.labels == 10 and report.dev_score is not None
    assert set(report.stage_seconds) == {"score", "push", "wait", "pull", "train", "evaluate"}
    assert loop.round == 1 and loop.next_stage == "score"
