"""``doccano://HOST:PORT/projects/ID`` - doccano 1.8 over its REST API (httpx, no doccano-client).

How doccano's behaviour shapes this adapter (measured against doccano 1.8.4):

* Auth is a token from ``/v1/auth/login/``; cookies are dropped after every response because a
  kept ``sessionid`` makes DRF use session auth and then every write fails CSRF.
* Bulk import is file upload (``/v1/fp/process/``) + an import Celery task polled to the end; one
  POST per example is ~60x slower. Lines are validated here first because doccano silently drops
  bad spans, and inconsistent meta keys fail a whole file: every line carries the same keys
  (``annobridge_id``, ``annobridge_meta``, ``annobridge_prediction``, each a string).
* Label offsets in doccano are what its UI writes: UTF-16 code units (``grapheme_mode`` off). The
  adapter writes UTF-16 and converts back to code points, so pre-annotations line up in the UI.
* Pre-annotations are labels owned by the importing account. Annotators only see them in
  collaborative projects, so predictions into a non-collaborative project are refused unless
  ``private_predictions=true``. The prediction itself (model version, scores, code-point spans)
  is also kept in the example's meta, so it survives annotators editing the labels.
* Full pulls read doccano's export (per-member files in non-collaborative projects). Collaborative
  exports lose who made which label, so examples that humans touched are read one by one.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import time
import zipfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from annobridge.kit import (
    Adapter,
    AdapterConfig,
    AdapterError,
    AdapterOptions,
    AdapterURL,
    AmbiguousWrite,
    Annotation,
    Answer,
    Capabilities,
    DigestCursor,
    Document,
    ImportResult,
    LabelSchema,
    Lookup,
    Prediction,
    Record,
    ReviewItem,
    SchemaError,
    Span,
    TaskKind,
    UsageError,
    as_datetime,
    batched,
    check_span,
    codepoint_to_utf16,
    digest,
    filter_answers,
    has_astral,
    hookimpl,
    import_missing,
    parallel_map,
    read_spans,
    since_datetime,
    utf16_to_codepoint,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

KEY_ID = "annobridge_id"
KEY_META = "annobridge_meta"
KEY_PRED = "annobridge_prediction"
#: keys doccano's export puts next to the example's meta
EXPORT_KEYS = {"id", "text", "label", "Comments", "entities", "relations"}
#: documents per uploaded file / import task
IMPORT_CHUNK = 20_000
#: up to this many confirmed examples are listed through the examples API (~400/s) rather than by an export task
CONFIRMED_BY_API = 1000
#: per-example reads in flight. doccano's gunicorn serves a few requests at a time (2 workers x 2 threads in
#: annobridge's test server; `doccano webserver` starts 2 x cores + 1 workers) and each read costs it ~3-5 ms:
#: more in flight than that only queue, fewer leave workers idle
READ_WORKERS = 8
#: per-example writes in flight (SQLite serialises doccano's writes: more only queue)
WRITE_WORKERS = 4
#: an export task (start, Celery pick-up, poll, download) costs about as much as this many single reads
EXPORT_COST_READS = 400
PALETTE = ["#2E86DE", "#E67E22", "#27AE60", "#C0392B", "#8E44AD", "#16A085", "#D35400", "#2C3E50", "#F1C40F"]

SEQ = "SequenceLabeling"
CLS = "DocumentClassification"


@dataclass
class _Project:
    id: int
    project_type: str
    collaborative: bool
    allow_overlapping: bool
    grapheme_mode: bool
    single_class: bool
    name: str

    @property
    def label_path(self) -> str:
        return "spans" if self.project_type == SEQ else "categories"

    @property
    def type_path(self) -> str:
        return "span-types" if self.project_type == SEQ else "category-types"


@dataclass
class _ExportRow:
    example_id: int
    text: str
    raw: dict[str, Any]
    labels: list[Any]


class DoccanoOptions(AdapterOptions):
    """The URL's query options (``?collaborative=true``), or the same keys in ``[doccano]`` of the config file."""

    name: str | None = Field(None, description="the project's name, for projects/new (found again by it)")
    collaborative: bool = Field(False, description="new project with shared labels (annotators see predictions)")
    overlapping: bool | None = Field(None, description="new span project allows overlaps (default: task spans)")
    annotators: str | None = Field(None, description="comma-separated usernames added as annotators")
    private_predictions: bool = Field(False, description="allow predictions into a non-collaborative project")
    threshold: float = Field(0.5, ge=0, le=1, description="multi-label predictions at or above it are pre-selected")
    score_field: bool | None = Field(None, description="set the example's score (default: no on import, yes on push)")
    confirmed: Literal["all", "only"] = Field("all", description="only: pull keeps only confirmed annotations")
    task_timeout: float = Field(900, gt=0, description="seconds to wait for an import/export task")
    retry_for: float = Field(120, ge=0, description="seconds to keep retrying a server that answered before")
    exact: bool = Field(False, description="incremental pulls always diff against an export")


