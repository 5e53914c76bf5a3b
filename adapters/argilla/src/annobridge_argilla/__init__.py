"""``argilla://HOST:PORT/WORKSPACE/DATASET`` - Argilla 2.x datasets over its REST API.

Argilla 2.x has no spaCy helpers any more, its SDK refuses most calls to annotator
accounts, one bad record rejects a whole bulk request, and span scores must come one per
span. This adapter talks to the REST API with httpx (the SDK is not needed) and:

* creates a dataset from a :class:`LabelSchema`: a ``TextField`` plus a ``SpanQuestion``
  (ner/spans, overlapping spans allowed for ``spans``) or a ``LabelQuestion`` /
  ``MultiLabelQuestion`` (textcat), and metadata properties ``doc_id``, ``source``,
  ``model_version`` and ``uncertainty``;
* imports in bulk requests of at most 500 (the server's limit), idempotent by document id
  (Argilla's ``external_id``); a rejected request is narrowed down to the bad records,
  which are reported with the server's reason while the rest is imported;
* sends predictions as suggestions (agent = model version, one score per span) and keeps
  an uncertainty in metadata, so the dataset can be sorted least-certain-first;
* pulls every user's response (submitted / draft / discarded) with user name and
  timestamps, page by page, with a ``since`` cursor on the responses' update time;
* checks every span against the text and converts UTF-16 offsets (which Argilla's web UI
  has been reported to produce after emoji) when that is the only reading that fits.

Offsets sent to and read from Argilla are Python code points (verified against 2.8).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from annobridge import kit

if TYPE_CHECKING:
    import httpx

    from annobridge.http import HttpClient

__all__ = ["ArgillaAdapter"]

#: the server's bulk limit (RECORDS_BULK_UPSERT_MAX_ITEMS in argilla-server 2.x)
MAX_BULK = 500
#: the list endpoint's page limit
MAX_PAGE = 1000

QUESTION_NAMES = {
    kit.TaskKind.NER: "entities",
    kit.TaskKind.SPANS: "spans",
    kit.TaskKind.TEXTCAT: "label",
    kit.TaskKind.TEXTCAT_MULTILABEL: "labels",
}
QUESTION_TYPES = {
    kit.TaskKind.NER: "span",
    kit.TaskKind.SPANS: "span",
    kit.TaskKind.TEXTCAT: "label_selection",
    kit.TaskKind.TEXTCAT_MULTILABEL: "multi_label_selection",
}
#: metadata properties annobridge creates; the rest of a record's metadata is the document's own
META_DOC_ID, META_SOURCE, META_MODEL, META_UNCERTAINTY = "doc_id", "source", "model_version", "uncertainty"
RESERVED_META = (META_DOC_ID, META_MODEL, META_UNCERTAINTY)

#: Argilla response status -> annobridge answer. A draft is unfinished work, so it is kept
#: (status in ``meta``) but marked ``skip`` so merging never trains on it; a discarded record
#: is one the annotator declined to label, Prodigy's ``ignore``.
STATUS_TO_ANSWER = {"submitted": kit.Answer.ACCEPT, "discarded": kit.Answer.IGNORE, "draft": kit.Answer.SKIP}

_AGENT_OK = re.compile(r"[^a-zA-Z0-9\-_:./\s]")
_POSITION = re.compile(r"Record at position (\d+) is not valid")


def _agent(model_version: str) -> str:
    """Argilla restricts suggestion agents to ``[A-Za-z0-9-_:./ ]``; the exact version goes to metadata."""
    agent = _AGENT_OK.sub("_", model_version).strip()[:200]
    return agent if re.search(r"[a-zA-Z0-9]", agent) else "model"


def _bad_positions(response: httpx.Response, size: int) -> list[int]:
    """Which items of a rejected bulk request the server named, if it named any."""
    positions: set[int] = set()
    try:
        body = response.json()
    except ValueError:
        return []
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        for item in detail:
            loc: Sequence[Any] = item.get("loc", ()) if isinstance(item, dict) else ()
            if len(loc) >= 3 and loc[0] == "body" and loc[1] == "items" and isinstance(loc[2], int):
                positions.add(loc[2])
    else:
        from annobridge.http import refusal_words

        match = _POSITION.search(refusal_words(response))
        if match:
            positions.add(int(match.group(1)))
    return sorted(p for p in positions if 0 <= p < size)


@dataclass
class _Dataset:
    id: str
    name: str
    workspace_id: str
    text_field: str
    question: str
    question_id: str
    question_type: str
    labels: list[str]
    allow_overlapping: bool = False
    question_ids: dict[str, str] = field(default_factory=dict)  # id -> name
    metadata_names: set[str] = field(default_factory=set)

    @property
    def task(self) -> kit.TaskKind:
        if self.question_type == "span":
            return kit.TaskKind.SPANS if self.allow_overlapping else kit.TaskKind.NER
        if self.question_type == "multi_label_selection":
            return kit.TaskKind.TEXTCAT_MULTILABEL
        return kit.TaskKind.TEXTCAT


class _Malformed(Exception):
    """A record the server returned in a shape this adapter cannot read (skipped with the reason)."""


@dataclass
class _Existing:
    record_id: str
    metadata: dict[str, Any]


class ArgillaOptions(kit.AdapterOptions):
    """The URL's query options (``?batch_size=200``); also read from ``[argilla]`` in the config file."""

    field: str | None = Field(None, description="the text field to read (default: the dataset's only text field)")
    question: str | None = Field(None, description="the question to read and write (default: by task)")
    batch_size: int = Field(MAX_BULK, ge=1, description=f"records per bulk request (at most {MAX_BULK})")
    page_size: int = Field(500, ge=1, description=f"records per page on pull (at most {MAX_PAGE})")
    timeout: float = Field(120, gt=0, description="seconds per request")


