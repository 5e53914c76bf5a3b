"""Rebuild the active-learning example data from the original public files.

    python examples/data/al/prepare.py SHARED_DATA_DIR

``SHARED_DATA_DIR`` holds ``textcat_sms_spam/SMSSpamCollection`` (UCI SMS Spam Collection) and
``prodigy_ner_fashion_brands/fashion_brands_{training,eval}.jsonl`` (explosion/projects); see SOURCE.md.
Writes annobridge records (one gold annotation each) here and small subsamples to tests/data/al/.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[2] / "tests" / "data" / "al"


def sms_records(src: Path) -> list[dict[str, Any]]:
    rows = src.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "Label\tSMS", rows[0]
    out = []
    for index, row in enumerate(rows[1:], 1):
        label, _, text = row.partition("\t")
        if label not in ("ham", "spam") or not text.strip():
            continue
        cats = {"ham": float(label == "ham"), "spam": float(label == "spam")}
        out.append({"id": f"sms-{index:04d}", "text": text, "annotations": [{"annotator": "uci", "categories": cats}]})
    return out


def fashion_records(src_dir: Path) -> list[dict[str, Any]]:
    out = []
    for split, name in (("train", "fashion_brands_training.jsonl"), ("eval", "fashion_brands_eval.jsonl")):
        with (src_dir / name).open(encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                task = json.loads(line)
                if task.get("answer", "accept") != "accept":
                    continue
                text = task["text"]
                spans = [
                    {"start": s["start"], "end": s["end"], "label": s["label"], "text": text[s["start"] : s["end"]]}
                    for s in task.get("spans", [])
                ]
                out.append(
                    {
                        "id": f"fb-{split}-{index:04d}",
                        "text": text,
                        "meta": {"split": split},
                        "annotations": [{"annotator": "explosion", "spans": spans}],
                    }
                )
    return out


def write(path: Path, records: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if path.name.endswith(".gz"):
        # mtime=0: the same input gives the same bytes
        with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    print(f"{path.name}: {len(records)} records, {path.stat().st_size / 1024:.0f} KiB")


def main(shared: Path) -> None:
    sms = sms_records(shared / "textcat_sms_spam" / "SMSSpamCollection")
    fashion = fashion_records(shared / "prodigy_ner_fashion_brands")
    write(HERE / "sms_spam.jsonl.gz", sms)
    write(HERE / "fashion_brands.jsonl.gz", fashion)
    rng = random.Random(13)
    TESTS.mkdir(parents=True, exist_ok=True)
    write(TESTS / "sms_spam_small.jsonl", rng.sample(sms, 500))
    write(TESTS / "fashion_brands_small.jsonl", rng.sample([r for r in fashion if r["meta"]["split"] == "train"], 240))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