class DoccanoAdapter(Adapter):
    scheme = "doccano"
    description = "doccano 1.8 server over REST (token auth, bulk import, export-based pull)"
    url_example = "doccano://127.0.0.1:8000/projects/1"
    # an admin cannot label as another user in doccano: each user's labels need that user's own session
    capabilities = Capabilities.all_except("write_annotations")  # the contract suite checks each claim
    Options = DoccanoOptions

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, config)
        project = url.match_path(r"projects/(\d+|new)", "doccano://HOST:PORT/projects/ID, or "
                                 "doccano://HOST:PORT/projects/new?name=NAME to create one").group(1)
        self.project_id: int | None = None if project == "new" else int(project)
        self.new_name: str | None = self.options.name if project == "new" else None
        if project == "new" and not self.new_name:
            raise UsageError("doccano://HOST:PORT/projects/new needs ?name=PROJECT_NAME")
        username = self.config.get("username", env="DOCCANO_USERNAME")
        password = self.config.secret("password", env="DOCCANO_PASSWORD")
        if not username or not password:
            raise UsageError("doccano needs credentials: set DOCCANO_USERNAME and DOCCANO_PASSWORD (or [doccano] "
                             "username/password in the annobridge config file)")
        self.username = str(username)
        from .client import DoccanoClient  # the HTTP layer (httpx) is imported on first use

        self.client = DoccanoClient(
            self.config.server_url(url, env="DOCCANO_URL"),
            self.username,
            password,
            retry_for=self.options.retry_for,
            transport=transport,
            allow_http=url.transport == "http",
        )
        self.task_timeout = self.options.task_timeout
        self._project: _Project | None = None
        #: the project's label types, id -> text
        self.label_types: Lookup[int, str] = Lookup(lambda: {int(t["id"]): str(t["text"]) for t in self.client.get(
            f"/v1/projects/{self.project().id}/{self.project().type_path}")})
        #: project members, user id -> username (project admins may read this, no staff rights needed)
        self.users: Lookup[int, str] = Lookup(lambda: {int(m["user"]): str(m["username"]) for m in self.client.get(
            f"/v1/projects/{self.project().id}/members")})

    def close(self) -> None:
        self.client.close()

    # -- project ---------------------------------------------------------------

    @property
    def project_url(self) -> str:
        return f"doccano://{self.url.host}:{self.url.port}/projects/{self.project_id}"

    def project(self, refresh: bool = False) -> _Project:
        if self.project_id is None:
            found = self._find_by_name(self.new_name or "")
            if found is None:
                raise UsageError(f"No doccano project named {self.new_name!r} yet: create it with ensure_project / "
                                 "`annobridge import ... --task ...`")
            self.project_id = found
        if self._project is None or refresh:
            data = self.client.get(f"/v1/projects/{self.project_id}")
            self._project = _Project(
                id=int(data["id"]),
                project_type=str(data["project_type"]),
                collaborative=bool(data.get("collaborative_annotation")),
                allow_overlapping=bool(data.get("allow_overlapping")),
                grapheme_mode=bool(data.get("grapheme_mode")),
                single_class=bool(data.get("single_class_classification")),
                name=str(data.get("name", "")),
            )
            if self._project.project_type not in (SEQ, CLS):
                raise SchemaError(f"doccano project {self.project_id} is a {self._project.project_type} project; "
                                  "annobridge handles SequenceLabeling and DocumentClassification")
        return self._project

    def _find_by_name(self, name: str) -> int | None:
        data = self.client.get("/v1/projects", q=name, limit=1000)
        for item in data.get("results", data if isinstance(data, list) else []):
            if item.get("name") == name:
                return int(item["id"])
        return None

    def ensure_project(self, schema: LabelSchema) -> str:
        """Create (``projects/new?name=``) or check the project for ``schema``; add missing labels.

        URL options for a new project: ``collaborative=true`` (shared labels, needed for annotators to see
        pre-annotations), ``overlapping=true|false`` (default: true for ``spans``), ``annotators=a,b`` (added
        as members with the annotator role). Returns ``doccano://HOST:PORT/projects/ID``.
        """
        if self.project_id is None:
            assert self.new_name is not None
            self.project_id = self._find_by_name(self.new_name)
            if self.project_id is None:
                self.project_id = self._create_project(self.new_name, schema)
        project = self.project(refresh=True)
        want_type = SEQ if schema.task.is_span_task else CLS
        if project.project_type != want_type:
            raise SchemaError(f"doccano project {project.id} is {project.project_type}; task {schema.task.value} "
                              f"needs {want_type}")
        if want_type == CLS and project.single_class != (schema.task == TaskKind.TEXTCAT):
            kind = "single-label" if project.single_class else "multi-label"
            raise SchemaError(f"doccano project {project.id} is {kind}; task {schema.task.value} does not match")
        if schema.task == TaskKind.SPANS and not project.allow_overlapping:
            raise SchemaError(
                f"doccano project {project.id} does not allow overlapping spans, which task 'spans' needs"
            )
        self._ensure_labels(schema.labels)
        annotators = self.options.annotators
        if annotators:
            self.add_members([a.strip() for a in str(annotators).split(",") if a.strip()])
        return self.project_url

    def _create_project(self, name: str, schema: LabelSchema) -> int:
        body: dict[str, Any] = {
            "name": name,
            "description": f"created by annobridge for task {schema.task.value}",
            "collaborative_annotation": self.options.collaborative,
            "random_order": False,
        }
        if schema.task.is_span_task:
            overlapping = self.options.overlapping
            body.update(
                project_type=SEQ,
                resourcetype="SequenceLabelingProject",
                allow_overlapping=schema.allows_overlap if overlapping is None else overlapping,
                # offsets stay UTF-16 code units (what the UI counts), which this adapter converts
                grapheme_mode=False,
                use_relation=False,
            )
        else:
            body.update(
                project_type=CLS,
                resourcetype="TextClassificationProject",
                single_class_classification=schema.task == TaskKind.TEXTCAT,
            )
        # Project creation is not idempotent; a lost answer is resolved by looking the name up again.
        try:
            data = self.client.post("/v1/projects", body, reconcile=lambda: self._find_by_name(name))
        except AmbiguousWrite as exc:
            if exc.reconciled is None:
                raise
            return int(exc.reconciled)
        return int(data["id"])

    def _ensure_labels(self, labels: Iterable[str]) -> None:
        project = self.project()
        have = set(self.label_types(refresh=True).values())
        for index, label in enumerate(labels):
            if label in have:
                continue
            body = {"text": label, "background_color": PALETTE[index % len(PALETTE)], "text_color": "#ffffff"}
            try:
                self.client.post(f"/v1/projects/{project.id}/{project.type_path}", body)
            except AmbiguousWrite:
                pass  # an ambiguous create is checked below
        have = set(self.label_types(refresh=True).values())
        missing = [lab for lab in labels if lab not in have]
        if missing:
            raise AdapterError(f"doccano did not create label types {missing}")

    def add_members(self, usernames: Iterable[str], role: str = "annotator") -> None:
        project = self.project()
        roles = {r["name"]: int(r["id"]) for r in self.client.get("/v1/roles")}
        if role not in roles:
            raise UsageError(f"Unknown doccano role {role!r}: one of {sorted(roles)}")
        members = set(self.users(refresh=True).values())
        for name in usernames:
            if name in members:
                continue
            matches = [u for u in self.client.get("/v1/users", q=name) if u.get("username") == name]
            if not matches:
                raise UsageError(f"No doccano user {name!r}")
            try:
                self.client.post(f"/v1/projects/{project.id}/members", {"user": matches[0]["id"], "role": roles[role]})
            except AmbiguousWrite:
                pass  # an ambiguous add is checked by the members read below
        self.users(refresh=True)

    def push_review(self, items: Iterable[ReviewItem], *, schema: LabelSchema) -> ImportResult:
        """doccano has no predictions to show beside a reviewer's labels (pre-labels become the importing
        user's own labels): the documents go in with each annotator's version in their metadata
        (``annobridge_review``), which doccano's annotation page shows; the reviewer labels from scratch."""
        return self.import_documents([item.document for item in items], schema=schema)

    def set_annotators_per_doc(self, n: int) -> str:
        raise UsageError(
            "doccano has no setting for how many annotators label each document: every project member sees "
            "every example (collaborative_annotation only decides whether they see each other's labels). "
            "Add exactly the members who should annotate, or split the corpus over several projects."
        )

    def count(self) -> int | None:
        data = self.client.get(f"/v1/projects/{self.project().id}/examples", limit=1)
        return int(data["count"])

    def source_schema(self) -> LabelSchema | None:
        """What the project asks for: sequence labelling -> ner (spans if overlapping is allowed), document
        classification -> textcat (single class) or textcat_multilabel; the labels are its label types."""
        project = self.project()
        labels = sorted(self.label_types().values())
        if project.project_type == SEQ:
            return LabelSchema(TaskKind.SPANS if project.allow_overlapping else TaskKind.NER, labels)
        return LabelSchema(TaskKind.TEXTCAT if project.single_class else TaskKind.TEXTCAT_MULTILABEL, labels)

    # -- export ----------------------------------------------------------------

    def _export(self, confirmed_only: bool) -> dict[str, list[dict[str, Any]]]:
        """Run doccano's JSONL export; returns file stem (``all`` or a username) -> rows."""
        project = self.project()
        body = {"format": "JSONL", "exportApproved": confirmed_only}
        # Starting an export twice is harmless, so a lost answer may be retried.
        task = self.client.post(f"/v1/projects/{project.id}/download", body, idempotent=True)
        self.client.wait_task(str(task["task_id"]), timeout=self.task_timeout, what="export")
        response = self.client.request(
            "GET", f"/v1/projects/{project.id}/download", params={"taskId": task["task_id"]}, headers={"Accept": "*/*"}
        )
        files: dict[str, list[dict[str, Any]]] = {}
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            for name in archive.namelist():
                if not name.endswith(".jsonl"):
                    continue
                rows = []
                for lineno, line in enumerate(archive.read(name).decode("utf-8").splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        self.skip(f"export {name}:{lineno}", f"invalid JSON from doccano ({exc.msg})")
                files[name.rsplit("/", 1)[-1][: -len(".jsonl")]] = rows
        return files

    def _existing(self) -> dict[str, _ExportRow]:
        """Examples now in the project, by annobridge document id."""
        if not self.count():
            return {}
        files = self._export(confirmed_only=False)
        rows = next(iter(files.values()), [])
        out: dict[str, _ExportRow] = {}
        for raw in rows:
            row = _row(raw)
            out.setdefault(_doc_id(raw), row)
        return out

    # -- import ----------------------------------------------------------------

    def _to_units(self, text: str, offset: int) -> int:
        return codepoint_to_utf16(text, offset)

    def _from_units(self, text: str, offset: int) -> int | None:
        if self.project().grapheme_mode and not text.isascii():
            return None
        return utf16_to_codepoint(text, offset) if has_astral(text) else offset

    def _prediction_labels(self, doc: Document, pred: Prediction, known: set[str]) -> tuple[list[Any], Prediction]:
        """Validate ``pred`` against the text and project; returns the import ``label`` value (doccano units)."""
        project = self.project()
        if project.project_type == SEQ:
            if pred.categories:
                raise ValueError("prediction has categories but the project is sequence labelling")
            spans: list[Span] = []
            for span in pred.spans:
                if span.label not in known:
                    raise ValueError(f"label {span.label!r} is not in the project")
                checked = check_span(doc.text, span)
                if checked.span is None:
                    raise ValueError(f"span {span.start}-{span.end} {span.label}: {checked.note}")
                spans.append(checked.span)
            spans.sort(key=lambda s: (s.start, s.end))
            if not project.allow_overlapping:
                for a, b in itertools.pairwise(spans):
                    if b.start < a.end:
                        raise ValueError(f"spans {a.start}-{a.end} and {b.start}-{b.end} overlap, which the project "
                                         "does not allow (doccano would drop one silently)")
            pred = Prediction(pred.model_version, spans, dict(pred.categories), pred.score, pred.created_at)
            label = [[self._to_units(doc.text, s.start), self._to_units(doc.text, s.end), s.label] for s in spans]
            return label, pred
        if pred.spans:
            raise ValueError("prediction has spans but the project is text classification")
        unknown = [c for c in pred.categories if c not in known]
        if unknown:
            raise ValueError(f"labels {unknown} are not in the project")
        return self._chosen(pred), pred

    def _chosen(self, pred: Prediction) -> list[str]:
        """The categories a prediction pre-selects: the top one (single class), or those at the threshold."""
        if self.project().single_class:
            return [max(pred.categories, key=lambda c: pred.categories[c])] if pred.categories else []
        return sorted(c for c, v in pred.categories.items() if v >= self.options.threshold)

    def write_documents(
        self, items: Iterator[tuple[Document, Prediction | None]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        # the core has ensured the project and refused duplicate ids and documents no tool can take
        pairs = list(items)
        project = self.project()
        predictions = {doc.id: pred for doc, pred in pairs if pred is not None}
        if predictions and not project.collaborative and not self.options.private_predictions:
            raise AdapterError(
                f"doccano project {project.id} is not collaborative, so annotators would not see the "
                "pre-annotations (they only see their own labels). Create the project with ?collaborative=true, "
                "or pass ?private_predictions=true to store them anyway."
            )
        result = ImportResult()
        if schema is not None and not schema.labels and predictions:
            # No labels pinned (e.g. `annobridge import --model ... --task ner` without --labels): take the
            # model's. With labels pinned, a label outside them fails its document below.
            seen = {s.label for p in predictions.values() for s in p.spans} | {
                c for p in predictions.values() for c in p.categories
            }
            self._ensure_labels(sorted(seen))
        known = set(self.label_types(refresh=True).values())
        valid: dict[str, tuple[Document, list[Any], Prediction | None]] = {}
        for doc, pred in pairs:
            if not doc.text.strip():
                result.failed.append((doc.id, "empty text (doccano rejects it)"))
                continue
            label: list[Any] = []
            if pred is not None:
                try:
                    label, pred = self._prediction_labels(doc, pred, known)
                except ValueError as exc:
                    result.failed.append((doc.id, f"bad prediction: {exc}"))
                    continue
            valid[doc.id] = (doc, label, pred)

        # Send what doccano lacks; after a lost answer (import_raw_lines has withdrawn the upload and waited),
        # diff against the server again.
        sent, created = import_missing(
            valid, lookup=lambda: {k: row.example_id for k, row in self._existing().items()},
            send=self._import_lines, tool="doccano")
        result.merge(sent)
        if bool(self.options.score_field):
            self._patch_scores({sent.native_ids[d]: p.score for d, (_doc, _l, p) in valid.items()
                                if p is not None and p.score is not None and d in created})
        return result

    def _wait_settled(self) -> None:
        """Wait until the example count stops moving (an import that was running has finished)."""
        readings: list[int] = []
        for _ in range(120):
            readings.append(self.count() or 0)
            if len(readings) >= 3 and len(set(readings[-3:])) == 1:
                return
            time.sleep(1.0)

    def _import_lines(self, pending: list[tuple[Document, list[Any], Prediction | None]]) -> list[tuple[str, str]]:
        """Upload one JSONL file and run doccano's import; returns (doc id, reason) for lines it rejected."""
        # Least certain first: doccano's UI serves examples in creation order (and `score` only orders the API).
        pending = sorted(pending, key=lambda item: (item[2] is None or item[2].score is None,
                                                    item[2].score if item[2] is not None and item[2].score else 0.0))
        failed: list[tuple[str, str]] = []
        # One file and task per chunk keeps uploads and doccano's in-memory parsing bounded.
        for number, chunk in enumerate(batched(pending, IMPORT_CHUNK), 1):
            lines = [
                json.dumps({
                    "text": doc.text,
                    "label": label,
                    KEY_ID: doc.id,
                    KEY_META: json.dumps(doc.meta, ensure_ascii=False, sort_keys=True),
                    KEY_PRED: json.dumps(pred.to_dict(), ensure_ascii=False) if pred is not None else "",
                }, ensure_ascii=False)
                for doc, label, pred in chunk
            ]
            by_line = {i + 1: doc.id for i, (doc, _l, _p) in enumerate(chunk)}
            for line, reason in self.import_raw_lines(lines):
                failed.append((by_line.get(line, f"line {line} of chunk {number}"), reason))
        return failed

    def import_raw_lines(self, lines: list[str], upload_name: str = "annobridge.jsonl") -> list[tuple[int, str]]:
        """Upload JSONL lines and import them; returns (line number, doccano's message) for rejected lines."""
        project = self.project()
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        # A temporary upload is harmless if repeated, so this may be retried.
        response = self.client.request(
            "POST", "/v1/fp/process/", files={"filepond": (upload_name, payload, "application/json")},
            headers={"Accept": "*/*"}, idempotent=True,
        )
        upload_id = response.text.strip()
        body = {"uploadIds": [upload_id], "format": "JSONL", "task": project.project_type,
                "column_data": "text", "column_label": "label",
                # doccano guesses the encoding with chardet otherwise, and mistakes UTF-8 emoji for cp1252
                "encoding": "utf_8"}
        try:
            task = self.client.post(f"/v1/projects/{project.id}/upload", body)
        except AmbiguousWrite:
            # The import task may be queued, running or done. Withdrawing the upload stops a task that has not
            # read it yet (204); 404 means doccano already consumed it. Either way the caller diffs again.
            self.client.request(
                "DELETE", "/v1/fp/revert/", content=upload_id.encode(),
                headers={"Content-Type": "text/plain", "Accept": "*/*"}, ok=(404,),
            )
            self._wait_settled()
            raise
        result = self.client.wait_task(str(task["task_id"]), timeout=self.task_timeout, what="import")
        failed: list[tuple[int, str]] = []
        for error in (result or {}).get("error", []):
            message = str(error.get("message", error))
            if message.startswith("Column label not found"):
                continue  # doccano says this for any file without labels: not an error
            failed.append((int(error.get("line") or 0), f"doccano rejected the line: {message}"))
        return failed

    def _patch_scores(self, scores: dict[int, float]) -> None:
        project = self.project()

        def patch(item: tuple[int, float]) -> None:
            self.client.request("PATCH", f"/v1/projects/{project.id}/examples/{item[0]}",
                                json={"score": item[1]}, idempotent=True)

        list(parallel_map(patch, scores.items(), workers=WRITE_WORKERS))

    # -- predictions on existing examples --------------------------------------

    def push_predictions(self, items: Iterable[tuple[Document, Prediction]]) -> ImportResult:
        """Import missing documents with their prediction; on existing ones replace the model's labels.

        Labels are replaced only where no human has touched the example (no other user's labels, not
        confirmed, model labels as last pushed); elsewhere only the prediction in the meta is updated.
        """
        project = self.project()
        if not project.collaborative and not self.options.private_predictions:
            raise AdapterError(f"doccano project {project.id} is not collaborative: annotators would not see the "
                               "pre-annotations (pass ?private_predictions=true to store them anyway)")
        pairs = {doc.id: (doc, pred) for doc, pred in items}
        existing = self._existing()
        result = ImportResult()
        new_docs = [doc for doc_id, (doc, _p) in pairs.items() if doc_id not in existing]
        if new_docs:
            result.merge(self.import_documents(new_docs, predictions={d.id: pairs[d.id][1] for d in new_docs}))
        known = set(self.label_types(refresh=True).values())
        me = self._me()
        todo = []
        for doc_id, (doc, pred) in pairs.items():
            row = existing.get(doc_id)
            if row is None:
                continue
            document = Document(doc_id, row.text, doc.meta)
            try:
                label, pred = self._prediction_labels(document, pred, known)
            except ValueError as exc:
                result.failed.append((doc_id, f"bad prediction: {exc}"))
                continue
            todo.append((row, label, pred))

        def apply(item: tuple[_ExportRow, list[Any], Prediction]) -> tuple[str, str | None]:
            row, label, pred = item
            doc_id = _doc_id(row.raw)
            try:
                self._replace_model_labels(row, label, pred, me)
            except AdapterError as exc:
                return doc_id, str(exc)
            return doc_id, None

        for doc_id, error in parallel_map(apply, todo, workers=WRITE_WORKERS):
            if error:
                result.failed.append((doc_id, error))
            else:
                result.existing += 1
                result.native_ids[doc_id] = existing[doc_id].example_id
        return result

    def _me(self) -> int:
        return int(self.client.get("/v1/me")["id"])

    def _replace_model_labels(self, row: _ExportRow, label: list[Any], pred: Prediction, me: int) -> None:
        project = self.project()
        base = f"/v1/projects/{project.id}/examples/{row.example_id}"
        detail = self.client.get(base)
        meta = dict(detail.get("meta") or {})
        old_pred = meta.get(KEY_PRED) or ""
        meta[KEY_PRED] = json.dumps(pred.to_dict(), ensure_ascii=False)
        current = self.client.get(f"{base}/{project.label_path}")
        states = self.client.get(f"{base}/states")
        confirmed = bool(states.get("count") if isinstance(states, dict) else states)
        others = [lab for lab in current if int(lab["user"]) != me]
        mine = [lab for lab in current if int(lab["user"]) == me]
        old_labels = self._labels_of_prediction(row.text, old_pred)
        untouched = not others and not confirmed and sorted(map(self._label_key, mine)) == sorted(old_labels)
        if untouched:
            # Make my labels equal to the new prediction: delete what differs, add what is missing. Re-running
            # this after a lost answer converges to the same state, so retries cannot duplicate labels.
            types = {v: k for k, v in self.label_types().items()}
            want = [self._label_key_from_import(item) for item in label]
            have = {self._label_key(lab): lab for lab in mine}
            for key, lab in have.items():
                if key not in want:
                    self.client.request("DELETE", f"{base}/{project.label_path}/{lab['id']}", ok=(404,))
            scores = {(s.start, s.end, s.label): s.score for s in pred.spans}
            for key in want:
                if key in have:
                    continue
                if project.project_type == SEQ:
                    start_cp = self._from_units(row.text, key[0])
                    end_cp = self._from_units(row.text, key[1])
                    prob = scores.get((start_cp or 0, end_cp or 0, key[2])) or 0.0
                    body: dict[str, Any] = {"label": types[key[2]], "start_offset": key[0], "end_offset": key[1],
                                            "prob": prob}
                else:
                    body = {"label": types[key[0]], "prob": pred.categories.get(key[0], 0.0)}
                try:
                    self.client.post(f"{base}/{project.label_path}", body)
                except AmbiguousWrite:
                    return self._replace_model_labels(row, label, pred, me)  # converges: see above
        patch: dict[str, Any] = {"meta": meta}
        if pred.score is not None and self.options.score_field is not False:
            patch["score"] = pred.score
        self.client.request("PATCH", base, json=patch, idempotent=True)

    def _label_key(self, lab: dict[str, Any]) -> tuple[Any, ...]:
        name = self.label_types().get(int(lab["label"]), str(lab["label"]))
        if "start_offset" in lab:
            return (int(lab["start_offset"]), int(lab["end_offset"]), name)
        return (name,)

    @staticmethod
    def _label_key_from_import(item: Any) -> tuple[Any, ...]:
        if isinstance(item, list):
            return (int(item[0]), int(item[1]), str(item[2]))
        return (str(item),)

    def _labels_of_prediction(self, text: str, stored: str) -> list[tuple[Any, ...]]:
        """The import-format labels a stored prediction produced (doccano units), for 'untouched' checks."""
        if not stored:
            return []
        try:
            pred = Prediction.from_dict(json.loads(stored))
        except (ValueError, TypeError, KeyError):
            return []
        if self.project().project_type == SEQ:
            return sorted((self._to_units(text, s.start), self._to_units(text, s.end), s.label) for s in pred.spans)
        return [(c,) for c in self._chosen(pred)]

    def _export_label_keys(self, labels: list[Any]) -> list[tuple[Any, ...]]:
        keys: list[tuple[Any, ...]] = []
        for item in labels or []:
            if isinstance(item, list):
                keys.append((int(item[0]), int(item[1]), str(item[2])))
            elif isinstance(item, dict):
                keys.append((int(item["start_offset"]), int(item["end_offset"]), str(item["label"])))
            else:
                keys.append((str(item),))
        return sorted(keys)

    # -- pull --------------------------------------------------------------------

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        """Yield every example with its annotations (and the model's prediction, when annobridge pushed one).

        ``since``: a cursor from :attr:`cursor` (yields only what changed since that pull, both project kinds),
        or a datetime (collaborative projects only: doccano shows other members' label timestamps only there).
        URL option ``confirmed=only`` keeps only confirmed annotations; ``exact=true`` makes an incremental
        pull diff against a full export even when doccano's counters say only confirmations changed.

        An incremental pull first compares doccano's cheap counters (examples, per-member confirmations, labels
        per member and type) with the cursor's: unchanged means nothing to read; in a collaborative project a
        change in confirmations alone is read from the examples API (the newly (un)confirmed examples only,
        unless un-confirmations are so many that an export is cheaper). Anything else runs the one export a full
        pull runs and diffs it against the cursor's digests, reading only the changed examples; so it never does
        more than a full pull of the same project.
        """
        self.span_notes.clear()  # the notes are those of the latest pull
        project = self.project(refresh=True)
        self.label_types(refresh=True)
        self.users(refresh=True)
        # the cursor keeps a digest per (example, member) or example, and the previous pull's state: doccano's
        # counters ("s") and, in collaborative projects, the confirmed example ids ("c")
        cursor = DigestCursor.resume(since if DigestCursor.is_cursor(since, "doccano") else None, kind="doccano",
                                     owner=project.id)
        since_dt: datetime | None = None
        if since is not None and not cursor.incremental:
            since_dt = since_datetime(since)
            if since_dt is not None and since_dt.tzinfo is None:
                raise UsageError("since: give a timezone-aware datetime (doccano stores UTC)")
            if not project.collaborative:
                raise UsageError(
                    "doccano shows label timestamps of other members only in collaborative projects; for this "
                    "project pass the cursor of a previous pull as since (annobridge stores it for you)"
                )
        confirmed_only = self.options.confirmed == "only"
        signature = self._signature(project)
        old = cursor.state
        cursor.state = {"s": signature, "c": None}
        records: Iterator[Record] | None = None
        known_confirmed: dict[str, set[int]] | None = None
        old_sig = old.get("s")
        if cursor.incremental and old_sig and not self.options.exact:
            if old_sig == signature:
                cursor.carry_over()
                cursor.state["c"] = old.get("c")
                records = iter(())
            elif (project.collaborative and old.get("c") is not None
                  and (old_sig.get("t"), old_sig.get("l")) == (signature["t"], signature["l"])):
                # Same examples, same labels per member and type: only confirmations moved.
                rows = self._confirmed_examples(int(signature.get("done") or 0))
                before = {int(x) for x in old["c"]}
                unconfirmed = before - set(rows)
                # Reads per flipped example: 2 here (labels + state, or example + labels); an export diff reads
                # the newly confirmed ones the same way, but un-confirmed examples that are untouched now not at
                # all. So many un-confirmations make the export the cheaper way.
                if 2 * len(unconfirmed) <= EXPORT_COST_READS:
                    records = self._pull_confirmations(cursor, rows, before)
                else:
                    known_confirmed = {"": set(rows)}
            elif (project.collaborative and old.get("c") is not None
                  and (old_sig.get("p"), old_sig.get("done")) == (signature["p"], signature.get("done"))):
                # Labels moved but no confirmation: the confirmed examples are the cursor's (as far as the counters
                # tell, like everything here); the export path need not list them again.
                known_confirmed = {"": {int(x) for x in old["c"]}}
        if records is None:
            labels_by_file = self._export(confirmed_only=False)
            confirmed = known_confirmed if known_confirmed is not None else self._confirmed_sets(project, signature)
            if project.collaborative:
                cursor.state["c"] = sorted(confirmed.get("", set()))
                records = self._pull_collaborative(labels_by_file, confirmed.get("", set()), cursor, since_dt)
            else:
                records = self._pull_individual(labels_by_file, confirmed, cursor)
        for record in records:
            if confirmed_only:
                record.annotations = [a for a in record.annotations if a.meta.get("confirmed")]
            if since is not None and not record.annotations:
                continue
            yield filter_answers(record, answers)
        self.cursor = cursor.encode()

    def _signature(self, project: _Project) -> dict[str, Any]:
        """doccano's cheap counters, hashed: examples (t), confirmations per member (p), labels per member (l)."""
        base = f"/v1/projects/{project.id}/metrics"
        progress = self.client.get(f"{base}/member-progress")
        kind = "span" if project.project_type == SEQ else "category"
        labels = self.client.get(f"{base}/{kind}-distribution")
        done = sorted((str(p.get("user")), int(p.get("done") or 0)) for p in progress.get("progress", []))
        return {"t": int(progress.get("total") or 0), "p": digest(done, size=16), "l": digest(labels, size=16),
                "done": sum(n for _, n in done)}

    def _confirmed_sets(self, project: _Project, signature: dict[str, Any]) -> dict[str, set[int]]:
        """Confirmed example ids per member file (``""``: the shared state of a collaborative project).

        Read from the examples API when there are few (cheaper than an export task), from doccano's
        ``exportApproved`` export otherwise, and not at all when the counters say nobody confirmed anything.
        """
        done = int(signature.get("done") or 0)
        if done == 0:
            return {}
        if project.collaborative:
            return {"": set(self._confirmed_examples(done))}
        files = self._export(confirmed_only=True)
        return {user: {int(r["id"]) for r in rows} for user, rows in files.items()}

    def _confirmed_examples(self, done: int) -> dict[int, dict[str, Any]]:
        """Examples confirmed by anyone (collaborative projects) as export-shaped rows, ``done`` being the counters'
        total: none, the examples API (up to :data:`CONFIRMED_BY_API`), or doccano's ``exportApproved`` export."""
        if done == 0:
            return {}
        if done <= CONFIRMED_BY_API:
            return self._confirmed_rows(done)
        files = self._export(confirmed_only=True)
        return {int(r["id"]): r for rows in files.values() for r in rows}

    def _confirmed_rows(self, expected: int = 0) -> dict[int, dict[str, Any]]:
        """Examples confirmed by anyone (collaborative projects), as export-shaped rows, from the examples API.

        doccano serialises ~400 examples/s, one query set per row: with the count known from the counters the
        pages are fetched side by side (gunicorn serves them in parallel); any beyond that count page by page.
        """
        found = self.client.items_offset(f"/v1/projects/{self.project().id}/examples", expected=expected,
                                         params={"confirmed": "true"}, items="results", workers=4)
        return {int(ex["id"]): _api_row(ex) for ex in found}

    def _pull_confirmations(self, cursor: DigestCursor, rows: dict[int, dict[str, Any]], before: set[int]
                            ) -> Iterator[Record]:
        """Only confirmations changed (collaborative): read the examples whose confirmed state flipped.

        ``rows``: the examples confirmed now; ``before``: those confirmed at the cursor. A newly confirmed example
        costs two reads (its labels, its state); an un-confirmed one two (the example, its labels: no state).
        """
        changed = sorted(before ^ set(rows))
        cursor.carry_over()
        cursor.state["c"] = sorted(rows)
        project = self.project()

        def read(eid: int) -> tuple[Record, Annotation | None, list[tuple[Any, ...]], bool]:
            confirmed = eid in rows
            raw = rows.get(eid) or _api_row(self.client.get(f"/v1/projects/{project.id}/examples/{eid}"))
            record, model_keys = self._record(raw)
            annotation, keys = self._read_collaborative(eid, record.text, record.id, confirmed=confirmed)
            confirmed = bool(annotation is not None and annotation.meta.get("confirmed"))
            return record, annotation, keys, _untouched(keys, confirmed, model_keys)

        for record, annotation, keys, untouched in parallel_map(read, changed, workers=READ_WORKERS):
            eid = str(record.native_ids["example"])
            if untouched:
                cursor.forget(eid)
                continue
            confirmed = True if annotation is None else bool(annotation.meta.get("confirmed"))
            if cursor.changed(eid, [keys, confirmed]) and annotation is not None:
                record.annotations.append(annotation)
            yield record

    def _record(self, raw: dict[str, Any]) -> tuple[Record, list[tuple[Any, ...]] | None]:
        """The example's record with annobridge's prediction, and the label keys that prediction made (doccano
        units; None without one)."""
        document = self._document(raw)
        pred = self._prediction(raw)
        record = Record(document, predictions=[pred] if pred else [], native_ids={"example": int(raw["id"])})
        return record, (self._labels_of_prediction(document.text, raw.get(KEY_PRED) or "") if pred else None)

    def _document(self, raw: dict[str, Any]) -> Document:
        doc_id = _doc_id(raw)
        meta: dict[str, Any]
        if raw.get(KEY_META):
            try:
                meta = json.loads(raw[KEY_META])
            except (TypeError, ValueError):
                # The record is still yielded (so this is no skipped record): the meta is kept as text.
                log.warning("doccano example %s: annobridge_meta is not JSON; kept as text", raw.get("id"))
                meta = {KEY_META: raw[KEY_META]}
        else:
            meta = {k: v for k, v in raw.items() if k not in EXPORT_KEYS and not k.startswith("annobridge_")
                    and v is not None}
        return Document(doc_id, str(raw.get("text", "")), meta)

    def _prediction(self, raw: dict[str, Any]) -> Prediction | None:
        stored = raw.get(KEY_PRED)
        if not stored:
            return None
        try:
            pred = Prediction.from_dict(json.loads(stored))
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("doccano example %s: stored prediction unreadable (%s); left out", raw.get("id"), exc)
            return None
        pred.native_ids = {"example": raw.get("id")}
        return pred

    def _convert_labels(
        self, text: str, labels: list[tuple[Any, ...]], doc_id: str
    ) -> tuple[list[Span], dict[str, float]]:
        """doccano label keys (UTF-16 units) -> code-point spans claiming their text, and categories.

        Conversions and drops are span notes (:meth:`note_span`), which the export counts; the record is kept.
        """
        spans: list[Span] = []
        cats: dict[str, float] = {}
        raw: list[Span] = []
        for key in labels:
            if len(key) == 1:
                cats[str(key[0])] = 1.0
            elif self.project().grapheme_mode and not text.isascii():
                self.note_span(doc_id, "dropped", "grapheme-mode offsets in a non-ASCII text are not supported")
            else:
                raw.append(Span(int(key[0]), int(key[1]), str(key[2])))
        # doccano's UI counts UTF-16 units, but a file uploaded through doccano's own import keeps the offsets
        # its writer counted (code points, from Python): the kit decides per annotation, by which reading puts
        # the spans on word boundaries, and drops what no evidence places ("offset units ambiguous"). No tally
        # across documents: in one project each document may have had another writer.
        for checked in read_spans(text, raw, hint="utf16"):
            if checked.span is None:
                self.note_span(doc_id, "dropped", str(checked.note))
                continue
            for repair in checked.repairs:
                self.note_span(doc_id, "adjusted", repair)
            spans.append(checked.span)
        if self.project().project_type == CLS:  # manual annotations are complete: unchosen = 0.0
            for name in self.label_types().values():
                cats.setdefault(name, 0.0)
        return spans, cats

    def _pull_individual(
        self,
        labels_by_file: dict[str, list[dict[str, Any]]],
        confirmed: dict[str, set[int]],
        cursor: DigestCursor,
    ) -> Iterator[Record]:
        per_example: dict[int, dict[str, list[Any]]] = {}
        raws: dict[int, dict[str, Any]] = {}
        for user, rows in labels_by_file.items():
            for raw in rows:
                eid = int(raw["id"])
                raws.setdefault(eid, raw)
                per_example.setdefault(eid, {})[user] = raw.get("label") or []
        for eid in sorted(raws):
            record, model_keys = self._record(raws[eid])
            for user, labels in sorted(per_example.get(eid, {}).items()):
                keys = self._export_label_keys(labels)
                is_confirmed = eid in confirmed.get(user, set())
                # nothing, or the adapter's own pre-annotation (already yielded as the prediction)
                if _untouched(keys, is_confirmed, model_keys if user == self.username else None):
                    continue
                if not cursor.changed(f"{eid}/{user}", [keys, is_confirmed]):
                    continue
                spans, cats = self._convert_labels(record.text, keys, record.id)
                record.annotations.append(Annotation(
                    annotator=user, spans=spans, categories=cats, answer=Answer.ACCEPT,
                    native_ids={"example": eid}, meta={"confirmed": is_confirmed},
                ))
            yield record

    def _pull_collaborative(
        self,
        labels_by_file: dict[str, list[dict[str, Any]]],
        confirmed: set[int],
        cursor: DigestCursor,
        since_dt: datetime | None,
    ) -> Iterator[Record]:
        rows = next(iter(labels_by_file.values()), [])
        plan: list[tuple[Record, bool]] = []
        for raw in sorted(rows, key=lambda r: int(r["id"])):
            eid = int(raw["id"])
            record, model_keys = self._record(raw)
            keys = self._export_label_keys(raw.get("label") or [])
            is_confirmed = eid in confirmed
            if _untouched(keys, is_confirmed, model_keys):
                plan.append((record, False))  # untouched by people: nothing to attribute, no per-example reads
                continue
            plan.append((record, cursor.changed(str(eid), [keys, is_confirmed])))

        def read(record: Record) -> Annotation | None:
            eid = int(record.native_ids["example"])
            return self._read_collaborative(eid, record.text, record.id, confirmed=eid in confirmed)[0]

        # The export has no label users, so the touched examples that changed are read one by one: all of them
        # in flight at once (in a bounded pool), whatever their positions in the project; records keep their order.
        results = parallel_map(read, [record for record, needed in plan if needed], workers=READ_WORKERS)
        for record, needed in plan:
            annotation = next(results) if needed else None
            recent = since_dt is None or (annotation is not None and annotation.timestamp is not None
                                          and annotation.timestamp > since_dt)
            if annotation is not None and recent:
                record.annotations.append(annotation)
            yield record

    def _read_collaborative(self, eid: int, text: str, doc_id: str = "", *, confirmed: bool | None = None
                            ) -> tuple[Annotation | None, list[tuple[Any, ...]]]:
        """Per-example read: each label with its user and timestamps, and who confirmed; and the label keys.

        ``confirmed=False``: the example is known to be unconfirmed (it was not in the confirmed list read for
        this pull), so its state is not read: one request instead of two. A confirmation made since that list
        was read moves doccano's counters, so the next incremental pull reads it.
        """
        project = self.project()
        base = f"/v1/projects/{project.id}/examples/{eid}"
        labels = self.client.get(f"{base}/{project.label_path}")
        states: list[Any] = []
        if confirmed is not False:
            states_data = self.client.get(f"{base}/states")
            states = states_data.get("results", []) if isinstance(states_data, dict) else states_data
        users = self.users.covering(int(lab["user"]) for lab in labels)
        self.label_types.covering(int(lab["label"]) for lab in labels)  # _label_key names the types from it
        labels = sorted(labels, key=lambda lab: (lab.get("start_offset", 0), lab.get("end_offset", 0), lab["id"]))
        keys = [self._label_key(lab) for lab in labels]
        spans, cats = self._convert_labels(text, keys, doc_id or f"doccano-{eid}")
        label_users = [users.get(int(lab["user"]), str(lab["user"])) for lab in labels]
        confirmed_by = users.get(int(states[0]["confirmed_by"])) if states else None
        times = [as_datetime(lab.get("created_at")) for lab in labels]
        updates = [as_datetime(lab.get("updated_at")) for lab in labels]
        if states:
            updates.append(as_datetime(states[0].get("confirmed_at")))
        created = min((t for t in times if t), default=None)
        updated = max((t for t in updates if t), default=None)
        if not labels and not states:
            return None, []
        humans = sorted({u for u in label_users if u != self.username})
        annotator = confirmed_by or "+".join(humans) or self.username
        return Annotation(
            annotator=annotator, spans=spans, categories=cats, answer=Answer.ACCEPT,
            created_at=created or updated, updated_at=updated,
            native_ids={"example": eid, "labels": [lab["id"] for lab in labels]},
            meta={"confirmed": bool(states), "confirmed_by": confirmed_by, "collaborative": True,
                  "label_users": label_users},
        ), sorted(keys)


def _untouched(keys: list[tuple[Any, ...]], confirmed: bool, model_keys: list[tuple[Any, ...]] | None) -> bool:
    """No person's work in an example's labels: unconfirmed, and none or exactly the model's pre-annotation."""
    return not confirmed and (not keys or keys == model_keys)


def _row(raw: dict[str, Any]) -> _ExportRow:
    return _ExportRow(int(raw["id"]), str(raw.get("text", "")), raw, list(raw.get("label") or []))


def _doc_id(raw: dict[str, Any]) -> str:
    value = raw.get(KEY_ID)
    return str(value) if value not in (None, "") else f"doccano-{raw['id']}"


def _api_row(example: dict[str, Any]) -> dict[str, Any]:
    """An example from the REST API in the shape of an export row (meta keys next to id and text)."""
    return {**(example.get("meta") or {}), "id": example["id"], "text": example.get("text", "")}


@hookimpl
def register_adapters(register: Any) -> None:
    register(DoccanoAdapter)