class ArgillaAdapter(kit.Adapter):
    scheme = "argilla"
    description = "Argilla 2.x datasets (REST API; owner/admin key for import and full pulls)"
    url_example = "argilla://127.0.0.1:6900/my-workspace/my-dataset"
    capabilities = kit.Capabilities.all_except()  # test_*_contract.py checks each claim it can observe
    Options = ArgillaOptions

    def __init__(self, url: kit.AdapterURL, config: kit.AdapterConfig | None = None, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, config)
        self.workspace, self.dataset_name = url.match_path(
            r"([^/]+)/+([^/]+)", f"argilla://HOST:PORT/WORKSPACE/DATASET, e.g. {self.url_example}").groups()
        # The same https rule whether the server comes from the URL, ARGILLA_API_URL or the config file.
        self.base_url = self.config.server_url(url, env="ARGILLA_API_URL")
        self.api_key: kit.Secret | None = self.config.secret("api_key", env="ARGILLA_API_KEY")
        options: ArgillaOptions = self.options
        self.field_name, self.question_name = options.field, options.question
        self.batch_size = min(options.batch_size, MAX_BULK)  # capped at the server's limits
        self.page_size = min(options.page_size, MAX_PAGE)
        self.timeout = options.timeout
        #: spans whose offsets were repaired on pull, as (where, note)
        self.repairs: list[tuple[str, str]] = []
        self._transport = transport
        self._client: HttpClient | None = None
        self._dataset: _Dataset | None = None
        self._users: dict[str, str] | None = None

    # -- HTTP -------------------------------------------------------------------

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            from annobridge.http import HttpClient, StaticTokenAuth

            if not self.api_key:
                raise kit.UsageError(
                    "Argilla needs an API key: set ARGILLA_API_KEY or api_key in the [argilla] config section"
                )
            self._client = HttpClient(
                self.base_url,
                name="Argilla",
                auth=StaticTokenAuth(self.api_key, header="X-Argilla-Api-Key", prefix=""),
                allow_http=self.url.transport == "http",
                timeout=self.timeout,
                api_prefix="/api/v1",
                # A 500 from a bulk can be a server bug one record triggers: narrowed down, not retried.
                retry_status={429, 502, 503, 504},
                transport=self._transport,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call with the HTTP layer's rules (retries only where safe); the status is the caller's to read."""
        return self.client.send(method, path, **kwargs)

    def _ok(self, response: httpx.Response, what: str) -> Any:
        if response.status_code < 400:
            return response.json() if response.content else None
        reason = self.client.reason(response)
        if response.status_code == 401:
            raise kit.AdapterError(f"Argilla rejected the API key while {what} (401): set ARGILLA_API_KEY")
        if response.status_code == 403:
            raise kit.AdapterError(
                f"Argilla refused {what} (403: {reason}); this needs an owner or admin API key"
            )
        raise kit.AdapterError(f"Argilla failed {what} (HTTP {response.status_code}: {reason})")

    def _get(self, path: str, what: str, **params: Any) -> Any:
        return self._ok(self._request("GET", path, params=params or None), what)

    # -- dataset ------------------------------------------------------------------

    def _find_workspace(self, create: bool) -> str:
        items = self._get("/me/workspaces", "listing workspaces")["items"]
        for ws in items:
            if ws["name"] == self.workspace:
                return str(ws["id"])
        if not create:
            raise kit.UsageError(f"Argilla has no workspace {self.workspace!r} visible to this API key")
        created = self._ok(
            self._request("POST", "/workspaces", json={"name": self.workspace}),
            f"creating workspace {self.workspace!r}",
        )
        return str(created["id"])

    def _find_dataset_raw(self, workspace_id: str) -> dict[str, Any] | None:
        for ds in self._get("/me/datasets", "listing datasets")["items"]:
            if ds["name"] == self.dataset_name and str(ds["workspace_id"]) == workspace_id:
                return dict(ds)
        return None

    def _load(self, raw: Mapping[str, Any], schema: kit.LabelSchema | None = None) -> _Dataset:
        ds_id = str(raw["id"])
        fields = self._get(f"/datasets/{ds_id}/fields", "reading fields")["items"]
        questions = self._get(f"/datasets/{ds_id}/questions", "reading questions")["items"]
        metadata = self._get(f"/me/datasets/{ds_id}/metadata-properties", "reading metadata properties")["items"]
        wanted_name = self.question_name or (QUESTION_NAMES[schema.task] if schema else None)
        wanted_types = (
            {QUESTION_TYPES[schema.task]} if schema else {"span", "label_selection", "multi_label_selection"}
        )
        candidates = [q for q in questions if q["settings"]["type"] in wanted_types]
        chosen = [q for q in candidates if q["name"] == wanted_name] if wanted_name else candidates
        if not chosen and wanted_name and len(candidates) == 1 and not self.question_name:
            chosen = candidates
        if len(chosen) != 1:
            names = ", ".join(f"{q['name']} ({q['settings']['type']})" for q in questions) or "none"
            raise kit.SchemaError(
                f"Argilla dataset {self.dataset_name!r}: cannot tell which question to use (questions: {names}); "
                "name one with ?question=NAME"
            )
        question = chosen[0]
        settings = question["settings"]
        text_fields = [f["name"] for f in fields if f["settings"]["type"] == "text"]
        field_name = self.field_name or settings.get("field")
        if field_name is None:
            field_name = "text" if "text" in text_fields else (text_fields[0] if len(text_fields) == 1 else None)
        if field_name is None or field_name not in text_fields:
            raise kit.SchemaError(
                f"Argilla dataset {self.dataset_name!r}: no text field {field_name!r} "
                f"(text fields: {', '.join(text_fields) or 'none'}); name one with ?field=NAME"
            )
        return _Dataset(
            id=ds_id,
            name=str(raw["name"]),
            workspace_id=str(raw["workspace_id"]),
            text_field=field_name,
            question=str(question["name"]),
            question_id=str(question["id"]),
            question_type=str(settings["type"]),
            labels=[str(o["value"]) for o in settings.get("options", ())],
            allow_overlapping=bool(settings.get("allow_overlapping", False)),
            question_ids={str(q["id"]): str(q["name"]) for q in questions},
            metadata_names={str(m["name"]) for m in metadata},
        )

    def dataset(self, schema: kit.LabelSchema | None = None) -> _Dataset:
        """The dataset this URL names (must exist)."""
        if self._dataset is None:
            raw = self._find_dataset_raw(self._find_workspace(create=False))
            if raw is None:
                raise kit.UsageError(
                    f"Argilla has no dataset {self.dataset_name!r} in workspace {self.workspace!r}; "
                    "create it by importing with a task and labels"
                )
            if raw.get("status") != "ready":
                raise kit.UsageError(
                    f"Argilla dataset {self.dataset_name!r} is not published (status {raw.get('status')})")
            self._dataset = self._load(raw, schema)
        return self._dataset

    def ensure_project(self, schema: kit.LabelSchema) -> str:
        """Create (or check) the dataset for ``schema``; returns its id."""
        workspace_id = self._find_workspace(create=True)
        raw = self._find_dataset_raw(workspace_id)
        if raw is None:
            raw = self._ok(
                self._request(
                    "POST",
                    "/datasets",
                    json={"name": self.dataset_name, "workspace_id": workspace_id, "allow_extra_metadata": True,
                          "guidelines": f"Created by annobridge for a {schema.task.value} task."},
                ),
                f"creating dataset {self.dataset_name!r}",
            )
        assert raw is not None
        if raw.get("status") != "ready":
            self._configure_draft(str(raw["id"]), schema)
            raw = self._ok(self._request("PUT", f"/datasets/{raw['id']}/publish"), "publishing the dataset")
        assert raw is not None
        dataset = self._load(raw, schema)
        if dataset.question_type != QUESTION_TYPES[schema.task]:
            raise kit.SchemaError(
                f"Argilla dataset {self.dataset_name!r} asks a {dataset.question_type} question, "
                f"not one for {schema.task.value}"
            )
        missing = [label for label in schema.labels if label not in dataset.labels]
        if missing:
            raise kit.SchemaError(
                f"Argilla dataset {self.dataset_name!r} lacks the labels {missing}; question "
                f"{dataset.question!r} offers {dataset.labels}"
            )
        if schema.allows_overlap and not dataset.allow_overlapping:
            raise kit.SchemaError(f"Argilla dataset {self.dataset_name!r} does not allow overlapping spans")
        self._dataset = dataset
        return dataset.id

    def write_annotations(self, items: Iterable[tuple[kit.Document, kit.Annotation]], *,
                          schema: kit.LabelSchema | None = None) -> kit.ImportResult:
        """Each annotation as a response by its user (``user_id``), through the records bulk endpoint, once.

        Argilla has no ground-truth flag, no reject answer for a manual annotation and no binary question
        form: such annotations fail alone with that reason. ``ignore`` becomes a discarded response, ``skip``
        a draft (how a pull reads them back). The server sets the timestamps.
        """
        items = list(items)
        result = kit.ImportResult()
        docs = {doc.id: doc for doc, _ in items}
        imported = self.import_documents(list(docs.values()), schema=schema)
        not_there = dict(imported.failed)
        ds = self.dataset()
        user_ids = {name: uid for uid, name in self.users().items()}
        # every record's responses as they are: the bulk upsert takes a record's responses whole
        current: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        for item in self._iter_pages(ds, include=("responses",)):
            responses = [{"values": r.get("values") or {}, "status": r.get("status"), "user_id": str(r.get("user_id"))}
                         for r in item.get("responses") or ()]
            current[str(item.get("external_id") or item["id"])] = (str(item["id"]), responses)
        status_of = {answer: status for status, answer in STATUS_TO_ANSWER.items()}
        changed: dict[str, list[str]] = {}  # record id -> the doc ids of annotations added to it
        for doc, ann in items:
            uid = user_ids.get(ann.annotator)
            why = None
            if doc.id not in current:
                why = not_there.get(doc.id, "the document is not in the dataset")
            elif uid is None:
                why = f"no Argilla user {ann.annotator!r} (map annotator names to users with --annotators)"
            elif ann.ground_truth:
                why = "Argilla has no ground-truth flag for a response"
            elif ann.mode == "binary" or ann.answer not in status_of:
                why = "Argilla has no form for this answer (a binary yes/no, or a rejected manual annotation)"
            if why is not None or uid is None:
                result.failed.append((doc.id, why or "not writable"))
                continue
            if ds.question_type == "span":
                value: Any = [{"start": sp.start, "end": sp.end, "label": sp.label} for sp in ann.spans]
            elif ds.question_type == "label_selection":
                chosen = [label for label, v in ann.categories.items() if v >= 0.5]
                value = chosen[0] if len(chosen) == 1 else None
            else:
                value = sorted(label for label, v in ann.categories.items() if v >= 0.5)
            if value is None:
                result.failed.append((doc.id, "a label question takes exactly one label"))
                continue
            response = {"values": {ds.question: {"value": value}}, "status": status_of[ann.answer], "user_id": uid}
            record_id, responses = current[doc.id]
            if response in responses:
                result.existing += 1
                continue
            if any(r["user_id"] == uid for r in responses):
                result.failed.append((doc.id, f"{ann.annotator} already answered this record differently "
                                              "(Argilla keeps one response per user)"))
                continue
            responses.append(response)
            changed.setdefault(record_id, []).append(doc.id)
        responses_of = dict(current.values())  # record id -> its responses, with the new ones appended
        batch = [(ids[0], {"id": rid, "responses": responses_of[rid]}) for rid, ids in changed.items()]
        sent = kit.ImportResult()
        for chunk in kit.batched(batch, self.batch_size):
            self._bulk(ds, chunk, sent)
        failed_records = {doc_id for doc_id, _ in sent.failed}
        reasons = dict(sent.failed)
        for ids in changed.values():
            if ids[0] in failed_records:
                result.failed.extend((doc_id, reasons[ids[0]]) for doc_id in ids)
            else:
                result.created += len(ids)
        return result

    def push_review(self, items: Iterable[kit.ReviewItem], *, schema: kit.LabelSchema) -> kit.ImportResult:
        # Argilla keeps one suggestion per question and record: a second annotator's version would replace
        # the first, and the reviewer would see one side of the disagreement as if it were the only one
        raise kit.UsageError(
            "Argilla shows one suggestion per question, so it cannot show a reviewer every annotator's version; "
            "review in Label Studio or Prodigy (annobridge review SOURCE labelstudio://... or prodigy:...)"
        )

    def set_annotators_per_doc(self, n: int) -> str:
        """Argilla's task distribution: a record is completed once ``n`` annotators submitted a response."""
        ds = self.dataset()
        body = {"distribution": {"strategy": "overlap", "min_submitted": n}}
        self._ok(self._request("PATCH", f"/datasets/{ds.id}", json=body), "setting the task distribution")
        got = self._get(f"/datasets/{ds.id}", "reading the dataset").get("distribution") or {}
        if got.get("min_submitted") != n:
            raise kit.AdapterError(f"Argilla kept the task distribution at {got} (asked for min_submitted={n})")
        return f"Argilla dataset {ds.name!r}: a record is complete after {n} submitted response(s)"

    def _configure_draft(self, ds_id: str, schema: kit.LabelSchema) -> None:
        """Add what a draft dataset lacks (a run may have stopped half-way), so publishing can go ahead."""
        labels = list(dict.fromkeys(schema.labels))
        if not labels:
            raise kit.SchemaError("Creating an Argilla dataset needs labels: give the schema its labels")
        if schema.task in (kit.TaskKind.TEXTCAT, kit.TaskKind.TEXTCAT_MULTILABEL) and len(labels) < 2:
            raise kit.SchemaError(
                "Argilla label questions need at least two labels; for a binary category add its opposite, "
                f"e.g. --labels {labels[0]},NOT_{labels[0]}"
            )
        field_name = self.field_name or "text"
        have_fields = {f["name"] for f in self._get(f"/datasets/{ds_id}/fields", "reading fields")["items"]}
        if field_name not in have_fields:
            self._ok(
                self._request(
                    "POST", f"/datasets/{ds_id}/fields",
                    json={"name": field_name, "title": "Text", "required": True,
                          "settings": {"type": "text", "use_markdown": False}},
                ),
                "creating the text field",
            )
        have_questions = {q["name"] for q in self._get(f"/datasets/{ds_id}/questions", "reading questions")["items"]}
        name = self.question_name or QUESTION_NAMES[schema.task]
        if name not in have_questions:
            options = [{"value": label, "text": label} for label in labels]
            settings: dict[str, Any] = {"type": QUESTION_TYPES[schema.task], "options": options}
            if schema.task.is_span_task:
                settings.update(field=field_name, allow_overlapping=schema.allows_overlap)
            title = {"span": "Mark the spans", "label_selection": "Pick the label",
                     "multi_label_selection": "Pick every label that applies"}[settings["type"]]
            self._ok(
                self._request("POST", f"/datasets/{ds_id}/questions",
                              json={"name": name, "title": title, "required": True, "settings": settings}),
                "creating the question",
            )
        have_meta = {
            m["name"]
            for m in self._get(f"/me/datasets/{ds_id}/metadata-properties", "reading metadata properties")["items"]
        }
        for meta_name, kind, visible in (
            (META_DOC_ID, "terms", True),
            (META_SOURCE, "terms", True),
            (META_MODEL, "terms", False),
            (META_UNCERTAINTY, "float", False),
        ):
            if meta_name not in have_meta:
                self._ok(
                    self._request(
                        "POST", f"/datasets/{ds_id}/metadata-properties",
                        json={"name": meta_name, "title": meta_name.replace("_", " "),
                              "settings": {"type": kind}, "visible_for_annotators": visible},
                    ),
                    f"creating metadata property {meta_name!r}",
                )

    # -- writing -------------------------------------------------------------------

    def _existing(self, ds: _Dataset) -> dict[str, _Existing]:
        """external id -> (record id, metadata) for the whole dataset, from the database-only list endpoint."""
        found: dict[str, _Existing] = {}
        if self.count() == 0:  # a first import need not page through anything
            return found
        for item in self._iter_pages(ds, include=()):
            key = item.get("external_id") or str(item["id"])
            found[str(key)] = _Existing(str(item["id"]), dict(item.get("metadata") or {}))
        return found

    def _metadata(self, doc: kit.Document, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = dict(base or {})
        for key, value in doc.meta.items():
            if key not in RESERVED_META:
                meta[key] = value
        meta[META_DOC_ID] = doc.id
        source = doc.meta.get("source")
        if source is not None and not isinstance(source, str):
            meta[META_SOURCE] = str(source)
        return meta

    def _suggestion(
        self, ds: _Dataset, doc: kit.Document, prediction: kit.Prediction
    ) -> tuple[dict[str, Any] | None, float | None]:
        """The suggestion for ``prediction`` and its uncertainty (1 - confidence; None without scores)."""
        agent = _agent(prediction.model_version or "model")
        if ds.question_type == "span":
            spans: list[kit.Span] = []
            for span in prediction.spans:
                checked = kit.check_span(doc.text, span)
                if not checked.ok or checked.span is None:
                    raise kit.SchemaError(
                        f"prediction span {span.start}-{span.end} {span.label}: {checked.note}"
                    )
                spans.append(checked.span)
            value = [{"start": s.start, "end": s.end, "label": s.label} for s in spans]
            scores = [s.score if s.score is not None else prediction.score for s in spans]
            score: list[float] | None = None
            if spans and all(x is not None for x in scores):
                score = [float(x) for x in scores if x is not None]
            if score:
                uncertainty: float | None = 1.0 - min(score)
            elif prediction.score is not None:
                uncertainty = 1.0 - float(prediction.score)
            else:
                uncertainty = None
            return {"question_id": ds.question_id, "type": "model", "agent": agent, "value": value,
                    "score": score}, uncertainty
        cats = prediction.categories
        if not cats:
            return None, None
        if ds.question_type == "label_selection":
            label = max(cats, key=lambda k: cats[k])
            top = float(cats[label])
            return {"question_id": ds.question_id, "type": "model", "agent": agent, "value": label,
                    "score": top}, 1.0 - top
        chosen = [label for label, p in cats.items() if p >= 0.5]
        margin = min(abs(float(p) - 0.5) for p in cats.values()) * 2
        if not chosen:  # the server refuses an empty multi-label value; the uncertainty still counts
            return None, 1.0 - margin
        suggestion: dict[str, Any] = {"question_id": ds.question_id, "type": "model", "agent": agent,
                                      "value": chosen, "score": [float(cats[c]) for c in chosen]}
        return suggestion, 1.0 - margin

    def _item(
        self, ds: _Dataset, doc: kit.Document, prediction: kit.Prediction | None, existing: _Existing | None
    ) -> dict[str, Any]:
        item: dict[str, Any] = {"external_id": doc.id}
        if existing is None:
            if not isinstance(doc.text, str):
                raise kit.SchemaError("document text is not a string")
            item["fields"] = {ds.text_field: doc.text}
            metadata = self._metadata(doc)
        else:
            # re-logging replaces all metadata on the server: start from what is there
            metadata = dict(existing.metadata)
        if prediction is not None:
            suggestion, uncertainty = self._suggestion(ds, doc, prediction)
            if suggestion is not None:
                item["suggestions"] = [suggestion]
            metadata[META_MODEL] = prediction.model_version
            if uncertainty is not None and math.isfinite(uncertainty):
                metadata[META_UNCERTAINTY] = float(min(1.0, max(0.0, uncertainty)))
        item["metadata"] = metadata
        try:
            json.dumps(item, allow_nan=False)
        except (TypeError, ValueError) as exc:  # caught here, one record fails instead of the whole request
            raise kit.SchemaError(f"metadata cannot be sent as JSON: {exc}") from None
        return item

    def source_schema(self) -> kit.LabelSchema | None:
        """What the dataset's question asks: a span question -> ner/spans, label questions -> textcat."""
        ds = self.dataset()
        return kit.LabelSchema(ds.task, list(ds.labels))

    def _bulk(self, ds: _Dataset, items: list[tuple[str, dict[str, Any]]], result: kit.ImportResult) -> None:
        """PUT one bulk; a refused one is narrowed down to the bad records (the kit's isolate_rejected)."""
        from annobridge.http import Rejection, isolate_rejected

        def send(batch: Sequence[tuple[str, dict[str, Any]]]) -> Rejection | None:
            response = self._request("PUT", f"/datasets/{ds.id}/records/bulk", json={"items": [i for _, i in batch]})
            if response.status_code < 400:
                # the endpoint's response model drops `updated_item_ids`: an item is new when it had no fields
                # to keep (only new records are sent with their text)
                for (doc_id, item), record in zip(batch, response.json()["items"], strict=False):
                    result.native_ids[doc_id] = str(record["id"])
                    if "fields" in item:
                        result.created += 1
                    else:
                        result.existing += 1
                return None
            # 422 is a validation refusal; a 500 can be a server bug one record triggers: narrow both down
            if response.status_code not in (422, 500):
                self._ok(response, "importing records")
            return Rejection(self.client.reason(response), tuple(_bad_positions(response, len(batch))))

        for (doc_id, _item), reason in isolate_rejected(items, send):
            result.failed.append((doc_id, reason))

    def _write(
        self,
        ds: _Dataset,
        entries: Iterable[tuple[kit.Document, kit.Prediction | None]],
        *,
        update_existing: bool,
    ) -> kit.ImportResult:
        result = kit.ImportResult()
        existing = self._existing(ds)
        seen: set[str] = set()

        def items() -> Iterator[tuple[str, dict[str, Any]]]:
            """The records to send, built as the batches need them; the others accounted for here."""
            for doc, prediction in entries:
                if doc.id in seen:
                    # a later prediction for the same document would overwrite the first on the server
                    result.existing += 1
                    continue
                seen.add(doc.id)
                found = existing.get(doc.id)
                if found is not None and not update_existing:
                    result.existing += 1
                    result.native_ids[doc.id] = found.record_id
                    continue
                try:
                    yield doc.id, self._item(ds, doc, prediction, found)
                except (kit.SchemaError, ValueError, TypeError) as exc:
                    result.failed.append((doc.id, str(exc)))

        for batch in kit.batched(items(), self.batch_size):
            self._bulk(ds, batch, result)
        return result

    def write_documents(self, items: Iterator[tuple[kit.Document, kit.Prediction | None]], *,
                        schema: kit.LabelSchema | None = None) -> kit.ImportResult:
        return self._write(self.dataset(), items, update_existing=False)

    def push_predictions(self, items: Iterable[tuple[kit.Document, kit.Prediction]]) -> kit.ImportResult:
        ds = self.dataset()
        latest: dict[str, tuple[kit.Document, kit.Prediction]] = {}
        for doc, prediction in items:
            latest[doc.id] = (doc, prediction)  # Argilla keeps one suggestion per question and record
        return self._write(ds, latest.values(), update_existing=True)

    def least_certain(self, limit: int = 50) -> list[str]:
        """Document ids with the highest stored uncertainty first (the order to annotate in)."""
        ds = self.dataset()
        body = {"sort": [{"scope": {"entity": "metadata", "metadata_property": META_UNCERTAINTY}, "order": "desc"}],
                "filters": {"and": [{"type": "range",
                                     "scope": {"entity": "metadata", "metadata_property": META_UNCERTAINTY},
                                     "ge": 0.0}]}}
        data = self._ok(
            self._request("POST", f"/datasets/{ds.id}/records/search", params={"offset": 0, "limit": limit},
                          json=body, idempotent=True),  # a search reads: safe to send again
            "sorting by uncertainty",
        )
        return [str(i["record"].get("external_id") or i["record"]["id"]) for i in data["items"]]

    # -- reading -----------------------------------------------------------------

    def count(self) -> int | None:
        ds = self.dataset()
        response = self._request("GET", f"/datasets/{ds.id}/records", params={"offset": 0, "limit": 1})
        if response.status_code == 403:
            return None
        total = self._ok(response, "counting records").get("total")
        return int(total) if total is not None else None

    def _iter_pages(
        self, ds: _Dataset, include: Sequence[str] = ("responses", "suggestions")
    ) -> Iterator[dict[str, Any]]:
        """Every record once. The list endpoint orders by insert time only, so ties may shift between pages
        on PostgreSQL: records are de-duplicated and a missing one triggers another pass."""
        params = [("include", name) for name in include]
        return self.client.unique_items(
            lambda: self.client.pages_offset(f"/datasets/{ds.id}/records", params=params, limit=self.page_size),
            on_missing=lambda n: self.skip(ds.name, f"{n} records could not be read: the listing kept shifting"))

    def _iter_own(self, ds: _Dataset) -> Iterator[dict[str, Any]]:
        """An annotator key may not list the dataset; search its own view (only its own responses)."""
        pages = self.client.pages_offset(
            f"/me/datasets/{ds.id}/records/search", method="POST", limit=self.page_size, idempotent=True,
            params=[("include", "responses"), ("include", "suggestions")],
            json={"sort": [{"scope": {"entity": "record", "property": "inserted_at"}, "order": "asc"}]},
            items=lambda body: [i["record"] for i in body.get("items", [])],
        )
        return self.client.iter_items(pages)  # a search only reads, so it is retried like a GET

    def users(self) -> dict[str, str]:
        """user id -> username (ids only for users this key may not see)."""
        if self._users is None:
            self._users = {}
            # owners may list all users, admins their workspace's; an annotator knows only itself
            paths = ["/users", f"/workspaces/{self.dataset().workspace_id}/users"]
            for path in paths:
                response = self._request("GET", path)
                if response.status_code < 400:
                    self._users.update({str(u["id"]): str(u["username"]) for u in response.json()["items"]})
                    break
            me = self._ok(self._request("GET", "/me"), "reading the current user")
            self._users.setdefault(str(me["id"]), str(me["username"]))
        return self._users

    def pull(self, *, answers: Collection[kit.Answer] | None = None, since: Any = None) -> Iterator[kit.Record]:
        """Every record with its responses and suggestions; with ``since`` (the cursor of an earlier pull, or a
        timestamp) only the responses new, changed or deleted since. Argilla cannot filter responses by time, so
        every page is read either way; the cursor knows each response's ``updated_at`` (exact, deletions named)."""
        self.span_notes.clear()  # the notes are those of the latest pull
        ds = self.dataset()
        ledger = kit.AnnotationLedger.resume(
            since, owner=ds.id, annotation_id=lambda a: str(a.native_ids.get("argilla_response_id")))
        users = self.users()
        probe = self._request("GET", f"/datasets/{ds.id}/records", params={"offset": 0, "limit": 1})
        pages = self._iter_own(ds) if probe.status_code == 403 else self._iter_pages(ds)
        yield from ledger.changes(((str(item["id"]), self._record(ds, item, users)) for item in pages), answers)
        # Argilla's clock cannot be read: the watermark is the newest response seen
        self.cursor = ledger.cursor(ledger.newest, owner=ds.id)

    def _record(self, ds: _Dataset, item: Mapping[str, Any], users: Mapping[str, str]) -> kit.Record | None:
        doc_id = str(item.get("external_id") or item["id"])
        where = f"{ds.name}/{doc_id}"
        text = (item.get("fields") or {}).get(ds.text_field)
        if not isinstance(text, str):
            self.skip(where, f"record has no text in field {ds.text_field!r}")
            return None
        metadata = dict(item.get("metadata") or {})
        meta = {k: v for k, v in metadata.items() if k not in RESERVED_META}
        document = kit.Document(id=doc_id, text=text, meta=meta)
        record = kit.Record(
            document,
            native_ids={"argilla_record_id": str(item["id"]), "argilla_dataset_id": ds.id,
                        "argilla_status": item.get("status")},
        )
        try:
            for response in item.get("responses") or ():
                record.annotations.append(self._annotation(ds, text, response, users, where))
            for suggestion in item.get("suggestions") or ():
                if str(suggestion.get("question_id")) == ds.question_id:
                    record.predictions.append(self._prediction(ds, text, suggestion, metadata))
        except _Malformed as exc:
            self.skip(where, str(exc))
            return None
        return record

    def _annotation(
        self, ds: _Dataset, text: str, response: Mapping[str, Any], users: Mapping[str, str], where: str
    ) -> kit.Annotation:
        user_id = str(response.get("user_id"))
        annotator = users.get(user_id, user_id)
        status = str(response.get("status"))
        values = response.get("values") or {}
        value = (values.get(ds.question) or {}).get("value")
        ann = kit.Annotation(
            annotator=annotator,
            # a status this adapter does not know is kept but never trained on
            answer=STATUS_TO_ANSWER.get(status, kit.Answer.SKIP),
            created_at=kit.as_utc(response.get("inserted_at")),
            updated_at=kit.as_utc(response.get("updated_at")),
            native_ids={"argilla_response_id": str(response.get("id")), "argilla_user_id": user_id},
            meta={"argilla_status": status},
        )
        if value is None:
            # discarded and draft answers may carry no value; a submitted span answer without one marks nothing
            return ann
        if ds.question_type == "span":
            ann.spans, notes = self._spans(text, value, f"{where}/{annotator}", where.split("/", 1)[-1])
            if notes:
                ann.meta["offset_repairs"] = [note for _why, note in notes]
                self.repairs.extend((f"{where}/{annotator}", note) for _why, note in notes)
                for why, _note in notes:
                    if why == "utf16 offsets converted":  # the rest is left to the exporter's verifier to drop
                        self.note_span(where.split("/", 1)[-1], "adjusted", why)  # where = DATASET/DOC_ID
        else:
            if isinstance(value, str):
                chosen = [value]
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                chosen = list(value)
            else:
                raise _Malformed(f"{annotator}'s answer to {ds.question!r} is not a label: {value!r}")
            # labels outside the question's options are kept; the exporter drops and reports them
            ann.categories = {label: 1.0 if label in chosen else 0.0 for label in dict.fromkeys([*ds.labels, *chosen])}
        return ann

    def _spans(self, text: str, value: Any, where: str, doc_id: str = ""
               ) -> tuple[list[kit.Span], list[tuple[str, str]]]:
        """Spans with their covered text as claim, UTF-16 offsets converted, and the notes of what changed.

        A span without usable offsets is left out as a dropped span (the record and its other spans stay).
        """
        if not isinstance(value, list):
            raise _Malformed(f"{where}: span answer is not a list ({type(value).__name__})")
        given: list[kit.Span] = []
        for raw in value:
            try:
                span = kit.Span(int(raw["start"]), int(raw["end"]), str(raw["label"]))
            except (KeyError, TypeError, ValueError):
                self.note_span(doc_id or where, "dropped", "span without usable offsets")
                continue
            if isinstance(raw, Mapping) and raw.get("score") is not None:
                span.score = float(raw["score"])
            given.append(span)
        spans: list[kit.Span] = []
        notes: list[tuple[str, str]] = []  # (why, detailed note)
        for span, (fixed, note) in zip(given, read_offsets(text, given), strict=True):
            if note:
                notes.append((note, f"{span.start}-{span.end} {span.label}: {note}"))
            spans.append(fixed)
        return spans, notes

    def _prediction(
        self, ds: _Dataset, text: str, suggestion: Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> kit.Prediction:
        agent = str(suggestion.get("agent") or "argilla")
        model = str(metadata.get(META_MODEL) or agent)
        if _agent(model) != agent:
            model = agent  # the suggestion was replaced by another agent's since annobridge sent it
        value, score = suggestion.get("value"), suggestion.get("score")
        prediction = kit.Prediction(model_version=model, created_at=kit.as_utc(suggestion.get("updated_at")),
                                native_ids={"argilla_suggestion_id": str(suggestion.get("id"))})
        if ds.question_type == "span":
            items = value if isinstance(value, list) else []
            scores = score if isinstance(score, list) else [score] * len(items)
            given: list[kit.Span] = []
            for raw, span_score in zip(items, scores, strict=False):
                try:
                    given.append(kit.Span(int(raw["start"]), int(raw["end"]), str(raw["label"]),
                                          score=float(span_score) if span_score is not None else None))
                except (KeyError, TypeError, ValueError):
                    raise _Malformed(f"suggestion by {agent}: malformed span {raw!r}") from None
            prediction.spans.extend(fixed for fixed, _note in read_offsets(text, given))
            if scores and all(s is not None for s in scores):
                prediction.score = float(min(scores))
        elif ds.question_type == "label_selection":
            if isinstance(value, str):
                prediction.categories = {value: float(score) if score is not None else 1.0}
                prediction.score = float(score) if score is not None else None
        elif isinstance(value, list):
            scores = score if isinstance(score, list) else [1.0] * len(value)
            prediction.categories = {str(v): float(s) for v, s in zip(value, scores, strict=False)}
        return prediction

    def server_version(self) -> str | None:
        body = self._get("/version", "reading the server version")
        version = body.get("version") if isinstance(body, dict) else None
        return f"argilla-server {version}" if version else None

    def __repr__(self) -> str:
        return f"ArgillaAdapter({self.base_url!r}, {self.workspace!r}, {self.dataset_name!r})"


def read_offsets(text: str, spans: list[kit.Span]) -> list[tuple[kit.Span, str | None]]:
    """Spans as Argilla holds them, read by the kit (:func:`annobridge.offsets.read_spans`), with what changed.

    Argilla counts code points (what its SDK sends); a client that sent UTF-16 units (a JavaScript front end)
    shows in a document whose spans fit word boundaries only as UTF-16, and is converted. A span that fits
    no reading keeps its offsets without a text claim, for the exporter to drop and report.
    """
    out: list[tuple[kit.Span, str | None]] = []
    for span, checked in zip(spans, kit.read_spans(text, spans, hint="codepoint"), strict=True):
        if checked.span is None:
            out.append((replace(span, text=None), f"{checked.note} (length {len(text)})"))
        else:
            out.append((checked.span, checked.repairs[0] if checked.repairs else None))
    return out


@kit.hookimpl
def register_adapters(register: Any) -> None:
    register(ArgillaAdapter)
