"""The retraining run as a Prefect flow: the same steps as ``spacy project run all``, through the Python APIs.

    pip install prefect
    RETRAIN_SOURCE='labelstudio://127.0.0.1:8080/projects/3' python prefect_flow.py          # one run now
    prefect deploy ... / flow.serve(cron="0 3 * * *")                                        # or on a schedule

It keeps the same state as the spaCy project (``state/cursor.txt``, ``state/records.jsonl``, ``models/``), so
the two can take turns. One difference: through the Python API the cursor is kept whole. For Label Studio
and Argilla that is their exact cursor (each annotation's version, deletions named) saved as JSON, where
``annobridge pull`` prints, and ``pull.py`` keeps, only its timestamp. ``annobridge pull --since`` takes
either form.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow, task
from spacy.cli.evaluate import evaluate
from spacy.cli.train import train

import annobridge

PROJECT = Path(os.environ.get("RETRAIN_PROJECT", Path(__file__).resolve().parent))
SOURCE = os.environ.get("RETRAIN_SOURCE", f"prodigy:{PROJECT / 'assets' / 'annotations.db'}?dataset=fashion_brands")
sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))

import merge  # noqa: E402  (examples/retrain/scripts/merge.py)
import promote  # noqa: E402  (examples/retrain/scripts/promote.py)


def _load_cursor(path: Path) -> Any:
    text = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if not text:
        return None
    return json.loads(text) if text.startswith("{") else text  # a whole PullCursor, or a timestamp


def _cursor_text(cursor: Any) -> str:
    if isinstance(cursor, dict):  # annobridge.cursor.PullCursor is a dict: keep all of it
        return json.dumps(cursor)
    return cursor.isoformat() if hasattr(cursor, "isoformat") else str(cursor)


@task(retries=2, retry_delay_seconds=60)
def pull_and_merge(source: str, project: Path = PROJECT) -> dict[str, int]:
    """Pull what changed since the saved cursor; merge it into the accumulated records; then save the cursor."""
    state = project / "state"
    cursor_file = state / "cursor.txt"
    with annobridge.open_adapter(source) as adapter:
        pulled = list(adapter.pull(since=_load_cursor(cursor_file)))
        cursor = adapter.cursor
        if adapter.skipped:
            raise RuntimeError(f"{len(adapter.skipped)} inputs could not be read, e.g. {adapter.skipped[0]}")
    records, counts = merge.merge(merge.read_records(state / "records.jsonl"), pulled)
    merge.write_atomically(state / "records.jsonl", records)
    if cursor is not None:  # only once the records are saved: the cursor never runs ahead of them
        tmp = cursor_file.with_name(cursor_file.name + ".next")
        tmp.write_text(_cursor_text(cursor) + "\n", encoding="utf-8")
        tmp.replace(cursor_file)
    return dict(counts)


@task
def export_corpus(project: Path = PROJECT) -> dict[str, int]:
    report = annobridge.export(f"jsonl:{project / 'state' / 'records.jsonl'}", project / "corpus", task="ner",
                               split="0.8,0.1,0.1", seed=0, lang="en")
    return dict(report.docs_per_split)


@task
def train_model(project: Path = PROJECT) -> Path:
    corpus = project / "corpus"
    train(project / "configs" / "ner.cfg", project / "training",
          overrides={"paths.train": str(corpus / "train"), "paths.dev": str(corpus / "dev")})
    return project / "training" / "model-best"


@task
def evaluate_and_promote(model: Path, project: Path = PROJECT) -> str:
    test, metrics, models = project / "corpus" / "test", project / "metrics", project / "models"
    metrics.mkdir(exist_ok=True)
    evaluate(str(model), test, output=metrics / "new.json")
    promote.recover(models / "promoted")
    (metrics / "promoted.json").unlink(missing_ok=True)
    if (models / "promoted" / "config.cfg").is_file():  # the promoted model, on the same test split
        evaluate(str(models / "promoted"), test, output=metrics / "promoted.json")
    done = promote.main(["--new", str(model), "--new-metrics", str(metrics / "new.json"),
                  "--promoted", str(models / "promoted"), "--promoted-metrics", str(metrics / "promoted.json"),
                  "--metric", "ents_f", "--log", str(models / "promotions.jsonl"), "--corpus", str(project / "corpus")])
    if done != 0:
        raise RuntimeError(f"promote.py exited with {done}")
    return str(json.loads((models / "promotions.jsonl").read_text().splitlines()[-1])["decision"])


@flow(name="retrain-ner")
def retrain(source: str = SOURCE, project: Path = PROJECT) -> str:
    pull_and_merge(source, project)
    export_corpus(project)
    return evaluate_and_promote(train_model(project), project)


if __name__ == "__main__":
    print(retrain())
