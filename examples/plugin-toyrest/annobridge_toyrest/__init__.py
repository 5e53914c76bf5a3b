"""``toyrest://HOST:PORT/projects/ID``, the ToyREST server (``toyserver.py``): translation only.

The kit's HttpClient does auth, retries, fast failure, redaction and paging; the core verifies each span.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

import annobridge
from annobridge import Adapter, AdapterConfig, AdapterURL, Annotation, Answer, Capabilities, Document, ImportResult
from annobridge.kit import LabelSchema, Prediction, Record, Span, UsageError, as_datetime, filter_answers
from annobridge.kit import codepoint_to_utf16 as cp_to_utf16
from annobridge.kit import utf16_to_codepoint as utf16_to_cp

BATCH = 500  # tasks per bulk POST: one request per batch, small enough for any proxy's body limit


class ToyRestAdapter(Adapter):
    scheme = "toyrest"
    description = "ToyREST annotation server (the example of docs/plugins.md)"
    url_example = "toyrest://127.0.0.1:8765/projects/1"
    # what it does, checked by the contract suite: projects are made in ToyREST's UI; span tasks only
    capabilities = Capabilities(import_documents=True, push_predictions=True, pull=True, pull_since=True,
                                per_annotator=True, prediction_scores=True, tasks=("ner", "spans"))
    # no `requires`: its install hint can only name an annobridge extra; this package depends on httpx itself

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None) -> None:
        super().__init__(url, config)
        parts = url.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "projects" or not parts[1].isdigit():
            raise UsageError(f"{url}: expected a project URL such as {self.url_example}")
        self.path = f"/api/projects/{parts[1]}"
        self.page_size = int(url.params.get("page_size", 100))
        token = self.config.secret("token", env="TOYREST_TOKEN")
        if token is None:
            raise UsageError("toyrest: set TOYREST_TOKEN (or token in the [toyrest] section of the config file)")
        from annobridge.http import HttpClient, StaticTokenAuth  # lazily: `annobridge adapters` imports us
        self.client = HttpClient(url.base_url(), name="ToyREST", auth=StaticTokenAuth(token),
                                 allow_http=url.transport == "http", error_hints={401: " (check TOYREST_TOKEN)"})

    def close(self) -> None:
        self.client.close()

    def _tasks(self, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        # end_status=(): ToyREST ends with a short page, so a 404 means "no such project", not "past the end"
        return self.client.iter_items(self.client.pages_numbered(f"{self.path}/tasks", page_size=self.page_size,
                                      params=params, items="tasks", size_param="limit", end_status=()))

    def _task_ids(self) -> dict[str, int]:
        return {str(t["external_id"]): t["id"] for t in self._tasks() if t.get("external_id") is not None}

    def source_schema(self) -> LabelSchema:
        project = self.client.get_json(self.path)
        return LabelSchema(project["task"], list(project.get("labels") or []))

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        after = as_datetime(since)  # a cursor (ISO string) or a datetime
        if after is not None and after.tzinfo is None:
            raise UsageError("toyrest: since needs a timezone-aware time (ToyREST stores UTC)")
        newest = after
        for task in self._tasks({"updated_after": after.isoformat()} if after else None):
            newest = max(stamp for stamp in (newest, as_datetime(task["updated_at"])) if stamp is not None)
            if not task.get("text"):
                self.skip(f"ToyREST task {task.get('id')}", "task without text")
                continue
            yield filter_answers(self._record(task), answers)
        self.cursor = newest.isoformat() if newest else None  # the server's clock, not ours; set after a full pull

    def _record(self, task: dict[str, Any]) -> Record:
        doc = Document(str(task.get("external_id") or f"toyrest:{task['id']}"), task["text"], task.get("meta") or {})
        record = Record(doc, native_ids={"task": task["id"]})
        for item in task.get("annotations") or []:
            record.annotations.append(Annotation(
                str(item["annotator"]), self._spans(doc, item.get("result") or []),
                created_at=as_datetime(item.get("created_at")), updated_at=as_datetime(item.get("updated_at")),
                native_ids={"annotation": item.get("id")},
                meta={"offset_units": "utf16"}))  # kept as the UI wrote them, with their text: the core checks
        for item in task.get("predictions") or []:
            record.predictions.append(Prediction(
                str(item.get("model_version") or ""), self._spans(doc, item.get("result") or [], convert=True),
                score=item.get("score"), native_ids={"prediction": item.get("id")}))
        return record

    def _spans(self, doc: Document, result: list[dict[str, Any]], convert: bool = False) -> list[Span]:
        spans = []
        for item in result:
            try:
                start, end, label = int(item["start"]), int(item["end"]), str(item["label"])
            except (KeyError, TypeError, ValueError):
                self.note_span(doc.id, "dropped", "ToyREST result item without start, end and label")
                continue
            # Predictions are not verified by the core; this adapter wrote them in UTF-16, so it converts back.
            cp = (utf16_to_cp(doc.text, start), utf16_to_cp(doc.text, end)) if convert else (start, end)
            if cp[0] is None or cp[1] is None:
                self.note_span(doc.id, "dropped", "UTF-16 offset inside a surrogate pair")
                continue
            spans.append(Span(cp[0], cp[1], label, item.get("score"), item.get("text")))
        return spans

    @staticmethod
    def _prediction(text: str, pred: Prediction) -> dict[str, Any]:
        return {"model_version": pred.model_version, "score": pred.score, "result": [
            {"start": cp_to_utf16(text, s.start), "end": cp_to_utf16(text, s.end), "label": s.label,
             "score": s.score, "text": text[s.start : s.end]} for s in pred.spans]}

    def write_documents(self, items: Iterator[tuple[Document, Prediction | None]], *,
                        schema: LabelSchema | None = None) -> ImportResult:
        # the core has ensured the project and refused duplicate ids and documents no tool can take
        from annobridge.http import Rejection, isolate_rejected

        result, known, todo = ImportResult(), self._task_ids(), []
        for doc, pred in items:  # idempotent by document id: ToyREST's external_id
            if doc.id in known:
                result.existing += 1
                result.native_ids.setdefault(doc.id, known[doc.id])
            else:
                todo.append((doc, pred))
        def send(batch: Sequence[tuple[Document, Prediction | None]]) -> Rejection | None:
            body = [{"external_id": d.id, "text": d.text, "meta": d.meta,
                     "predictions": [self._prediction(d.text, p)] if p is not None else []} for d, p in batch]
            # never re-sent by the kit: if the answer is lost, AmbiguousWrite carries what landed (reconcile)
            response = self.client.request("POST", f"{self.path}/tasks/bulk", json=body, ok=(400,),
                                           reconcile=self._task_ids)
            if response.status_code == 400:  # one empty text refuses the batch, and ToyREST names it
                error = response.json()
                return Rejection(self.client.redact(str(error.get("error"))), (int(error.get("index", -1)),))
            result.native_ids.update(zip([d.id for d, _ in batch], response.json()["ids"], strict=True))
            result.created += len(batch)
            return None

        for start in range(0, len(todo), BATCH):  # the kit drops what the server names and sends the rest
            result.failed += [(d.id, why) for (d, _), why in isolate_rejected(todo[start : start + BATCH], send)]
        return result

    def push_predictions(self, items: Iterable[tuple[Document, Prediction]]) -> ImportResult:
        pairs, known = list(items), self._task_ids()
        new = {doc.id: pred for doc, pred in pairs if doc.id not in known}  # imported with their prediction
        result = self.import_documents([doc for doc, _ in pairs if doc.id in new], predictions=new)
        for d, p in (pair for pair in pairs if pair[0].id in known):
            self.client.request("POST", f"/api/tasks/{known[d.id]}/predictions", json=self._prediction(d.text, p))
            result.existing += 1
        return result


@annobridge.hookimpl
def register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    register(ToyRestAdapter)
