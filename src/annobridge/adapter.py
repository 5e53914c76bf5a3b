"""The interface every adapter implements, and the URL strings that pick one."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

from .config import AdapterConfig, check_server_url
from .config import is_loopback as _is_loopback
from .errors import DataError, MissingDependencyError, UsageError
from .model import Annotation, Answer, Document, LabelSchema, Prediction, Record, TaskKind
from .options import AdapterOptions, parse_options

if TYPE_CHECKING:
    from .review import ReviewItem

__all__ = ["Adapter", "AdapterURL", "Capabilities", "ImportResult"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Capabilities:
    """What a tool supports, so callers can check before they ask."""

    create_project: bool = False
    import_documents: bool = False
    push_predictions: bool = False
    pull: bool = True
    pull_since: bool = False
    per_annotator: bool = False
    prediction_scores: bool = False
    overlapping_spans: bool = False
    #: annotations written as their annotator (``annobridge copy``): :meth:`Adapter.write_annotations`
    write_annotations: bool = False
    tasks: tuple[str, ...] = ("ner", "spans", "textcat", "textcat_multilabel")

    def enabled(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "tasks" and getattr(self, f.name)]

    def missing(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "tasks" and not getattr(self, f.name)]

    @classmethod
    def all_except(cls, *missing: str, tasks: tuple[str, ...] | None = None) -> Capabilities:
        """Every operation but the ``missing`` ones: ``Capabilities.all_except("pull_since")``.

        A server adapter usually has nearly everything; naming only what it lacks keeps the claim short
        and easy to review against the contract suite, which checks each flag.
        """
        flags = {f.name for f in fields(cls) if f.name != "tasks"}
        unknown = set(missing) - flags
        if unknown:
            raise ValueError(f"unknown capabilities: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {name: name not in missing for name in flags}
        if tasks is not None:
            values["tasks"] = tasks
        return cls(**values)


@dataclass
class ImportResult:
    """What an import or push did: every input is created, already there, or failed with a reason."""

    created: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    native_ids: dict[str, Any] = field(default_factory=dict)
    #: :meth:`Adapter.write_annotations` only: documents it had to import first (their annotations are counted
    #: in ``created``)
    documents_created: int = 0

    @property
    def total(self) -> int:
        return self.created + self.existing + len(self.failed)

    def merge(self, other: ImportResult) -> None:
        self.created += other.created
        self.existing += other.existing
        self.failed.extend(other.failed)
        self.native_ids.update(other.native_ids)
        self.documents_created += other.documents_created

    def translated(
        self,
        items: Iterable[tuple[Document, T]],
        build: Callable[[Document, T], R],
        *,
        errors: type[Exception] | tuple[type[Exception], ...] = DataError,
    ) -> list[tuple[Document, R]]:
        """``(document, build(document, item))`` for each pair the adapter can translate into the tool's form.

        A document whose ``build`` raises one of ``errors`` (the adapter's "this one cannot be stored") is in
        ``failed`` with the exception's message and costs only itself; anything else propagates.
        """
        done: list[tuple[Document, R]] = []
        for doc, item in items:
            try:
                done.append((doc, build(doc, item)))
            except errors as exc:
                self.failed.append((doc.id, str(exc)))
        return done


def is_loopback(host: str | None) -> bool:
    """True for hosts that never leave this machine (see :func:`annobridge.config.is_loopback`)."""
    return _is_loopback(host)


@dataclass(frozen=True)
class AdapterURL:
    """A parsed source/destination string.

    Two shapes: ``scheme://host:port/path?k=v`` for servers and ``scheme:path?k=v``
    for files. A scheme may carry a transport, ``labelstudio+http://``.
    A bare path is given the scheme its extension suggests (``.jsonl`` -> ``jsonl``).
    """

    scheme: str
    raw: str
    path: str
    host: str | None = None
    port: int | None = None
    transport: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | os.PathLike[str]) -> AdapterURL:
        raw = os.fspath(value)
        head, sep, rest = raw.partition(":")
        looks_like_scheme = sep and head and head.replace("+", "").replace("-", "").replace("_", "").isalnum()
        if not looks_like_scheme or len(head) == 1:  # "C:\\..." is a drive, not a scheme
            return cls._from_bare_path(raw)
        scheme, _, transport = head.lower().partition("+")
        query = ""
        if rest.startswith("//"):
            parts = urlsplit("x:" + rest)
            try:
                port = parts.port
            except ValueError:
                raise UsageError(f"Bad port in {redact(raw)!r}") from None
            return cls(
                scheme=scheme,
                raw=raw,
                path=parts.path,
                host=parts.hostname,
                port=port,
                transport=transport or None,
                params=dict(parse_qsl(parts.query)),
            )
        path, _, query = rest.partition("?")
        return cls(scheme=scheme, raw=raw, path=path, transport=transport or None, params=dict(parse_qsl(query)))

    @classmethod
    def _from_bare_path(cls, raw: str) -> AdapterURL:
        """A path without a scheme: an existing file by what it holds (:mod:`annobridge.sniff`), else by its name."""
        from .sniff import SCHEMES, sniff

        path, _, query = raw.partition("?")
        lower = path.lower()
        kind = sniff(os.path.expanduser(path)) if path else None
        if kind is not None:
            scheme = SCHEMES[kind]
        elif lower.endswith((".db", ".sqlite", ".sqlite3")):
            scheme = "prodigy"
        elif lower.endswith((".conll", ".iob", ".bio", ".conll.gz", ".iob.gz")):
            scheme = "conll"
        elif lower.endswith(".spacy"):
            scheme = "spacy"
        elif lower.endswith((".jsonl", ".jsonl.gz", ".json", ".csv", ".txt")):
            scheme = "jsonl" if lower.endswith((".jsonl", ".jsonl.gz")) else "file"
        else:
            raise UsageError(
                f"Cannot tell which tool {raw!r} belongs to. Prefix it with a scheme, "
                "e.g. 'jsonl:records.jsonl', 'prodigy:prodigy.db?dataset=news' or "
                "'labelstudio://127.0.0.1:8080/projects/1'. 'annobridge adapters' lists them."
            )
        return cls(scheme=scheme, raw=raw, path=path, params=dict(parse_qsl(query)))

    def match_path(self, pattern: str, expected: str) -> re.Match[str]:
        """The path, without its leading and trailing slashes, matched whole against the regex ``pattern``.

        A path that does not match is a :class:`UsageError` saying what was ``expected``, e.g.
        ``url.match_path(r"projects/(\\d+|new)", "labelstudio://HOST:PORT/projects/ID")``; the groups are the
        path's parts.
        """
        match = re.fullmatch(pattern, self.path.strip("/"))
        if match is None:
            raise UsageError(f"{self}: expected {expected}")
        return match

    def base_url(self) -> str:
        """``http(s)://host:port``: https unless asked for http or talking to loopback."""
        if not self.host:
            raise UsageError(f"{self.scheme}: URL needs a host, e.g. {self.scheme}://127.0.0.1:8080/...")
        proto = self.transport or ("http" if is_loopback(self.host) else "https")
        if proto not in ("http", "https"):
            raise UsageError(f"Unknown transport {proto!r}: use {self.scheme}+http:// or {self.scheme}+https://")
        host = f"[{self.host}]" if ":" in self.host else self.host
        # The same rule as for URLs from the environment or the config file (http only to loopback or with +http).
        return check_server_url(f"{proto}://{host}" + (f":{self.port}" if self.port else ""),
                                allow_http=self.transport == "http", source=f"{self.scheme} URL", scheme=self.scheme)

    def __str__(self) -> str:
        return redact(self.raw)


def redact(url: str) -> str:
    """Hide user:password@ and secret-looking query values in a URL for messages."""
    import re

    url = re.sub(r"//[^/@\s]+@", "//***@", url)
    return re.sub(r"(?i)((?:token|key|password|secret)=)[^&\s]+", r"\1***", url)


class Adapter(ABC):
    """One annotation tool. Subclasses translate; they keep no state the tool does not."""

    scheme: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: optional modules this adapter imports, mapped to the pip requirement that installs them
    requires: ClassVar[dict[str, str]] = {}
    url_example: ClassVar[str] = ""
    #: the adapter's typed options (:class:`annobridge.options.AdapterOptions`), read into ``self.options``
    #: from the URL's query, the environment and the config file; None: the adapter reads ``url.params`` itself
    Options: ClassVar[type[AdapterOptions] | None] = None

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None) -> None:
        self.url = url
        self.config = config or AdapterConfig.for_scheme(url.scheme)
        self.options: Any = None
        if self.Options is not None:
            self.options = parse_options(self.Options, url.scheme, url.params, self.config.section, self.config.env)
        #: after a pull: a value to pass as ``since`` next time to get only what changed
        self.cursor: Any = None
        #: inputs a pull could not turn into records, as (where, reason); reports count them
        self.skipped: list[tuple[str, str]] = []
        #: spans a pull repaired or left out *inside* records it did yield, as (record id, kind, why)
        #: with kind "adjusted" or "dropped". They never count as skipped records: the export
        #: adds them to ``spans_adjusted`` / ``spans_dropped`` and names the documents.
        self.span_notes: list[tuple[str, str, str]] = []

    @classmethod
    def check_dependencies(cls) -> None:
        import importlib.util

        for module, requirement in cls.requires.items():
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(cls.scheme, module, requirement)

    # -- operations; adapters override what their capabilities claim -------------

    def ensure_project(self, schema: LabelSchema) -> Any:
        """Create the project/dataset for ``schema`` if missing; check it matches if present."""
        raise self._unsupported("creating projects")

    def import_documents(
        self,
        documents: Iterable[Document],
        *,
        schema: LabelSchema | None = None,
        predictions: dict[str, Prediction] | None = None,
    ) -> ImportResult:
        """Add documents (optionally with a pre-annotation each, keyed by document id).

        Idempotent: a document whose id is already in the project is not added again. The steps every
        tool shares happen here, once: the project is ensured from ``schema``; a document that no tool
        can take (:func:`~annobridge.jsonio.document_problem`: NaN in its meta, a lone surrogate, an
        empty id) and a second, different document with an id already in the input fail alone, with
        their reason, before anything is sent (the same document listed twice counts as existing); the
        rest streams into :meth:`write_documents`, the adapter's translation.
        """
        if not self.capabilities.import_documents:
            raise self._unsupported("importing documents")
        if schema is not None and self.capabilities.create_project:
            self.ensure_project(schema)
        result = ImportResult()
        result.merge(self.write_documents(self._importable(documents, predictions or {}, result), schema=schema))
        return result

    @staticmethod
    def _importable(
        documents: Iterable[Document], predictions: dict[str, Prediction], result: ImportResult
    ) -> Iterator[tuple[Document, Prediction | None]]:
        from .jsonio import document_problem

        seen: dict[str, tuple[str, Any]] = {}
        for doc in documents:
            problem = document_problem(doc)
            if problem is None and doc.id in seen:
                if seen[doc.id] == (doc.text, doc.meta):
                    result.existing += 1  # the same document listed twice: it is there once
                    continue
                problem = "another document in this import has the same id (the first one is imported)"
            if problem is not None:
                result.failed.append((doc.id, problem))
                continue
            seen[doc.id] = (doc.text, doc.meta)
            yield doc, predictions.get(doc.id)

    def write_documents(
        self, items: Iterator[tuple[Document, Prediction | None]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        """Write checked documents, each with its prediction or None: the tool-specific part of an import.

        Look up which ids are there (``existing``), send the rest in batches (``created``), and report a
        document the tool refuses in ``failed`` with the tool's reason, never the whole batch for it.
        """
        raise self._unsupported("importing documents")

    def push_predictions(self, items: Iterable[tuple[Document, Prediction]]) -> ImportResult:
        """Attach model pre-annotations to documents (imported first when missing)."""
        raise self._unsupported("pushing predictions")

    def write_annotations(
        self, items: Iterable[tuple[Document, Annotation]], *, schema: LabelSchema | None = None
    ) -> ImportResult:
        """Write people's annotations, each as its annotator where the tool allows (``annobridge copy``).

        Documents missing in the project are imported first (counted in ``documents_created``).
        Idempotent: an annotation the annotator already has there, with the same content, counts as
        ``existing``. One the tool cannot hold as given (an unknown user, an answer it has no word for)
        fails alone, with the reason; the result counts annotations, not documents.
        """
        raise self._unsupported("writing annotations")

    def push_review(self, items: Iterable[ReviewItem], *, schema: LabelSchema) -> ImportResult:
        """Put documents up for adjudication with each annotator's version visible to the reviewer.

        The default, for tools that show several predictions per document (Label Studio): the documents
        are imported (their meta names each annotator's version, :data:`annobridge.review.REVIEW_META_KEY`)
        and every version is pushed as a prediction whose ``model_version`` is the annotator. The result
        counts documents; a document whose versions fail is failed once, with the tool's reason.
        """
        items = list(items)
        result = self.import_documents([item.document for item in items], schema=schema)
        failed = {doc_id for doc_id, _ in result.failed}
        pushed = self.push_predictions(
            (item.document, version)
            for item in items
            if item.document.id not in failed
            for version in item.versions.values()
        )
        for doc_id, why in pushed.failed:
            if doc_id not in failed:  # imported, but the reviewer would not see every version: failed
                failed.add(doc_id)
                result.failed.append((doc_id, why))
                if result.created:
                    result.created -= 1
                else:
                    result.existing -= 1
        return result

    def set_annotators_per_doc(self, n: int) -> str:
        """Ask the tool to have each document annotated by ``n`` people, with its own setting.

        Returns one sentence saying what was set (or, for a tool configured outside annobridge's reach,
        what to set); raises :class:`UsageError` where the tool has no such setting.
        """
        raise UsageError(f"The {self.scheme} adapter has no setting for how many annotators see each document.")

    def review_decisions(self, schema: LabelSchema) -> tuple[str, str | None]:
        """After :meth:`push_review`: where the adjudicator's decisions will be (a source URL for
        ``export --adjudicated``), and what the reviewer runs to start, when the tool needs a command.

        Default: the decisions are made in this project, in the tool's own interface.
        """
        return self.url.raw, None

    @abstractmethod
    def pull(
        self,
        *,
        answers: Collection[Answer] | None = None,
        since: Any = None,
    ) -> Iterator[Record]:
        """Yield one :class:`Record` per document with all its annotations.

        ``answers`` keeps only annotations with those answers; ``since`` (a cursor
        from :attr:`cursor`, or a datetime) limits to what changed after it.
        """

    def skip(self, where: str, reason: str) -> None:
        """Account for an input the adapter cannot yield (the export report lists it)."""
        self.skipped.append((where, reason))

    def note_span(self, record_id: str, kind: str, why: str) -> None:
        """Account for a span repaired (``kind="adjusted"``) or left out (``"dropped"``) during a pull."""
        if kind not in ("adjusted", "dropped"):
            raise ValueError(f"span note kind must be 'adjusted' or 'dropped', not {kind!r}")
        self.span_notes.append((record_id, kind, why))

    def count(self) -> int | None:
        """How many records a full pull yields, when cheap to know (for progress bars)."""
        return None

    def server_version(self) -> str | None:
        """The tool's own name and version as its server reports them (``"label-studio 1.23.2"``), or None.

        ``annobridge adapters SOURCE`` shows it; an unreachable server raises as any request would.
        File-based adapters and servers that do not say return None.
        """
        return None

    def source_schema(self) -> LabelSchema | None:
        """The task and labels the source's project asks annotators for, when the tool stores them.

        The export refuses a ``--task`` that does not fit (a span task on a label question, say)
        before anything is written. ``None`` means the source does not say (plain files).
        """
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> Adapter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _unsupported(self, what: str) -> UsageError:
        return UsageError(f"The {self.scheme} adapter does not support {what}.")

    def require(self, *flags: str, to: str) -> None:
        """Refuse, before any work starts, what this adapter's capabilities do not cover.

        ``adapter.require("import_documents", to="import a corpus")`` raises a UsageError naming the
        missing capability; the CLI, the export and the AL loop call it first.
        """
        missing = [flag for flag in flags if not getattr(self.capabilities, flag)]
        if missing:
            can = ", ".join(self.capabilities.enabled()) or "nothing beyond reading"
            raise UsageError(
                f"Cannot {to} with {self.url}: the {self.scheme} adapter lacks {', '.join(missing)} (it can: {can})."
            )


def labels_for(source: Adapter, records: Iterable[Record], task: TaskKind | str) -> list[str]:
    """The labels for a destination project: those the source's project asks for, else those ``records`` use."""
    asked = source.source_schema()
    if asked is not None and asked.labels:
        return sorted(asked.labels)
    return sorted(LabelSchema.infer(task, records).labels)


def filter_answers(record: Record, answers: Collection[Answer] | None) -> Record:
    if answers is None:
        return record
    keep = set(answers)
    record.annotations = [a for a in record.annotations if a.answer in keep]
    return record


def as_datetime(value: Any) -> datetime | None:
    from .model import _dt_from_json

    return _dt_from_json(value)


def since_datetime(value: Any) -> datetime | None:
    """A pull's ``since`` as a datetime: a datetime, an ISO date, or a cursor (its watermark), or None.

    What a user passes (``--since``) is checked here: anything else is a :class:`UsageError` naming what
    is accepted, not a traceback.
    """
    if value is None or value == "" or isinstance(value, datetime):
        return value or None
    if isinstance(value, str) and value.lstrip().startswith("{"):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise UsageError(f"--since {value[:80]!r} is not valid cursor JSON") from None
    if isinstance(value, dict):
        value = value.get("watermark")
        if value is None:
            return None
    try:
        return as_datetime(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(
            f"--since {str(value)[:80]!r} is neither a cursor printed by a pull nor an ISO date "
            "(e.g. 2026-01-31T12:00:00+00:00)"
        ) from None


def as_utc(value: Any) -> datetime | None:
    """:func:`as_datetime`, with a naive result taken as UTC (what servers without offsets mean), so it compares."""
    dt = as_datetime(value)
    if dt is not None and dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt
