"""``labelstudio://HOST:PORT/projects/ID`` - Label Studio over its REST API (httpx; no SDK).

URL forms
  ``labelstudio://HOST:PORT/projects/ID``            an existing project
  ``labelstudio://HOST:PORT/projects/new?title=T``   the project titled T; :meth:`ensure_project` creates it from a
                                                    :class:`LabelSchema` when missing (a second run finds it again)
  ``labelstudio+http://...`` / ``labelstudio+https://...`` force the transport (default: https, http on loopback)
  query options: ``chunk_size`` (tasks per import request, default 5000), ``page_size`` (tasks per page of an
  incremental pull, default 500), ``sampling=keep`` (do not switch the
  project to uncertainty sampling after pushing predictions), ``timeout`` (seconds per request): the
  :class:`LabelStudioOptions` model, so a misspelt option or a bad value is refused with the list of known ones.
The host may be left out (``labelstudio:///projects/3``): then ``LABEL_STUDIO_URL`` (or ``url`` in the config) says
where the server is. The key comes from ``LABEL_STUDIO_API_KEY`` or ``api_key`` in the config: a legacy token
(sent as ``Token``) or a personal access token (a JWT, traded for short-lived access tokens and refreshed).

How things are kept:
  * every task carries the annobridge document id in ``data.annobridge_id`` (and ``Document.meta`` in the task
    ``meta``), so a re-import finds what is there and adds nothing twice;
  * a full pull reads a snapshot export (one server-side query, full prediction objects), streamed and parsed
    one task at a time; an incremental pull lists tasks whose ``updated_at`` moved past the cursor;
  * the cursor knows each annotation's id and ``updated_at``, so an incremental pull yields only new or changed
    annotations and reports deleted ones in ``record.native_ids["deleted_annotation_ids"]`` and
    :attr:`LabelStudioAdapter.deleted`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from annobridge import kit

from .labelconfig import LabelConfig, label_config_for

if TYPE_CHECKING:
    from .client import LabelStudioClient

__all__ = ["Cursor", "LabelStudioAdapter", "label_config_for"]

ID_KEY = "annobridge_id"
UNCERTAINTY = "Uncertainty sampling"


Cursor = kit.PullCursor  # the name this adapter's users know


class LabelStudioOptions(kit.AdapterOptions):
    """The URL's query options (``?chunk_size=1000``); also read from ``[labelstudio]`` in the config file."""

    title: str | None = Field(None, description="the project's title, for projects/new (found again by it)")
    chunk_size: int = Field(5000, ge=1, description="tasks per import request")
    page_size: int = Field(500, ge=1, description="tasks per page of an incremental pull")
    sampling: Literal["uncertainty", "keep"] = Field(
        "uncertainty", description="keep: leave the project's sampling as it is after pushing predictions")
    timeout: float = Field(300, gt=0, description="seconds per request")


