"""Prodigy adapter: reading, exporting and the SQLite database, against the least code that does the same.

    python benchmarks/bench_prodigy.py                 # 8 copies of the fashion_brands export (~10k tasks)
    python benchmarks/bench_prodigy.py --copies 2

Data: the real ``examples/data/fashion_brands_training.jsonl`` (1,235 ``ner_manual`` tasks), repeated with
fresh ``_input_hash`` values so every copy is a distinct document. Prodigy itself cannot be installed, so the
baselines are hand-written floors:

* read: ``json.loads`` each line and group by ``_input_hash`` (no validation, no model objects);
* export: Prodigy's own route from ``tokens`` to a Doc (``Doc(words, spaces)``, ``doc.ents`` from
  ``token_start``/``token_end``) into one DocBin, no split, no checks;
* SQLite: ``executemany`` the example/link rows; read them back with one JOIN and ``json.loads``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "examples" / "data" / "fashion_brands_training.jsonl"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import best_of  # noqa: E402


def make_data(path: Path, copies: int) -> int:
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for copy in range(copies):
            for line in lines:
                task = json.loads(line)
                if copy:
                    task["_input_hash"] = (task["_input_hash"] + copy * 7919) % (2**31)
                fh.write(json.dumps(task, ensure_ascii=False) + "\n")
                n += 1
    return n


def interleaved(runs: int, floor: Callable[[], Any], ours: Callable[[], Any]) -> tuple[float, Any, float, Any]:
    """Best time of each, runs alternating so both see the same load on a shared machine."""
    best_floor, best_ours, got_floor, got_ours = float("inf"), float("inf"), None, None
    for _ in range(runs):
        start = time.perf_counter()
        got_floor = floor()
        best_floor = min(best_floor, time.perf_counter() - start)
        start = time.perf_counter()
        got_ours = ours()
        best_ours = min(best_ours, time.perf_counter() - start)
    return best_floor, got_floor, best_ours, got_ours


# -- floors ------------------------------------------------------------------------------


def floor_read(path: Path) -> int:
    groups: dict[int, list[dict[str, Any]]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            task = json.loads(line)
            groups.setdefault(task["_input_hash"], []).append(task)
    return len(groups)


def floor_export(path: Path, out: Path) -> int:
    import spacy
    from spacy.tokens import Doc, DocBin

    from annobridge.formats import DOCBIN_ATTRS

    vocab = spacy.blank("en").vocab
    docbin = DocBin(attrs=DOCBIN_ATTRS)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            task = json.loads(line)
            if task.get("answer") != "accept":
                continue
            tokens = task["tokens"]
            spaces = [a["end"] != b["start"] for a, b in pairwise(tokens)] + [False]
            doc = Doc(vocab, words=[t["text"] for t in tokens], spaces=spaces)
            ents = [doc.char_span(s["start"], s["end"], label=s["label"]) for s in task.get("spans", [])]
            doc.ents = [e for e in ents if e is not None]
            docbin.add(doc)
    out.mkdir(parents=True, exist_ok=True)
    docbin.to_disk(out / "train.spacy")
    return len(docbin)


def floor_db_write(path: Path, db: Path) -> int:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE dataset (id INTEGER PRIMARY KEY, name TEXT, created INTEGER, meta BLOB, session INT)")
    conn.execute("CREATE TABLE example (id INTEGER PRIMARY KEY, input_hash INT, task_hash INT, content BLOB)")
    conn.execute("CREATE TABLE link (id INTEGER PRIMARY KEY, example_id INT, dataset_id INT)")
    conn.execute("INSERT INTO dataset VALUES (1, 'bench', 0, X'7B7D', 0)")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            task = json.loads(line)
            rows.append((task["_input_hash"], task["_task_hash"], line.encode("utf-8")))
    conn.executemany("INSERT INTO example (input_hash, task_hash, content) VALUES (?, ?, ?)", rows)
    conn.execute("INSERT INTO link (example_id, dataset_id) SELECT id, 1 FROM example")
    conn.commit()
    conn.close()
    return len(rows)


def floor_db_read(db: Path) -> int:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT e.content FROM example e JOIN link l ON l.example_id = e.id JOIN dataset d ON d.id = l.dataset_id "
        "WHERE d.name = 'bench' ORDER BY e.id"
    )
    groups: dict[int, list[Any]] = {}
    for (content,) in rows:
        task = json.loads(content)
        groups.setdefault(task["_input_hash"], []).append(task)
    conn.close()
    return len(groups)


# -- annobridge -----------------------------------------------------------------------------


def ab_read(url: str) -> int:
    from annobridge import open_adapter

    with open_adapter(url) as adapter:
        return sum(1 for _ in adapter.pull())


def ab_export(url: str, out: Path) -> int:
    from annobridge.export import export

    report = export(url, out, task="ner", split="1.0")
    return int(report.records_exported)


def ab_db_write(path: Path, db: Path) -> int:
    from annobridge import open_adapter
    from annobridge_prodigy import ProdigyAdapter

    tasks = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open_adapter(f"prodigy:{db}?dataset=bench") as adapter:
        assert isinstance(adapter, ProdigyAdapter)
        return adapter.add_tasks(tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from annobridge_prodigy.hashes import input_hash, task_hash

    with tempfile.TemporaryDirectory(prefix="bench-prodigy-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "tasks.jsonl"
        n = make_data(data, args.copies)
        url = f"prodigy:{data}"
        rows: list[tuple[str, float, float]] = []

        t_floor, got_floor, t_ab, got_ab = interleaved(args.runs, lambda: floor_read(data), lambda: ab_read(url))
        assert got_floor == got_ab == n, (got_floor, got_ab, n)
        rows.append(("read + group by `_input_hash` (pull)", t_floor, t_ab))

        counter = iter(range(10**6))
        t_floor, got_floor, t_ab, got_ab = interleaved(
            args.runs,
            lambda: floor_export(data, tmp / f"floor-{next(counter)}"),
            lambda: ab_export(url, tmp / f"ab-{next(counter)}"),
        )
        assert got_floor == got_ab == n, (got_floor, got_ab)
        rows.append(("export to DocBin (ner)", t_floor, t_ab))

        t_floor, got_floor, t_ab, got_ab = interleaved(
            1, lambda: floor_db_write(data, tmp / "floor.db"), lambda: ab_db_write(data, tmp / "ab.db")
        )
        assert got_floor == got_ab == n
        rows.append(("write SQLite example + link rows (db-in)", t_floor, t_ab))

        ab_db = f"prodigy:{tmp / 'ab.db'}?dataset=bench"
        t_floor, got_floor, t_ab, got_ab = interleaved(
            args.runs, lambda: floor_db_read(tmp / "floor.db"), lambda: ab_read(ab_db)
        )
        assert got_floor == got_ab == n
        rows.append(("read a SQLite dataset (pull)", t_floor, t_ab))

        tasks = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
        streamed = [{k: t[k] for k in ("text", "meta")} for t in tasks]

        def hash_all() -> int:
            for task in streamed:
                task_hash(task, input_hash(task))
            return len(streamed)

        t_hash, _ = best_of(hash_all, args.runs)

    table = [
        "| operation | floor tasks/s | annobridge tasks/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, t_floor, t_ab in rows:
        table.append(f"| {name} | {n / t_floor:,.0f} | {n / t_ab:,.0f} | {t_floor / t_ab:.2f}x |")
    markdown = "\n".join(
        [
            "## Prodigy adapter (`benchmarks/bench_prodigy.py`)",
            "",
            f"{n:,} real `ner_manual` tasks (the fashion_brands export x{args.copies}, distinct `_input_hash`). "
            "Floors are the least code doing the same job (see the script's docstring): no validation, no "
            "offset checks, no split/manifest/report. annobridge also builds model objects, verifies spans "
            f"and accounts for every line. Best of {args.runs} runs, floor and annobridge alternating "
            "(SQLite writes: 1 run), one process.",
            "",
            *table,
            "",
            "The SQLite write floor stores each input line's bytes as they are; annobridge re-serialises every "
            "task (it adds missing hashes and answers first) and links it to the dataset and a session dataset, "
            "as `db-in` does. The machine is shared with other jobs: ratios vary by about +-30 % between runs.",
            "",
            f"Hashing (`_input_hash` + `_task_hash`, our MurmurHash3 reimplementation of Prodigy's scheme): "
            f"{n / t_hash:,.0f} tasks/s. No Prodigy baseline is possible: Prodigy is not installable.",
        ]
    )
    print(markdown)
    from _report import write_section

    write_section("prodigy", markdown)


if __name__ == "__main__":
    main()
