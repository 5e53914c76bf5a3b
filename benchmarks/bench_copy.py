"""Copying an annotated project: ``annobridge copy`` (the CLI process) from Prodigy JSONL into Label Studio.

Measured in one run against a real Label Studio (annobridge_labelstudio.testserver starts one):

* annobridge: ``annobridge copy prodigy:FILE labelstudio://.../projects/new?title=... --task ner
  --annotators map.csv`` as a subprocess, N documents with two annotators' annotations each (what a user
  runs: interpreter start, pull, import, every annotation as its user), then the same command again
  (everything already there);
* baseline: the same tasks with the same annotations inline (``completed_by`` per annotation) sent in ONE
  raw ``POST /api/projects/{id}/import``, the fastest way Label Studio offers to load annotations.

    .venv/bin/python benchmarks/bench_copy.py [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_labelstudio import LABELS, ls_result, make_docs

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge.model import LabelSchema, TaskKind
from annobridge_labelstudio import LabelStudioAdapter
from annobridge_labelstudio import testserver as srv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    n = parser.parse_args().n
    docs = make_docs(n)
    with tempfile.TemporaryDirectory() as tmp, srv.LabelStudioServer() as server:
        ann1, ann2 = server.annotators[0], server.annotators[1]
        source = Path(tmp) / "annotations.jsonl"
        with source.open("w", encoding="utf-8") as fh:
            for doc, spans in docs:
                for name, kept in (("alice", spans), ("bob", spans[:1])):
                    task = {"text": doc.text, "annobridge_id": doc.id, "answer": "accept", "_view_id": "ner_manual",
                            "_annotator_id": name, "_session_id": name,
                            "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in kept]}
                    fh.write(json.dumps(task, ensure_ascii=False) + "\n")
        mapping = Path(tmp) / "map.csv"
        mapping.write_text(f"alice,{ann1.email}\nbob,{ann2.email}\n", encoding="utf-8")
        env = {**os.environ, "LABEL_STUDIO_API_KEY": server.admin.token}
        dest = f"labelstudio://127.0.0.1:{server.port}/projects/new?title=bench-copy"
        command = [sys.executable, "-m", "annobridge", "copy", f"prodigy:{source}", dest, "--task", "ner",
                   "--labels", ",".join(LABELS), "--annotators", str(mapping), "--json"]
        runs = []
        for _ in range(2):
            t = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600, check=False)
            runs.append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
            report = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
        first, again = runs
        assert report["annotations"]["already_there"] == 2 * n, report

        # baseline: one raw bulk import with the annotations inline
        config = AdapterConfig({"api_key": server.admin.token}, env={})
        raw = LabelStudioAdapter(AdapterURL.parse(f"labelstudio://127.0.0.1:{server.port}/projects/new?title=raw"),
                                 config)
        pid = raw.ensure_project(LabelSchema(TaskKind.NER, LABELS))
        tasks = [{"data": {"text": d.text, "annobridge_id": d.id},
                  "annotations": [{"result": ls_result(d, spans, False), "completed_by": ann1.id},
                                  {"result": ls_result(d, spans[:1], False), "completed_by": ann2.id}]}
                 for d, spans in docs]
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {server.admin.token}"},
                            timeout=3600)
        t = time.perf_counter()
        resp = http.post(f"/api/projects/{pid}/import", json=tasks)
        baseline = time.perf_counter() - t
        assert resp.status_code < 300, resp.text[:500]
    md = (
        f"## Copy: Prodigy JSONL -> Label Studio, {n:,} documents x 2 annotators (`benchmarks/bench_copy.py`)\n\n"
        "| what | seconds | per document |\n|---|---:|---:|\n"
        f"| `annobridge copy` CLI process (pull, import, {2 * n:,} annotations as their users) | {first:.1f} | "
        f"{first / n * 1000:.2f} ms |\n"
        f"| the same command again (everything already there) | {again:.1f} | {again / n * 1000:.2f} ms |\n"
        f"| baseline: one raw `POST /api/projects/{{id}}/import` with the annotations inline | {baseline:.1f} | "
        f"{baseline / n * 1000:.2f} ms |\n"
    )
    print(md)
    write_section("copy", md)


if __name__ == "__main__":
    main()
