"""Doccano: import 10k examples with pre-annotations and pull them back, against the naive REST way.

Runs a real doccano 1.8.4 server (annobridge_doccano.testserver; Celery worker, SQLite) on a loopback port and
measures, in the same run:

* annobridge: ``import_documents`` (validation + file upload + import task + idempotency check);
* pulls, each the best of 3 on the same project: a full ``pull``; ``pull(since=cursor)`` with nothing changed;
  after an annotator confirmed 50 examples; after an annotator gave 50 other examples a new span (REST calls as
  doccano's UI makes them); and a full pull of the changed project. Each with its ratio to the first full pull;
* doccano's own export (start task, poll, download the zip) for the same project;
* the naive way: one POST per example and one per span (what doccano-client's ``create_example`` /
  ``create_span`` do), and a pull by paging ``/examples`` + one GET of spans per example; measured on
  300 examples and extrapolated linearly to 10k.

    .venv/bin/python benchmarks/bench_doccano.py [N]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from annobridge.adapter import AdapterURL
from annobridge.config import AdapterConfig
from annobridge.model import Document, LabelSchema, Prediction, Span, TaskKind
from annobridge.offsets import codepoint_to_utf16
from annobridge_doccano import DoccanoAdapter
from annobridge_doccano.testserver import DoccanoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import best_of, write_section  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
NAIVE_N = 300
#: examples confirmed, and other examples given a new span, between the incremental pulls
CHANGED = 50


def corpus(n: int) -> tuple[list[Document], dict[str, Prediction], list[str]]:
    rows = [json.loads(line) for line in (ROOT / "tests/data/doccano/wnut17_sample.jsonl").open(encoding="utf-8")]
    docs, preds = [], {}
    for i in range(n):
        row = rows[i % len(rows)]
        doc = Document(f"bench-{i}", f"{row['text']} #{i}", {"source": "wnut17", "copy": i // len(rows)})
        docs.append(doc)
        spans = [Span(s["start"], s["end"], s["label"], 0.5 + (i % 7) / 20) for s in row["spans"]]
        preds[doc.id] = Prediction("bench-model-1", spans, score=round((i * 37 % 100) / 100, 2))
    labels = sorted({s["label"] for r in rows for s in r["spans"]})
    return docs, preds, labels


def adapter_for(server: Any, name: str) -> DoccanoAdapter:
    config = AdapterConfig({"username": server.admin.username, "password": server.admin.password}, env={})
    url = f"{server.url}/projects/new?name={name}&collaborative=true&annotators=annotator1"
    return DoccanoAdapter(AdapterURL.parse(url), config)


def naive(server: Any, docs: list[Document], preds: dict[str, Prediction], labels: list[str]) -> dict[str, float]:
    """One POST per example and per span; pull by paging examples and one GET of spans per example."""
    adapter = adapter_for(server, "bench-naive")
    adapter.ensure_project(LabelSchema(TaskKind.NER, labels))
    pid = adapter.project_id
    types = {v: k for k, v in adapter.label_types().items()}
    token = server.login(server.admin)
    http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Token {token}"}, timeout=60)
    t0 = time.perf_counter()
    for doc in docs:
        meta = {"annobridge_id": doc.id, **doc.meta}
        example = http.post(f"/v1/projects/{pid}/examples", json={"text": doc.text, "meta": meta}).json()
        http.cookies.clear()
        for span in preds[doc.id].spans:
            body = {"label": types[span.label], "start_offset": span.start, "end_offset": span.end, "prob": span.score}
            r = http.post(f"/v1/projects/{pid}/examples/{example['id']}/spans", json=body)
            http.cookies.clear()
            r.raise_for_status()
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    pulled = 0
    url: str | None = f"/v1/projects/{pid}/examples?limit=100"
    while url:
        page = http.get(url).json()
        for example in page["results"]:
            http.get(f"/v1/projects/{pid}/examples/{example['id']}/spans").raise_for_status()
            pulled += 1
        url = page["next"]
    t_pull = time.perf_counter() - t0
    assert pulled == len(docs)
    # The example `score` field (API ordering) costs one PATCH per example whichever way examples came in.
    ids = [e["id"] for e in http.get(f"/v1/projects/{pid}/examples?limit={len(docs)}").json()["results"]]
    t0 = time.perf_counter()
    for i, eid in enumerate(ids):
        http.patch(f"/v1/projects/{pid}/examples/{eid}", json={"score": i / len(ids)}).raise_for_status()
    t_score = time.perf_counter() - t0
    http.close()
    adapter.close()
    return {"import": t_import, "pull": t_pull, "score": t_score}


def measure_pulls(server: Any, adapter: DoccanoAdapter, docs: list[Document], preds: dict[str, Prediction],
                  native: dict[str, int], n_spans: int) -> list[tuple[str, float, str]]:
    """Full and incremental pulls on the same project; every incremental pull starts from the same cursor."""
    pid = adapter.project_id
    t_full, records = best_of(lambda: list(adapter.pull()))
    assert len(records) == N and not adapter.skipped
    assert sum(len(r.predictions[0].spans) for r in records) == n_spans
    cursor0 = adapter.cursor
    t_none, out = best_of(lambda: list(adapter.pull(since=cursor0)))
    assert out == []

    # 50 examples spread over the project are confirmed by an annotator, 50 others get a new span
    step = len(docs) // CHANGED
    confirm = [docs[i * step] for i in range(CHANGED)]
    relabel = [docs[i * step + step // 2] for i in range(CHANGED)]
    ann = server.annotators[0]
    http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Token {server.login(ann)}",
                                                           "Accept": "application/json"}, timeout=60)

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = http.request(method, path, **kwargs)
        http.cookies.clear()
        response.raise_for_status()
        return response.json() if response.content else None

    for doc in confirm:
        call("POST", f"/v1/projects/{pid}/examples/{native[doc.id]}/states", json={})
    t_conf, out = best_of(lambda: list(adapter.pull(since=cursor0)))
    assert sorted(r.id for r in out) == sorted(d.id for d in confirm), len(out)
    assert all(r.annotations[0].annotator == ann.username for r in out)
    cursor1 = adapter.cursor

    types = {t["text"]: t["id"] for t in call("GET", f"/v1/projects/{pid}/span-types")}
    for doc in relabel:
        # the UI: open the example (its labels), draw a span over the copy number at the end (UTF-16 units)
        call("GET", f"/v1/projects/{pid}/examples/{native[doc.id]}/spans")
        start = doc.text.rindex("#")
        body = {"label": types[sorted(types)[0]], "start_offset": codepoint_to_utf16(doc.text, start),
                "end_offset": codepoint_to_utf16(doc.text, len(doc.text))}
        call("POST", f"/v1/projects/{pid}/examples/{native[doc.id]}/spans", json=body)
    http.close()
    t_label, out = best_of(lambda: list(adapter.pull(since=cursor1)))
    assert sorted(r.id for r in out) == sorted(d.id for d in relabel), len(out)
    assert all(ann.username in r.annotations[0].meta["label_users"] for r in out)
    t_after, records = best_of(lambda: list(adapter.pull()))
    assert sum(1 for r in records if r.annotations) == 2 * CHANGED

    def ratio(t: float) -> str:
        return f"{t / t_full:.0%}"

    return [
        ("full pull (1 export; nobody has confirmed or labelled anything)", t_full, "100%"),
        ("incremental, nothing changed (counters only)", t_none, ratio(t_none)),
        (f"incremental, {CHANGED} examples confirmed since the cursor", t_conf, ratio(t_conf)),
        (f"incremental, {CHANGED} other examples got a new span since", t_label, ratio(t_label)),
        (f"full pull after those changes ({2 * CHANGED} touched examples read for label users)", t_after,
         ratio(t_after)),
    ]


def main() -> None:
    docs, preds, labels = corpus(N)
    n_spans = sum(len(p.spans) for p in preds.values())
    t_start = time.perf_counter()
    server = DoccanoServer.start(mode="worker", n_annotators=1)
    t_server = time.perf_counter() - t_start
    try:
        adapter = adapter_for(server, "bench-annobridge")
        adapter.ensure_project(LabelSchema(TaskKind.NER, labels))

        t0 = time.perf_counter()
        result = adapter.import_documents(docs, predictions=preds)
        t_import = time.perf_counter() - t0
        assert result.created == N and not result.failed, result.failed[:3]

        t0 = time.perf_counter()
        again = adapter.import_documents(docs, predictions=preds)
        t_reimport = time.perf_counter() - t0
        assert again.existing == N and again.created == 0

        t_export, files = best_of(lambda: adapter._export(confirmed_only=False))
        assert sum(len(rows) for rows in files.values()) == N

        pulls = measure_pulls(server, adapter, docs, preds, result.native_ids, n_spans)

        naive_docs = docs[:NAIVE_N]
        naive_times = naive(server, naive_docs, preds, labels)
    finally:
        server.stop()

    scale = N / NAIVE_N
    naive_import = naive_times["import"] * scale
    naive_pull = naive_times["pull"] * scale
    rows = [
        ("annobridge import (validate + upload + import task + id check)", t_import, None),
        ("annobridge re-import of the same documents (idempotent: all `existing`)", t_reimport, None),
        ("doccano's own JSONL export (task + poll + zip download; best of 3)", t_export, None),
        (f"naive import: POST per example + per span ({NAIVE_N} measured)", naive_import, naive_times["import"]),
        (f"naive pull: page /examples + GET spans per example ({NAIVE_N} measured)", naive_pull, naive_times["pull"]),
        (f"`score` field: PATCH per example ({NAIVE_N} measured)", naive_times["score"] * scale, naive_times["score"]),
    ]
    lines = [
        "## Doccano",
        "",
        f"`benchmarks/bench_doccano.py`: {N:,} WNUT-17 sentences with {n_spans:,} pre-annotated spans into a "
        "collaborative sequence-labelling project on a real doccano 1.8.4 (gunicorn 2 workers, one Celery worker, "
        f"SQLite; server start {t_server:.0f} s, not counted). Naive rows are measured on {NAIVE_N} examples in the "
        "same run and extrapolated linearly.",
        "",
        f"| operation | time for {N:,} | examples/s | measured |",
        "|---|---:|---:|---:|",
    ]
    for label, seconds, measured in rows:
        shown = f"{measured:.1f} s" if measured is not None else "-"
        lines.append(f"| {label} | {seconds:,.1f} s | {N / seconds:,.0f} | {shown} |")
    t_pull = pulls[0][1]
    _none, t_conf, t_label, t_after = (row[1] for row in pulls[1:])
    lines += [
        "",
        f"Import: annobridge is {naive_import / t_import:.0f}x faster than one POST per example and span. The "
        "`score` field is not set by doccano's import, so ordering by it costs one PATCH per example "
        "(`score_field=true`); annobridge instead imports least-certain-first, which is the order doccano's UI "
        "serves, and keeps each score in the example's meta.",
        "",
        f"Pulls of the same project, each the fastest of 3 (every incremental pull from the same cursor; {CHANGED} "
        f"examples spread over the {N:,} confirmed by an annotator, then {CHANGED} others given a new span by REST "
        "calls as doccano's UI makes them):",
        "",
        "| pull | time | of the full pull |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {seconds:.2f} s | {share} |" for label, seconds, share in pulls]
    conf_ok = t_conf < 0.1 * t_pull
    label_ok = t_label < 0.1 * t_pull
    lines += [
        "",
        f"The full pull is {naive_pull / t_pull:.0f}x faster than paging + one GET per example and takes "
        f"{t_pull / t_export:.1f}x the time of doccano's bare export: it runs one export, parses the predictions, "
        "converts and checks offsets (the confirmed examples would come from the examples API; here there are none).",
        "",
        f"Target: {CHANGED} changed examples of {N:,} under 10% of a full pull. **Confirmations: "
        + ("met" if conf_ok else "missed")
        + f"** ({t_conf / t_pull:.0%}). No export runs: the counters (`/metrics/member-progress`, "
        "`/metrics/span-distribution`) show that only confirmations moved, the confirmed examples are listed "
        "through the examples API, and each newly confirmed example costs two reads (its labels with users and "
        "timestamps, its confirmation state) for which doccano 1.8.4 has no bulk endpoint; on this box a read costs "
        "the server ~3-5 ms and two cores serve them."
        + ("" if conf_ok else " That is where the time goes; fewer reads would lose who confirmed, when, or who "
           "made which label.")
        + f" **New labels: {'met' if label_ok else 'missed'}** ({t_label / t_pull:.0%}"
        f"; {t_label / t_after:.0%} of a full pull of the changed project). doccano 1.8.4 cannot say which "
        "examples' labels changed short of reading every example: labels are listed per example only, their "
        "timestamps cannot be filtered (`created_at__gte` is ignored), an example's `updated_at` does not move "
        "when its labels do, and the `?label=` filter knows neither users nor times "
        "(`adapters/doccano/tests/test_api_limits.py` pins each of these on the real server). So this pull runs "
        "the one "
        "export a full pull runs, diffs it against the cursor, and reads only the changed examples (one request "
        "each: unconfirmed ones need no state read; the confirmed list is the cursor's, as the counters show no "
        "confirmation moved). It is never slower than a full pull of the same project, which also reads every "
        "touched example; count-preserving label edits need `exact=true` (see [doccano.md](doccano.md)).",
    ]
    path = write_section("doccano", "\n".join(lines))
    print("\n".join(lines))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
