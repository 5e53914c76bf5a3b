"""The adapter contract: one test suite that every adapter runs against its real backend.

An adapter's test module subclasses :class:`AdapterContract` and provides one fixture,
``backend``, returning a :class:`ContractBackend`: a fresh, empty project on the real tool and a
way to create annotations **the way the tool's users do** (its SDK, its REST calls as its web UI
sends them, its own file format). Every test of the class then runs against that backend::

    from annobridge.testing import AdapterContract, ContractBackend

    class TestMyToolContract(AdapterContract):
        @pytest.fixture
        def backend(self, my_server, tmp_path):
            return ContractBackend(url=my_server.new_project_url(), annotate=my_server.annotate_as_user)

What is checked, for every adapter: importing is idempotent; predictions keep their scores and
model version; a pull returns each annotator's annotation separately; annotations written as their
annotators (where the adapter claims it) come back as them, once; an incremental pull returns
only what changed; texts with emoji, CJK, ZWJ sequences, combining marks and a repeated word right
after astral characters come back with every entity on exactly its text; one bad document in a
batch costs only itself; and the capabilities an adapter claims are the ones it has (an operation
it does not claim raises a clear :class:`~annobridge.errors.UsageError`). Optional hooks cover
what only servers have: a secret echoed back in an error, a server killed mid-pull.

Needs pytest (the ``test`` extra); nothing else in annobridge imports this module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import spacy

from .adapter import Adapter
from .config import AdapterConfig
from .convert import DocConverter
from .errors import AnnobridgeError, UsageError
from .model import Annotation, Document, LabelSchema, Prediction, Record, Span, TaskKind
from .plugins import open_adapter

__all__ = ["NAN_DOCUMENT", "UNICODE_TEXTS", "AdapterContract", "Annotate", "ContractBackend", "entity"]

#: texts and their entities as (surface, label, which occurrence). The fourth is adversarial: five
#: astral characters, a space, then "Zara Zara". The second "Zara", read as UTF-16 code units, lands exactly
#: on the first, so a verifier that guesses units moves it there and then drops it as an overlap.
UNICODE_TEXTS: list[tuple[str, list[tuple[str, str, int]]]] = [
    ("Maria moved to Oslo last spring.", [("Maria", "PERSON", 0), ("Oslo", "GPE", 0)]),
    ("😀 Ana loves 🇳🇴 Norway and 東京.", [("Ana", "PERSON", 0), ("Norway", "GPE", 0), ("東京", "GPE", 0)]),
    # a ZWJ family emoji (one grapheme, five code points, eight UTF-16 units) and combining accents
    ("The 👩‍👩‍👧 family met Jose\u0301 in Zu\u0308rich.", [("Jose\u0301", "PERSON", 0), ("Zu\u0308rich", "GPE", 0)]),
    ("🎉🎉🎉🎉🎉 Zara Zara opened in Paris.", [("Zara", "ORG", 0), ("Zara", "ORG", 1), ("Paris", "GPE", 0)]),
    ("北京欢迎你, said Li Wei to 😀 Zara.", [("Li Wei", "PERSON", 0), ("Zara", "ORG", 0)]),
]


#: a document no JSON API can take honestly: JSON has no NaN, and a server that stored Python's ``NaN`` token
#: would hand back an export no strict JSON reader parses. An adapter must refuse it alone, before sending.
NAN_DOCUMENT = Document("contract-nan", "A document whose meta cannot be JSON.", {"weight": float("nan")})


def entity(text: str, surface: str, label: str, nth: int = 0) -> Span:
    """The span of the ``nth`` occurrence of ``surface`` in ``text``, in code points, with its text."""
    start = text.index(surface)
    for _ in range(nth):
        start = text.index(surface, start + len(surface))
    return Span(start, start + len(surface), label, text=surface)


#: (adapter, document id as imported, annotator name, spans or categories) -> None; creates the
#: annotation in the tool as its users would. Spans are code points with their text: converting
#: them to the tool's own units is the backend's job, exactly as the tool's UI would.
Annotate = Callable[[Adapter, str, str, list[Span], dict[str, float]], None]


@dataclass
class ContractBackend:
    #: a fresh, empty project / dataset / file on the real backend
    url: str
    #: creates annotations as the tool's users do; None when the tool cannot hold annotations
    annotate: Annotate | None = None
    schema: LabelSchema = field(default_factory=lambda: LabelSchema(TaskKind.NER, ["PERSON", "GPE", "ORG"]))
    #: a document the tool refuses, to check that one bad record costs only itself (None: skip that test)
    bad_document: Document | None = None
    #: seconds to wait after annotating before an incremental pull sees the change (timestamp resolution)
    settle: float = 0.0
    #: kills and restarts the server mid-pull (servers only)
    restart: Callable[[], None] | None = None
    #: three annotators as the tool names them on a pull (user names, e-mails, session ids); ``annotate``
    #: receives these names and must act as that user
    annotators: tuple[str, str, str] = ("alice", "bob", "carol")
    #: the adapter's settings (keys, passwords); None reads them as a user's run would (environment, config file)
    config: AdapterConfig | None = None
    #: servers only: the adapter's URL with ``{port}`` for the port, and the environment variables that carry its
    #: credentials, for a CLI run against a port nobody listens on (its secret values must never print)
    offline_url: str | None = None
    offline_env: dict[str, str] = field(default_factory=dict)
    #: more environment for that CLI run that is no secret (a PYTHONPATH holding the plugin, say)
    cli_env: dict[str, str] = field(default_factory=dict)
    #: whether the tool can mark an annotation as ground truth (Argilla cannot: such a write must fail alone)
    ground_truth: bool = True
    #: what ``adapter.server_version()`` must say for the running server (None: the tool does not report one)
    server_version: str | None = None


def _docs(n: int = len(UNICODE_TEXTS)) -> list[Document]:
    return [Document.create(text, id=f"contract-{i}") for i, (text, _) in enumerate(UNICODE_TEXTS[:n])]


def _gold(i: int) -> list[Span]:
    text, ents = UNICODE_TEXTS[i]
    return [entity(text, surface, label, nth) for surface, label, nth in ents]


def _entities(record: Record, schema: LabelSchema) -> dict[str, list[tuple[str, str]]]:
    """Each annotator's entities as (text, label) after the core's verification and alignment."""
    converter = DocConverter(spacy.blank("xx"), LabelSchema(schema.task, []), align="strict")
    out: dict[str, list[tuple[str, str]]] = {}
    for ann in record.annotations:
        single = Record(record.document, [ann])
        result = converter.convert(single)
        assert result.doc is not None, (record.id, ann.annotator, result.reason, result.span_notes)
        dropped = [n for n in result.span_notes if n.startswith("dropped")]
        assert not dropped, (record.id, ann.annotator, dropped)
        out[ann.annotator] = sorted((e.text, e.label_) for e in result.doc.ents)
    return out


class AdapterContract:
    """Tests every adapter must pass against its real backend; subclass and provide ``backend``."""

    @pytest.fixture
    def adapter(self, backend: ContractBackend) -> Iterator[Adapter]:
        with open_adapter(backend.url, backend.config) as adapter:
            if adapter.capabilities.create_project:
                adapter.ensure_project(backend.schema)
            yield adapter

    def _need(self, adapter: Adapter, *flags: str) -> None:
        missing = [f for f in flags if not getattr(adapter.capabilities, f)]
        if missing:
            pytest.skip(f"{adapter.scheme} does not claim {', '.join(missing)} (test_capabilities_are_honest checks)")

    # -- documents -------------------------------------------------------------------

    def test_import_is_idempotent_and_keeps_texts_exact(self, adapter: Adapter, backend: ContractBackend) -> None:
        self._need(adapter, "import_documents")
        docs = _docs()
        first = adapter.import_documents(docs, schema=backend.schema)
        assert (first.created, first.existing, first.failed) == (len(docs), 0, [])
        again = adapter.import_documents(docs, schema=backend.schema)
        assert (again.created, again.existing, again.failed) == (0, len(docs), [])
        pulled = {r.id: r.text for r in adapter.pull()}
        assert pulled == {d.id: d.text for d in docs}, "ids or texts changed on the way through the tool"

    def test_predictions_keep_scores_and_model_version(self, adapter: Adapter, backend: ContractBackend) -> None:
        self._need(adapter, "import_documents", "prediction_scores")
        docs = _docs(3)
        predictions = {
            d.id: Prediction(
                "contract-model-1",
                spans=[
                    Span(s.start, s.end, s.label, score=0.25 + 0.1 * k, text=s.text) for k, s in enumerate(_gold(i))
                ],
                score=0.5,
            )
            for i, d in enumerate(docs)
        }
        adapter.import_documents(docs, schema=backend.schema, predictions=predictions)
        by_id = {r.id: r for r in adapter.pull()}
        for i, doc in enumerate(docs):
            (pred,) = by_id[doc.id].predictions
            assert pred.model_version == "contract-model-1"
            got = sorted((doc.text[s.start : s.end], s.label, round(s.score or 0, 4)) for s in pred.spans)
            want = sorted((s.text, s.label, round(0.25 + 0.1 * k, 4)) for k, s in enumerate(_gold(i)))
            assert got == want, (doc.id, got, want)

    # -- annotations -----------------------------------------------------------------

    def _annotated(self, adapter: Adapter, backend: ContractBackend, annotators: tuple[str, ...]) -> list[Document]:
        if backend.annotate is None:
            pytest.skip(f"{adapter.scheme}: the backend cannot hold annotations")
        docs = _docs()
        if adapter.capabilities.import_documents:
            adapter.import_documents(docs, schema=backend.schema)
        for i, doc in enumerate(docs):
            for k, name in enumerate(annotators):
                spans = _gold(i) if k == 0 else _gold(i)[:1]  # the second annotator finds fewer
                backend.annotate(adapter, doc.id, name, spans, {})
        return docs

    def test_pull_returns_each_annotator_with_exact_entities(self, adapter: Adapter, backend: ContractBackend) -> None:
        self._need(adapter, "per_annotator")
        first, second, _ = backend.annotators
        docs = self._annotated(adapter, backend, (first, second))
        by_id = {r.id: r for r in adapter.pull()}
        assert set(by_id) >= {d.id for d in docs}
        for i, doc in enumerate(docs):
            entities = _entities(by_id[doc.id], backend.schema)
            assert set(entities) == {first, second}, (doc.id, list(entities))
            assert entities[first] == sorted((s.text or "", s.label) for s in _gold(i)), doc.id
            assert entities[second] == sorted((s.text or "", s.label) for s in _gold(i)[:1]), doc.id

    def test_incremental_pull_returns_only_what_changed(self, adapter: Adapter, backend: ContractBackend) -> None:
        self._need(adapter, "pull_since", "per_annotator")
        first, _, third = backend.annotators
        docs = self._annotated(adapter, backend, (first,))
        full = list(adapter.pull())
        cursor = adapter.cursor
        assert cursor is not None, "a pull must leave a cursor for the next incremental pull"
        time.sleep(backend.settle)
        assert backend.annotate is not None
        backend.annotate(adapter, docs[0].id, third, _gold(0), {})
        changed = list(adapter.pull(since=cursor))
        assert [r.id for r in changed] == [docs[0].id], [r.id for r in changed]
        assert {a.annotator for a in changed[0].annotations} >= {third}
        assert len(changed) < len(full)

    def test_written_annotations_come_back_as_their_annotators(
        self, adapter: Adapter, backend: ContractBackend
    ) -> None:
        """``annobridge copy``'s writing half: each annotation lands as its annotator, ground truth kept, once."""
        self._need(adapter, "write_annotations", "per_annotator")
        first, second, _ = backend.annotators
        docs = _docs()
        if adapter.capabilities.import_documents:
            adapter.import_documents(docs, schema=backend.schema)
        written = []
        for i, doc in enumerate(docs):
            written.append((doc, Annotation(first, spans=_gold(i))))
            written.append((doc, Annotation(second, spans=_gold(i)[:1], ground_truth=i == 0)))
        result = adapter.write_annotations(written, schema=backend.schema)
        refused = 0 if backend.ground_truth else 1
        assert (result.created, result.existing) == (len(written) - refused, 0), result
        assert [doc_id for doc_id, _ in result.failed] == ([] if backend.ground_truth else [docs[0].id])
        assert all(why for _, why in result.failed)
        again = adapter.write_annotations(written, schema=backend.schema)
        assert (again.created, again.existing) == (0, len(written) - refused), "a re-run wrote twice"
        by_id = {r.id: r for r in adapter.pull()}
        for i, doc in enumerate(docs):
            entities = _entities(by_id[doc.id], backend.schema)
            want = {first: sorted((s.text or "", s.label) for s in _gold(i))}
            if backend.ground_truth or i != 0:
                want[second] = sorted((s.text or "", s.label) for s in _gold(i)[:1])
            assert entities == want, doc.id
            truth = {a.annotator for a in by_id[doc.id].annotations if a.ground_truth}
            assert truth == ({second} if i == 0 and backend.ground_truth else set()), doc.id

    def test_one_bad_document_costs_only_itself(self, adapter: Adapter, backend: ContractBackend) -> None:
        self._need(adapter, "import_documents")
        if backend.bad_document is None:
            pytest.skip(f"{adapter.scheme}: no document this tool refuses")
        docs = _docs(3)
        batch = [docs[0], backend.bad_document, docs[1], docs[2]]
        result = adapter.import_documents(batch, schema=backend.schema)
        assert result.created == 3 and [doc_id for doc_id, _ in result.failed] == [backend.bad_document.id]
        assert all(reason for _, reason in result.failed)
        assert {r.id for r in adapter.pull()} == {d.id for d in docs}

    # -- honesty -----------------------------------------------------------------------

    def test_capabilities_are_honest(self, adapter: Adapter, backend: ContractBackend) -> None:
        caps = adapter.capabilities
        doc = Document.create("Capabilities are checked.", id="contract-caps")
        operations: dict[str, Callable[[], object]] = {
            "import_documents": lambda: adapter.import_documents([doc], schema=backend.schema),
            "push_predictions": lambda: adapter.push_predictions([(doc, Prediction("m", score=0.5))]),
            "write_annotations": lambda: adapter.write_annotations(
                [(doc, Annotation(backend.annotators[0]))], schema=backend.schema
            ),
        }
        for flag, run in operations.items():
            if getattr(caps, flag):
                run()  # must work
            else:
                with pytest.raises(UsageError):
                    run()
        since = datetime.now(timezone.utc) + timedelta(days=1)
        if not caps.pull_since:
            try:
                later = list(adapter.pull(since=since))
            except AnnobridgeError:
                later = []
            # a tool without incremental pulls must not pretend: it either refuses or returns everything
            assert later == [] or len(later) == len(list(adapter.pull()))

    def test_killed_server_mid_pull_loses_nothing(self, adapter: Adapter, backend: ContractBackend) -> None:
        if backend.restart is None:
            pytest.skip(f"{adapter.scheme}: no server to kill")
        self._need(adapter, "import_documents")
        docs = _docs()
        adapter.import_documents(docs, schema=backend.schema)
        before = sorted(r.id for r in adapter.pull())
        pulled = adapter.pull()
        first = next(pulled)
        backend.restart()
        rest = [r.id for r in pulled]
        assert sorted([first.id, *rest]) == before  # nothing lost, nothing doubled

    def test_unreachable_server_through_the_cli(self, backend: ContractBackend, tmp_path: Path) -> None:
        """``annobridge pull`` on a port nobody listens on: one line, exit code 3, within seconds, no secret."""
        if backend.offline_url is None:
            pytest.skip("not a server adapter")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, **backend.cli_env, **backend.offline_env, "ANNOBRIDGE_CONFIG": str(tmp_path / "none")}
        began = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "annobridge", "pull", backend.offline_url.format(port=port),
             "-o", str(tmp_path / "out.jsonl")],
            capture_output=True, text=True, env=env, timeout=120,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 3, output
        assert f"cannot reach 127.0.0.1:{port} (connection refused): is the server running?" in proc.stderr
        for secret in backend.offline_env.values():
            assert secret not in output
        assert time.monotonic() - began < 30  # interpreter start included; the HTTP layer gives up within 10 s
        assert not (tmp_path / "out.jsonl").exists()  # nothing half-written

    def test_server_version_as_the_server_reports_it(self, adapter: Adapter, backend: ContractBackend) -> None:
        """``annobridge adapters SOURCE`` shows it; a tool that reports none must answer None, not guess."""
        assert adapter.server_version() == backend.server_version
