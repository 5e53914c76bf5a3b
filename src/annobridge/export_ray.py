"""``export(engine="ray")``: records become DocBin shards in parallel Ray tasks; the driver decides the rest.

What runs where:

* **driver** (the process that called :func:`annobridge.export.export`): the pull (or the survey's
  spool), the merge policy's set-up (``dawid-skene`` is fitted there), each record's split (the
  same stable hash, :mod:`annobridge.split`), the report, the manifest and the atomic staging
  folder. Records are grouped per split into chunks of ``shard_size`` records (fewer for a rare
  split, see ``_WINDOW``) and sent to the tasks as plain dicts.
* **tasks**: :func:`annobridge.export.convert_record`, the local engine's own conversion (merge,
  offset checks, token alignment, skip reasons), over one chunk with the same
  :class:`~annobridge.convert.DocConverter`; each returns the shard's bytes and one
  :class:`~annobridge.export.RecordOutcome` per record, never a Doc. The driver writes the shard
  into the staging folder (so no worker needs the driver's disk) and tallies the outcomes in the
  records' order with the same :class:`~annobridge.export.Ledger` as the local engine.

Offset units are the one thing a conversion learns from earlier records (a source's spans that
prove UTF-16 code units decide its ambiguous ones, :mod:`annobridge.offsets`). Only span tasks on
non-ASCII text whose readings can differ (an astral character, or once a UTF-8 hint was seen)
consult that evidence; the driver converts exactly those records itself, in order, with its own
converter, and ships the finished Doc in the chunk, so the evidence grows as in the local run.

So each split holds the same documents in the same order as the local engine's, and the report
and the manifest's entries are the same. What can differ: shard boundaries (a shard holds the
exported documents of one chunk of records, so skipped records make it smaller, a rare split's
shards are cut earlier, and a shard whose records were all skipped is not written: its number is
left out) and so each manifest line's ``file`` and ``index``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacy.tokens import Doc, DocBin

from . import raystart
from .convert import DocConverter
from .errors import AnnobridgeError, UsageError
from .formats import DOCBIN_ATTRS, DocBinWriter, LeanDocBin
from .model import Record
from .offsets import UTF8, OffsetUnits

if TYPE_CHECKING:
    from .export import Ledger, Place, RecordOutcome

__all__ = ["INSTALL_HINT", "RayTaskFailedError", "check_ray_options", "convert_on_ray", "require_ray"]

INSTALL_HINT = raystart.INSTALL_HINT

#: a chunk is sent once its first record is this many shard sizes behind the newest record read, full
#: or not: the driver tallies in record order, so a rare split's filling chunk would otherwise hold
#: back (and keep in memory) the outcomes of every record read after its first one
_WINDOW = 8
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class RayTaskFailedError(AnnobridgeError):
    """A conversion task failed on Ray: nothing was written, the previous export is as it was."""


def require_ray() -> Any:
    """The ``ray`` module, or a usage error that says how to install it."""
    return raystart.import_ray("--engine ray")


def check_ray_options(fmt: str, workers: int | None) -> None:
    """Refuse what the Ray engine cannot do before anything is read or written."""
    if fmt != "spacy":
        raise UsageError(f"--engine ray writes DocBin shards: use it with --format spacy, not {fmt}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    require_ray()


def order_sensitive(record: Record, utf8_seen: bool) -> bool:
    """Whether converting ``record`` may read (and grow) the source's offset-unit evidence.

    Only a span task's non-ASCII text can: its span offsets read differently in code points and
    UTF-16 after an astral character, and in UTF-8 once a hint or a proof names UTF-8 (which needs
    a UTF-8 hint first; ``utf8_seen`` says one was seen in this or an earlier record). Everywhere
    else every reading is the same and the converter neither consults nor adds evidence.
    """
    text = record.text
    if text.isascii():
        return False
    return utf8_seen or _ASTRAL.search(text) is not None


def _names_utf8(record: Record) -> bool:
    return any(ann.meta and ann.meta.get("offset_units") == UTF8 for ann in record.annotations)


@dataclass
class _Chunk:
    """Records of one split on their way to one task (and so to one shard)."""

    split: str
    number: int
    #: the records' positions in the pull (what the driver tallies by)
    seqs: list[int] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    #: ("record", Record.to_dict()) to convert, or ("doc", its index in ``docs``) converted on the driver
    items: list[tuple[str, Any]] = field(default_factory=list)
    #: the Docs the driver converted, in a DocBin that stores what the shard stores: one ``to_bytes``
    #: per chunk (``Doc.to_bytes`` costs milliseconds per doc)
    docs: LeanDocBin | None = None
    #: outcomes of the records the driver converted, by position in the chunk
    done: dict[int, RecordOutcome] = field(default_factory=dict)
    #: how many records it holds, also once ``items`` is dropped (sent: Ray holds its copy)
    size: int = 0

    @property
    def file(self) -> str:
        return f"{self.split}/{self.split}-{self.number:04d}.spacy"

    def describe(self) -> str:
        first, last = self.places[0].id, self.places[-1].id
        return f"{self.size} {self.split} records ({first} .. {last})"


# -- the worker side -------------------------------------------------------------

_worker_cache: dict[str, DocConverter] = {}


def _worker_converter(token: str, holder: list[Any]) -> DocConverter:
    """The export's converter, unpickled once per worker process and export (``token``)."""
    converter = _worker_cache.get(token)
    if converter is None:
        import ray

        nlp, schema, align, policy = ray.get(holder[0])
        _worker_cache.clear()  # one export at a time per worker: do not keep an old pipeline alive
        converter = _worker_cache[token] = DocConverter(nlp, schema, align=align, policy=policy)
    return converter


def _convert_chunk(
    token: str, holder: list[Any], items: list[tuple[str, Any]], driver_docs: bytes | None = None
) -> tuple[bytes | None, list[tuple[RecordOutcome | None, int | None]], tuple[dict[str, int], dict[Any, int]]]:
    """One task: the chunk's shard (None when every record was skipped), per record (outcome, index in it).

    Also returns the offset-unit evidence the chunk produced (none for the records the driver sends here;
    returned so that the driver's report counts whatever a conversion records).
    """
    from .export import convert_record

    converter = _worker_converter(token, holder)
    converter.units = OffsetUnits()  # this chunk's own evidence, reported back
    vocab = converter.nlp.vocab
    max_length = converter.nlp.max_length
    shard = LeanDocBin(attrs=DOCBIN_ATTRS)
    converted = [] if driver_docs is None else list(DocBin().from_bytes(driver_docs).get_docs(vocab))
    results: list[tuple[RecordOutcome | None, int | None]] = []
    for kind, payload in items:
        if kind == "doc":
            doc: Doc | None = converted[payload]
            outcome: RecordOutcome | None = None
        else:
            outcome, doc = convert_record(converter, DocBinWriter, Record.from_dict(payload), max_length)
        if doc is None:
            results.append((outcome, None))
        else:
            results.append((outcome, len(shard)))
            shard.add(doc)
    units = (dict(converter.units.proofs), dict(converter.units.decisions))
    return (shard.to_bytes() if len(shard) else None), results, units


# -- the driver side -------------------------------------------------------------


def convert_on_ray(
    records: Iterator[Record],
    ledger: Ledger,
    converter: DocConverter,
    *,
    place: Callable[[Record], Place],
    staged: Path,
    shard_size: int,
    address: str | None,
    workers: int | None,
    shown: str,
) -> None:
    """Convert ``records`` on Ray into shards under ``staged``; every record is tallied on ``ledger``.

    A Ray that is already running (``ray.init`` called by the caller) is used as it is; otherwise
    this starts one (``address``: connect to that cluster; without it a local Ray with ``workers``
    CPUs) and shuts it down afterwards.
    """
    from .export import convert_record

    ray = require_ray()
    started = raystart.start_ray(ray, address, workers)
    slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    run = _Run(ray, ledger, staged, shard_size, slots, shown)
    try:
        token = uuid.uuid4().hex
        # the pipeline goes to the object store once; a list keeps Ray from unpacking it per task,
        # so each worker unpickles it once per export (_worker_converter)
        holder = [ray.put((converter.nlp, converter.schema, converter.align, converter.policy))]
        task = ray.remote(num_cpus=1)(_convert_chunk)
        run.submit_fn = lambda chunk: task.remote(
            token, holder, chunk.items, None if chunk.docs is None else chunk.docs.to_bytes()
        )
        max_length = converter.nlp.max_length
        utf8_seen = False
        sensitive_task = converter.schema.task.is_span_task
        for seq, record in enumerate(records):
            where = place(record)
            chunk = run.chunk_for(where.split, seq)
            if sensitive_task and not utf8_seen and _names_utf8(record):
                utf8_seen = True
            if sensitive_task and order_sensitive(record, utf8_seen):
                # converted here, in the pull's order, so the offset-unit evidence grows as in a local run
                outcome, doc = convert_record(converter, DocBinWriter, record, max_length)
                if doc is None:
                    run.ready[seq] = (outcome, where, None, 0)
                else:
                    chunk.done[len(chunk.items)] = outcome
                    chunk.seqs.append(seq)
                    chunk.places.append(where)
                    if chunk.docs is None:
                        chunk.docs = LeanDocBin(attrs=DOCBIN_ATTRS)
                    chunk.items.append(("doc", len(chunk.docs)))
                    chunk.docs.add(doc)
            else:
                chunk.seqs.append(seq)
                chunk.places.append(where)
                chunk.items.append(("record", record.to_dict()))
            run.step(seq)
        run.finish()
        for unit, n in run.proofs.items():
            converter.units.proofs[unit] += n
        for decision, n in run.decisions.items():
            converter.units.decisions[decision] += n
    except BaseException:
        run.cancel()  # a failed pull, a bad record, Ctrl-C: a Ray the caller keeps need not finish our tasks
        raise
    finally:
        if started:
            ray.shutdown()


class _Run:
    """One export's chunks: filling, in flight, and finished ones waiting to be tallied in record order."""

    def __init__(self, ray: Any, ledger: Ledger, staged: Path, shard_size: int, slots: int, shown: str) -> None:
        self.ray, self.ledger, self.staged, self.shard_size, self.shown = ray, ledger, staged, shard_size, shown
        #: two tasks per CPU in flight: one converting, one queued, so a CPU never waits for the driver
        self.max_in_flight = 2 * slots
        self.submit_fn: Callable[[_Chunk], Any] = lambda chunk: None
        self.filling: dict[str, _Chunk] = {}
        self.numbers: dict[str, int] = {}
        self.in_flight: dict[Any, _Chunk] = {}
        #: seq -> (outcome, place, file, index): finished records not yet tallied
        self.ready: dict[int, tuple[RecordOutcome, Place, str | None, int]] = {}
        self.next_seq = 0
        self.files: dict[str, list[tuple[int, str]]] = {}
        self.proofs: dict[str, int] = {}
        self.decisions: dict[Any, int] = {}

    def chunk_for(self, split: str, seq: int) -> _Chunk:
        chunk = self.filling.get(split)
        if chunk is None:
            number = self.numbers.get(split, 0)
            self.numbers[split] = number + 1
            chunk = self.filling[split] = _Chunk(split, number)
        return chunk

    def step(self, seq: int) -> None:
        """After record ``seq``: send full (or too old) chunks, take in finished ones, tally what is ready."""
        sent = False
        for split, chunk in list(self.filling.items()):
            first = chunk.seqs[0] if chunk.seqs else seq
            if len(chunk.items) >= self.shard_size or seq - first >= _WINDOW * self.shard_size:
                del self.filling[split]
                self._submit(chunk)
                sent = True
        # ray.wait costs a round trip: look for finished tasks when one was sent, else now and then
        if self.in_flight and (sent or seq % 512 == 0):
            self._collect(block=False)
        self._drain()

    def finish(self) -> None:
        for chunk in list(self.filling.values()):
            self._submit(chunk)
        self.filling.clear()
        while self.in_flight:
            self._collect(block=True)
            self._drain()
        self._drain()
        if self.ready:  # a bug, not data: every record read must have been tallied
            raise AssertionError(f"{len(self.ready)} converted records were not tallied")
        report = self.ledger.report
        for split in report.docs_per_split:  # the splits in the order of their first document, as locally
            report.files[split] = [name for _, name in sorted(self.files.get(split, []))]

    def _submit(self, chunk: _Chunk) -> None:
        if not chunk.items:
            return
        while len(self.in_flight) >= self.max_in_flight:
            self._collect(block=True)
        chunk.size = len(chunk.items)
        self.in_flight[self.submit_fn(chunk)] = chunk
        chunk.items, chunk.docs = [], None  # in Ray's object store by now: the driver keeps no second copy

    def _collect(self, *, block: bool) -> None:
        ray = self.ray
        refs = list(self.in_flight)
        done, _ = ray.wait(refs, num_returns=1 if block else len(refs), timeout=None if block else 0)
        if block and len(refs) > 1:  # and whatever else has finished meanwhile
            done += ray.wait([r for r in refs if r not in done], num_returns=len(refs) - 1, timeout=0)[0]
        for ref in done:
            chunk = self.in_flight.pop(ref)
            try:
                data, results, (proofs, decisions) = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self.cancel()
                raise RayTaskFailedError(
                    f"Ray task converting {chunk.describe()} failed: {_cause(exc)}. "
                    f"Nothing was written; {self.shown} was left as it was."
                ) from None
            if data is not None:
                (self.staged / chunk.split).mkdir(parents=True, exist_ok=True)
                (self.staged / chunk.file).write_bytes(data)
                self.files.setdefault(chunk.split, []).append((chunk.number, chunk.file))
            for unit, n in proofs.items():
                self.proofs[unit] = self.proofs.get(unit, 0) + n
            for decision, n in decisions.items():
                self.decisions[decision] = self.decisions.get(decision, 0) + n
            for i, (outcome, index) in enumerate(results):
                if outcome is None:
                    outcome = chunk.done[i]
                file = None if index is None else chunk.file
                self.ready[chunk.seqs[i]] = (outcome, chunk.places[i], file, index or 0)

    def _drain(self) -> None:
        ready, account = self.ready, self.ledger.account
        while self.next_seq in ready:
            outcome, where, file, index = ready.pop(self.next_seq)
            account(outcome, where, file, index)
            self.next_seq += 1

    def cancel(self) -> None:
        for ref in self.in_flight:
            try:
                self.ray.cancel(ref)
            except Exception:  # best effort: the export fails either way
                pass
        self.in_flight.clear()


def _cause(exc: BaseException) -> str:
    """The worker's own exception, in one line (a RayTaskError's message is the whole remote traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {str(cause)[:300]}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:300] if lines else ''}"