class LabelStudioAdapter(kit.Adapter):
    scheme = "labelstudio"
    description = "Label Studio projects over the REST API (legacy token or personal access token)"
    url_example = "labelstudio://127.0.0.1:8080/projects/1"
    capabilities = kit.Capabilities.all_except()  # test_*_contract.py checks each claim it can observe
    Options = LabelStudioOptions

    def __init__(self, url: kit.AdapterURL, config: kit.AdapterConfig | None = None, *,
                 client: LabelStudioClient | None = None) -> None:
        super().__init__(url, config)
        match = url.match_path(r"projects/(\d+|new)",
                               "labelstudio://HOST:PORT/projects/ID or labelstudio://HOST:PORT/projects/new?title=...")
        self.project_id: int | None = None if match.group(1) == "new" else int(match.group(1))
        options: LabelStudioOptions = self.options
        self.title = options.title
        if self.project_id is None and not self.title:
            raise kit.UsageError(
                f"{url}: projects/new needs a title, e.g. labelstudio://HOST:PORT/projects/new?title=News")
        self.chunk_size, self.page_size = options.chunk_size, options.page_size
        self.set_sampling = options.sampling != "keep"
        if client is None:
            from .client import LabelStudioClient  # httpx comes with the `labelstudio` extra

            client = LabelStudioClient(
                self.config.server_url(url, env="LABEL_STUDIO_URL"),
                self.config.secret("api_key", env="LABEL_STUDIO_API_KEY"),
                timeout=options.timeout, allow_http=url.transport == "http",
            )
        self.client = client
        self._label_config: LabelConfig | None = None
        self._users: dict[int, str] | None = None
        self._user_rows: list[dict[str, Any]] | None = None
        #: annotations to send inline with new tasks, by document id (write_annotations' bulk path)
        self._inline_annotations: dict[str, list[dict[str, Any]]] = {}
        #: (document id, annotation id) of annotations an incremental pull found deleted
        self.deleted: list[tuple[str, int]] = []
        #: offsets repaired on the last pull, as (where, what was done)
        self.repaired: list[tuple[str, str]] = []
        #: how often the last full pull's download broke off and was resumed
        self.resumed = 0

    def close(self) -> None:
        self.client.close()

    # -- project -----------------------------------------------------------------------------
    def _project_id(self, create_with: kit.LabelSchema | None = None) -> int:
        if self.project_id is not None:
            return self.project_id
        assert self.title is not None
        for project in self.client.iter_items(
                self.client.pages_numbered("/api/projects/", params={"title": self.title}, page_size=100)):
            if project.get("title") == self.title:
                self.project_id = int(project["id"])
                return self.project_id
        if create_with is None:
            raise kit.UsageError(f"No Label Studio project titled {self.title!r}; import with a schema to create it.")
        resp = self.client.request("POST", "/api/projects/", json={
            "title": self.title,
            "label_config": label_config_for(create_with),
            "description": f"annobridge {create_with.task.value} project",
        }, idempotent=True)  # a retried create is found again by title next time; a duplicate is harmless
        self.project_id = int(resp.json()["id"])
        return self.project_id

    def project(self) -> dict[str, Any]:
        return dict(self.client.get_json(f"/api/projects/{self._project_id()}/"))

    def label_config(self) -> LabelConfig:
        if self._label_config is None:
            self._label_config = LabelConfig.parse(self.project()["label_config"])
        return self._label_config

    def ensure_project(self, schema: kit.LabelSchema) -> int:
        """The project's id; created from ``schema`` for ``projects/new?title=``; its config must cover the labels."""
        pid = self._project_id(create_with=schema)
        self._label_config = None
        self.label_config().check_schema(schema)
        return pid

    def count(self) -> int | None:
        return int(self.project().get("task_number") or 0)

    def set_annotators_per_doc(self, n: int) -> str:
        """Label Studio's overlap: ``maximum_annotations`` for every task (``overlap_cohort_percentage`` 100)."""
        body = {"maximum_annotations": n, "overlap_cohort_percentage": 100}
        self.client.request("PATCH", f"/api/projects/{self._project_id()}/", json=body, idempotent=True)
        got = self.project().get("maximum_annotations")
        if got != n:
            raise kit.AdapterError(f"Label Studio kept maximum_annotations at {got} (asked for {n})")
        return f"Label Studio project {self._project_id()}: each task is labelled by {n} annotator(s)"

    def write_annotations(self, items: Iterable[tuple[kit.Document, kit.Annotation]], *,
                          schema: kit.LabelSchema | None = None) -> kit.ImportResult:
        """Each annotation as its annotator's (``completed_by``, written with the admin key), once.

        Documents not yet in the project go in with their annotations inline, in the same bulk import as
        any document (``documents_created`` counts them); annotations for tasks already there are posted one
        by one, after one snapshot of what those tasks hold. Label Studio annotations are whole versions
        of a task: a binary yes/no answer and a rejected manual one have no form there and fail with that
        reason; skip and ignore become cancelled annotations (its Skip). The server sets the timestamps.
        """
        items = list(items)
        result = kit.ImportResult()
        if schema is not None:
            self.ensure_project(schema)  # the label config must know the labels before results are built
        users = self._user_ids()
        tasks = self.find_tasks({doc.id for doc, _ in items}) if self.count() else {}
        docs: dict[str, kit.Document] = {}
        pending: dict[str, list[tuple[dict[str, Any], tuple[Any, ...]]]] = {}  # doc id -> (body, key)
        for doc, ann in items:
            docs.setdefault(doc.id, doc)
            uid = users.get(ann.annotator)
            why = None
            if uid is None:
                why = f"no Label Studio user {ann.annotator!r} (map annotator names to users with --annotators)"
            elif ann.mode == "binary":
                why = "a binary yes/no answer has no form in Label Studio (annotations are whole versions)"
            elif ann.answer == kit.Answer.REJECT:
                why = "Label Studio has no reject answer for a manual annotation"
            if why is None:
                try:
                    regions = [{k: v for k, v in item.items() if k != "score"}
                               for item in self._result_items(ann, doc.text, f"document {doc.id!r}")]
                except kit.SchemaError as exc:
                    why = str(exc)
            if why is not None:
                result.failed.append((doc.id, why))
                continue
            cancelled = ann.answer in (kit.Answer.SKIP, kit.Answer.IGNORE)
            body = {"result": regions, "completed_by": uid, "ground_truth": ann.ground_truth,
                    "was_cancelled": cancelled, "lead_time": ann.meta.get("lead_time") or 0}
            key = (uid, cancelled, ann.ground_truth, _regions_key(regions))
            if key not in {k for _, k in pending.get(doc.id, ())}:
                pending.setdefault(doc.id, []).append((body, key))
            else:
                result.existing += 1  # the same annotation twice in the input: written once

        # 1. new documents: one bulk import with their annotations inline (the fastest form Label Studio has)
        new = [doc for doc_id, doc in docs.items() if doc_id not in tasks]
        if new:
            self._inline_annotations = {d: [body for body, _ in pending.get(d, ())] for d in (x.id for x in new)}
            try:
                imported = self.import_documents(new, schema=schema)
            finally:
                self._inline_annotations = {}
            refused = dict(imported.failed)
            for doc in new:
                if doc.id in refused:
                    result.failed.extend((doc.id, refused[doc.id]) for _ in pending.pop(doc.id, ()))
                elif doc.id in imported.native_ids:
                    result.created += len(pending.pop(doc.id, ()))
                    result.documents_created += 1
                    result.native_ids[doc.id] = imported.native_ids[doc.id]
        # 2. tasks already there: what they hold, then one POST per annotation they lack
        todo = {doc_id: anns for doc_id, anns in pending.items() if doc_id in tasks}
        have = self._annotation_keys({tasks[d] for d in todo})
        for doc_id, anns in todo.items():
            tid = tasks[doc_id]
            for body, key in anns:
                if key in have.get(tid, set()):
                    result.existing += 1
                    continue
                try:
                    self.client.request("POST", f"/api/tasks/{tid}/annotations/", json=body,
                                        reconcile=lambda tid=tid, key=key: key in self._annotation_keys({tid})[tid])
                except kit.AmbiguousWrite as exc:
                    if exc.reconcile_error is not None or not exc.reconciled:
                        raise
                have.setdefault(tid, set()).add(key)
                result.created += 1
        return result

    def _user_list(self) -> list[dict[str, Any]]:
        """The server's users, read once (``/api/users/``) for both directions of the name mapping."""
        if self._user_rows is None:
            body = self.client.get_json("/api/users/")
            self._user_rows = list(body if isinstance(body, list) else body.get("results", []))
        return self._user_rows

    def _user_ids(self) -> dict[str, int]:
        """User id by e-mail and by username (the names a pull gives annotators)."""
        found: dict[str, int] = {}
        for user in self._user_list():
            for name in (user.get("email"), user.get("username")):
                if name:
                    found.setdefault(str(name), int(user["id"]))
        return found

    def _annotation_keys(self, task_ids: set[int]) -> dict[int, set[tuple[Any, ...]]]:
        """What the tasks' annotations say, per task: one GET per task for a few, one export snapshot for many."""
        def keys(annotations: Iterable[dict[str, Any]]) -> set[tuple[Any, ...]]:
            return {(a.get("completed_by") if not isinstance(a.get("completed_by"), dict)
                     else a["completed_by"].get("id"), bool(a.get("was_cancelled")), bool(a.get("ground_truth")),
                     _regions_key(a.get("result") or [])) for a in annotations}

        if len(task_ids) <= 20:
            return {tid: keys(self.client.get_json(f"/api/tasks/{tid}/annotations/")) for tid in task_ids}
        return {int(t["id"]): keys(t.get("annotations") or ()) for t in self._export_tasks(self._project_id())
                if int(t["id"]) in task_ids}

    def source_schema(self) -> kit.LabelSchema | None:
        """What the project's label config asks for (``<Labels>`` -> a span task, ``<Choices>`` -> textcat)."""
        return self.label_config().schema()

    # -- import ----------------------------------------------------------------------------------
    def _result_items(self, pred: kit.Prediction | kit.Annotation, text: str, where: str) -> list[dict[str, Any]]:
        """Label Studio result items for a prediction; refuses labels the project's config lacks."""
        config = self.label_config()
        obj_name, _key = config.text_object()
        items: list[dict[str, Any]] = []
        for span in pred.spans:
            control = config.span_control_for(span.label)
            if not (0 <= span.start < span.end <= len(text)):
                raise kit.SchemaError(f"{where}: span {span.start}-{span.end} is outside the text ({len(text)} chars).")
            item: dict[str, Any] = {
                "from_name": control.name, "to_name": control.to_name or obj_name, "type": control.tag,
                "value": {"start": span.start, "end": span.end, "text": text[span.start:span.end],
                          "labels": [span.label]},
            }
            if span.score is not None:
                item["score"] = float(span.score)
            items.append(item)
        if pred.categories:
            by_control: dict[str, list[tuple[str, float]]] = {}
            for label, prob in pred.categories.items():
                control = config.choice_control_for(label)
                by_control.setdefault(control.name, []).append((label, float(prob)))
            for name, probs in by_control.items():
                control = config.controls[name]
                if control.multiple:
                    chosen = [(lab, p) for lab, p in probs if p >= 0.5]
                else:
                    chosen = [max(probs, key=lambda x: x[1])]
                if not chosen:
                    continue
                items.append({
                    "from_name": control.name, "to_name": control.to_name or obj_name, "type": control.tag,
                    "value": {"choices": [lab for lab, _ in chosen]},
                    "score": min(p for _, p in chosen),
                })
        return items

    @staticmethod
    def _task_score(pred: kit.Prediction) -> float | None:
        """Per-task score: the prediction's own, else the least confident region (what uncertainty sampling wants:
        the lowest score is served first)."""
        if pred.score is not None:
            return float(pred.score)
        scores = [s.score for s in pred.spans if s.score is not None]
        if pred.categories:
            scores.append(max(pred.categories.values()))
        return float(min(scores)) if scores else None

    def _prediction_json(self, doc: kit.Document, pred: kit.Prediction) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model_version": pred.model_version,
            "result": self._result_items(pred, doc.text, f"document {doc.id!r}"),
        }
        score = self._task_score(pred)
        if score is not None:
            body["score"] = score
        return body

    def _task_json(self, doc: kit.Document, pred: kit.Prediction | None) -> dict[str, Any]:
        _obj, key = self.label_config().text_object()
        task: dict[str, Any] = {"data": {key: doc.text, ID_KEY: doc.id}}
        if doc.meta:
            task["meta"] = doc.meta
        if pred is not None:
            task["predictions"] = [self._prediction_json(doc, pred)]
        inline = self._inline_annotations.get(doc.id)
        if inline:
            task["annotations"] = inline
        return task

    def find_tasks(self, doc_ids: Iterable[str]) -> dict[str, int]:
        """Map annobridge document ids to task ids (ids not in the project are left out)."""
        found: dict[str, int] = {}
        for batch in kit.batches_by_encoded_size(dict.fromkeys(doc_ids), budget=24_000):
            # Batched by encoded size: the ids travel in the query string, which the server caps at 64 KiB.
            query = {"filters": {"conjunction": "and", "items": [
                {"filter": f"filter:tasks:data.{ID_KEY}", "operator": "in_list", "type": "String", "value": batch}]}}
            for task in self._tasks({"include": "id,data", "query": json.dumps(query)}, 1000):
                doc_id = (task.get("data") or {}).get(ID_KEY)
                if doc_id is not None:
                    found.setdefault(str(doc_id), int(task["id"]))
        return found

    def _tasks(self, params: dict[str, Any], page_size: int) -> Iterator[dict[str, Any]]:
        """The project's tasks through ``/api/tasks/`` (page numbers; 404 past the last page)."""
        pages = self.client.pages_numbered("/api/tasks/", params={"project": self._project_id(), **params},
                                           page_size=page_size, items="tasks")
        return self.client.iter_items(pages)

    def write_documents(self, items: Iterator[tuple[kit.Document, kit.Prediction | None]], *,
                        schema: kit.LabelSchema | None = None) -> kit.ImportResult:
        pid = self._project_id()
        empty = not self.count()  # a new project needs no look-up of what is there
        result = kit.ImportResult()
        model_versions: dict[str, None] = {}  # in the order met: the last one becomes the project's
        for chunk in kit.batched(items, self.chunk_size):
            model_versions.update((pred.model_version, None) for _doc, pred in chunk if pred is not None)
            result.merge(self._import_chunk(pid, chunk, check_existing=not empty))
        if model_versions:
            self._set_model_version(list(model_versions)[-1])
        return result

    def _import_chunk(self, pid: int, chunk: list[tuple[kit.Document, kit.Prediction | None]], *, check_existing: bool
                      ) -> kit.ImportResult:
        result = kit.ImportResult()
        todo = chunk
        if check_existing:
            existing = self.find_tasks(doc.id for doc, _ in chunk)
            result.existing += len(existing)
            result.native_ids.update(existing)
            todo = [(doc, pred) for doc, pred in chunk if doc.id not in existing]
        from annobridge.http import Rejection, isolate_rejected

        # the task JSON is built for the whole chunk first: it validates labels before anything is sent
        tasks = {doc.id: self._task_json(doc, pred) for doc, pred in todo}

        def send(batch: Sequence[tuple[kit.Document, kit.Prediction | None]]) -> Rejection | None:
            pending = list(batch)
            for _attempt in range(5):
                if not pending:
                    return None
                ids = [doc.id for doc, _ in pending]
                try:
                    resp = self.client.request(
                        "POST", f"/api/projects/{pid}/import", params={"return_task_ids": "true"},
                        json=[tasks[i] for i in ids], ok=(400, 413), reconcile=lambda ids=ids: self.find_tasks(ids))
                except kit.AmbiguousWrite as exc:
                    if exc.reconcile_error is not None:
                        raise
                    # The server may have stored the batch (or part of it) before failing: the reconcile hook
                    # asked which documents are there now; send only the others.
                    there: dict[str, int] = exc.reconciled
                    result.created += len(there)
                    result.native_ids.update(there)
                    pending = [(doc, pred) for doc, pred in pending if doc.id not in there]
                    continue
                if resp.status_code in (400, 413):  # a task the server refuses (or a body too large for it)
                    return Rejection(self.client.reason(resp))
                task_ids = resp.json().get("task_ids") or []
                result.created += len(pending)
                if len(task_ids) == len(pending):
                    result.native_ids.update({d.id: int(t) for (d, _), t in zip(pending, task_ids, strict=True)})
                return None
            return Rejection("the import request kept failing", tuple(range(len(batch))))  # no halving: fail them

        for (doc, _pred), reason in isolate_rejected(todo, send):
            result.failed.append((doc.id, reason))
        return result

    def _set_model_version(self, model_version: str) -> None:
        """Make the newest model the project's, so task scores and uncertainty sampling use its predictions."""
        body: dict[str, Any] = {"model_version": model_version}
        if self.set_sampling:
            body["sampling"] = UNCERTAINTY
        self.client.request("PATCH", f"/api/projects/{self._project_id()}/", json=body, idempotent=True)

    def push_predictions(self, items: Iterable[tuple[kit.Document, kit.Prediction]]) -> kit.ImportResult:
        """Add predictions in bulk; documents not in the project are imported with theirs inline.

        A task that already has a prediction of the same ``model_version`` is counted as existing, so a re-run
        adds nothing twice.
        """
        pid = self._project_id()
        result = kit.ImportResult()
        model_versions: dict[str, None] = {}  # in the order met: the last one becomes the project's
        for batch in kit.batched(items, self.chunk_size):
            model_versions.update((pred.model_version, None) for _doc, pred in batch)
            tasks = self.find_tasks(doc.id for doc, _ in batch)
            have = self._prediction_versions(list(tasks.values()), {p.model_version for _, p in batch})
            missing = [(doc, pred) for doc, pred in batch if doc.id not in tasks]
            if missing:
                sub = self._import_chunk(pid, list(missing), check_existing=False)
                result.merge(sub)
            body = []
            for doc, pred in batch:
                tid = tasks.get(doc.id)
                if tid is None:
                    continue
                if pred.model_version in have.get(tid, ()):
                    result.existing += 1
                    continue
                body.append({"task": tid, **self._prediction_json(doc, pred)})
                result.native_ids[doc.id] = tid
            if body:
                self._post_predictions(pid, body)
                result.created += len(body)
        if model_versions:
            self._set_model_version(list(model_versions)[-1])
        return result

    def _tasks_with_version(self, task_ids: list[int], model_version: str) -> set[int]:
        """Which of ``task_ids`` already hold a prediction of ``model_version``."""
        found: set[int] = set()
        for ids in kit.batched(task_ids, 400):
            # The value must be a list: a plain string is matched per character and selects every task.
            query = {"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
                 "value": [model_version]},
                {"filter": "filter:tasks:id", "operator": "in_list", "type": "Number", "value": ids},
            ]}}
            found.update(int(t["id"]) for t in self._tasks({"include": "id", "query": json.dumps(query)}, 1000))
        return found

    def _prediction_versions(self, task_ids: list[int], model_versions: Iterable[str]) -> dict[int, set[str]]:
        versions: dict[int, set[str]] = {}
        for mv in set(model_versions):
            for tid in self._tasks_with_version(task_ids, mv):
                versions.setdefault(tid, set()).add(mv)
        return versions

    def _post_predictions(self, pid: int, body: list[dict[str, Any]]) -> None:
        def landed() -> dict[int, set[str]]:
            return self._prediction_versions([int(p["task"]) for p in body], {p["model_version"] for p in body})

        try:
            self.client.request("POST", f"/api/projects/{pid}/import/predictions", json=body, reconcile=landed)
        except kit.AmbiguousWrite as exc:
            if exc.reconcile_error is not None:
                raise
            # Send again only to tasks that did not get this model version.
            have: dict[int, set[str]] = exc.reconciled
            rest = [p for p in body if p["model_version"] not in have.get(int(p["task"]), set())]
            if rest:
                self.client.request("POST", f"/api/projects/{pid}/import/predictions", json=rest)

    # -- pull ----------------------------------------------------------------------------------------
    def _user_name(self, completed_by: Any) -> str:
        if isinstance(completed_by, dict):
            return str(completed_by.get("email") or completed_by.get("id"))
        if completed_by is None:
            return "unknown"
        if self._users is None:
            self._users = {}
            try:
                for user in self._user_list():
                    self._users[int(user["id"])] = str(user.get("email") or user["id"])
            except kit.AdapterError:
                pass  # annotators then show as their numeric ids
        return self._users.get(int(completed_by), str(completed_by))

    def _doc_id(self, task: dict[str, Any]) -> str:
        data = task.get("data") or {}
        value = data.get(ID_KEY)
        if value is None:
            value = data.get("doc_id", data.get("id"))
        return str(value) if value is not None else f"ls-task-{task.get('id')}"

    def _convert_results(self, results: list[Any], text: str, where: str, note_repairs: list[str],
                         prediction: bool = False, doc_id: str = ""
                         ) -> tuple[list[kit.Span], dict[str, float], list[Any]]:
        """Spans (checked against the text, repairs noted), categories and unmapped items of one result list.

        A span that cannot be kept or had to be repaired is noted with :meth:`note_span` (for annotations: the
        export counts it); it never makes the record count as skipped.
        """
        config = self.label_config()
        spans: list[kit.Span] = []
        categories: dict[str, float] = {}
        other: list[Any] = []
        for n, item in enumerate(results or []):
            if not isinstance(item, dict):
                other.append(item)
                continue
            kind = str(item.get("type", "")).lower()
            value = item.get("value") or {}
            score = item.get("score")
            if kind in ("labels", "hypertextlabels", "paragraphlabels") and "start" in value:
                for label in value.get("labels") or []:
                    try:
                        span = kit.Span(int(value["start"]), int(value["end"]), str(label),
                                    score=float(score) if score is not None else None, text=value.get("text"))
                    except (TypeError, ValueError, KeyError):
                        self._span_note(doc_id, "dropped", "span without usable offsets",
                                        f"{where} result {n}: {value!r}"[:200], prediction)
                        continue
                    checked = kit.check_span(text, span)
                    if checked.span is None:
                        self._span_note(doc_id, "dropped", str(checked.note),
                                        f"{where} result {n}: span {span.start}-{span.end} {label}", prediction)
                        continue
                    if checked.note:
                        note = f"span {span.start}-{span.end} {label}: {checked.note}"
                        note_repairs.append(note)
                        self.repaired.append((where, note))
                        self._span_note(doc_id, "adjusted", checked.note, where, prediction)
                    spans.append(checked.span)
            elif kind in ("choices", "taxonomy"):
                control = config.controls.get(str(item.get("from_name")))
                chosen = [c if isinstance(c, str) else "/".join(map(str, c)) for c in value.get("choices") or []]
                if control is not None and control.is_choice:
                    for label in control.labels:
                        categories.setdefault(label, 0.0)
                for label in chosen:
                    categories[label] = float(score) if prediction and score is not None else 1.0
            else:
                other.append(item)
        return spans, categories, other

    def _span_note(self, doc_id: str, kind: str, why: str, where: str, prediction: bool) -> None:
        """``why`` is the reason the export counts by; ``where`` the detail kept in :attr:`repaired`."""
        # Prediction spans are not training data: what happened to them stays in `repaired`, out of the counts.
        if prediction:
            if kind == "dropped":
                self.repaired.append((where, f"prediction span dropped: {why}"))
            return
        if kind == "dropped":
            self.repaired.append((where, f"span dropped: {why}"))
        self.note_span(doc_id, kind, why)

    def _annotation(self, raw: dict[str, Any], text: str, where: str, doc_id: str = "") -> kit.Annotation:
        repairs: list[str] = []
        spans, categories, other = self._convert_results(raw.get("result") or [], text, where, repairs,
                                                         doc_id=doc_id)
        meta: dict[str, Any] = {}
        if raw.get("lead_time") is not None:
            meta["lead_time"] = raw["lead_time"]
        if repairs:
            meta["offsets_repaired"] = repairs
        if other:
            meta["unmapped_results"] = other
        native: dict[str, Any] = {"annotation_id": raw.get("id")}
        completed_by = raw.get("completed_by")
        if completed_by is not None:
            native["user_id"] = completed_by.get("id") if isinstance(completed_by, dict) else completed_by
        return kit.Annotation(
            annotator=self._user_name(completed_by),
            spans=spans,
            categories=categories,
            answer=kit.Answer.SKIP if raw.get("was_cancelled") else kit.Answer.ACCEPT,
            ground_truth=bool(raw.get("ground_truth")),
            created_at=kit.as_datetime(raw.get("created_at")),
            updated_at=kit.as_datetime(raw.get("updated_at")),
            native_ids=native,
            meta=meta,
        )

    def _prediction(self, raw: Any, text: str, where: str) -> kit.Prediction | None:
        if not isinstance(raw, dict):  # an id only (easy export); nothing to map
            return None
        repairs: list[str] = []
        spans, categories, _other = self._convert_results(raw.get("result") or [], text, where, repairs,
                                                          prediction=True, doc_id=where)
        return kit.Prediction(
            model_version=str(raw.get("model_version") or ""),
            spans=spans,
            categories=categories,
            score=raw.get("score"),
            created_at=kit.as_datetime(raw.get("created_at")),
            native_ids={"prediction_id": raw.get("id")},
        )

    def _record(self, task: dict[str, Any]) -> kit.Record | None:
        _obj, key = self.label_config().text_object()
        data = task.get("data") or {}
        where = f"task {task.get('id')}"
        text = data.get(key)
        if not isinstance(text, str):
            self.skip(where, f"task data has no text under {key!r}")
            return None
        meta = dict(task.get("meta") or {}) if isinstance(task.get("meta"), dict) else {}
        for k, v in data.items():
            if k not in (key, ID_KEY):
                meta.setdefault(k, v)
        record = kit.Record(kit.Document(self._doc_id(task), text, meta),
                        native_ids={"task_id": task.get("id"), "project_id": self._project_id()})
        for raw in task.get("annotations") or []:
            if isinstance(raw, dict):
                record.annotations.append(
                    self._annotation(raw, text, f"{where} annotation {raw.get('id')}", record.id))
        for raw in task.get("predictions") or []:
            pred = self._prediction(raw, text, f"{where} prediction")
            if pred is not None:
                record.predictions.append(pred)
        return record

    def server_version(self) -> str | None:
        body = self.client.get_json("/api/version")
        release = body.get("release") if isinstance(body, dict) else None
        return f"label-studio {release}" if release else None

    def pull(self, *, answers: Collection[kit.Answer] | None = None, since: Any = None) -> Iterator[kit.Record]:
        self.span_notes.clear()  # the notes are those of the latest pull
        self.deleted = []
        self.repaired = []
        self.resumed = 0
        pid = self._project_id()
        # Changes made while this pull runs must show up next time: the watermark is taken before reading, with
        # slack for the HTTP date's one-second resolution; the seen map keeps them from being yielded twice.
        watermark = self.client.server_time("/api/version") - timedelta(seconds=2)
        ledger = kit.AnnotationLedger.resume(since, owner=pid)  # annotations keyed by native_ids["annotation_id"]
        tasks = self._export_tasks(pid) if since is None else self._changed_tasks(pid, ledger.since)
        listing = ((str(task.get("id")), self._record(task)) for task in tasks)
        for record in ledger.changes(listing, answers, deleted_id=int):
            self.deleted.extend((record.id, x) for x in record.native_ids.get("deleted_annotation_ids", ()))
            yield record
        self.cursor = ledger.cursor(watermark, owner=pid)

    def _export_tasks(self, pid: int) -> Iterator[dict[str, Any]]:
        """All tasks, from a snapshot export: created once, then downloaded and parsed as a stream.

        If the connection drops mid-download (server restart), the download starts again and skips the tasks
        already yielded: the snapshot file does not change, so its order is stable.
        """
        resp = self.client.request("POST", f"/api/projects/{pid}/exports/", json={
            "title": "annobridge pull",
            # Full predictions (the plain export gives bare ids); annotators as ids, resolved to emails with one
            # /api/users/ call, which is cheaper for the server than one user object per annotation.
            "serialization_options": {"predictions": {"only_id": False}, "drafts": {"only_id": True},
                                      "annotations__completed_by": {"only_id": True}},
            "task_filter_options": {"only_with_annotations": False},
            "annotation_filter_options": {"usual": True, "ground_truth": True, "skipped": True},
        }, idempotent=True)  # a second snapshot after a retried create costs time, not correctness
        eid = resp.json()["id"]
        export = kit.poll_until(lambda: self.client.get_json(f"/api/projects/{pid}/exports/{eid}"),
                                lambda e: e.get("status") in ("completed", "failed"), initial=resp.json(),
                                timeout=3600, message=f"Label Studio export {eid} did not finish within an hour.")
        if export.get("status") == "failed":
            raise kit.AdapterError(f"Label Studio export {eid} of project {pid} failed on the server.")
        def resumed(_exc: Exception) -> None:
            self.resumed += 1

        try:
            yield from self.client.stream_json_array(
                "GET", f"/api/projects/{pid}/exports/{eid}/download", params={"exportType": "JSON"},
                what="Label Studio's export", on_resume=resumed)
        finally:
            # The snapshot file is only a means; do not let pulls pile them up on the server.
            try:
                self.client.request("DELETE", f"/api/projects/{pid}/exports/{eid}", ok=(404,))
            except kit.AdapterError:
                pass

    def _changed_tasks(self, pid: int, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Tasks whose ``updated_at`` is after ``since``, in id order (stable while tasks change)."""
        items = []
        if since is not None:
            items.append({"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
                          "value": kit.utc_iso(since)})
        query = json.dumps({"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:id"]})
        yield from self._tasks({"fields": "all", "query": query}, self.page_size)


@kit.hookimpl
def register_adapters(register: Any) -> None:
    register(LabelStudioAdapter)


def _regions_key(regions: Iterable[dict[str, Any]]) -> tuple[tuple[Any, ...], ...]:
    """What an annotation says, independent of region ids and order: (control, start, end, labels/choices)."""
    out = []
    for item in regions:
        value = item.get("value") or {}
        labels = value.get("labels") or value.get("choices") or []
        out.append((item.get("from_name"), value.get("start"), value.get("end"), tuple(sorted(map(str, labels)))))
    return tuple(sorted(out, key=repr))
