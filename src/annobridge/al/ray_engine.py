"""Pool scoring on Ray Data: ``Learner.score_pool(..., engine="ray")``.

What runs where:

* **driver** (this process): saves the Learner once, packs the saved folder into bytes and hands
  them to the actors; splits a local JSON Lines pool into byte-range shards (or streams any other
  source through :mod:`annobridge.readers` in windows); merges the candidates the actors send back
  into the same bounded heap as the local engine (:class:`~annobridge.al.strategies.TopCandidates`).
* **actors** (``map_batches`` over a fixed pool of ``workers`` actors, one CPU each): unpack and
  :meth:`Learner.load` the model once, read their shards line by line, score batches, and return
  plain columns only: pool position, score, and for documents that can still enter the top-k the
  document and its pre-annotation as JSON strings. Never spaCy ``Doc`` objects.

Pruning: each actor keeps its own top-``keep`` of the keys it has seen. A document that does not
enter it has ``keep`` documents with a larger ``(score, -position)`` key, so it cannot be in the
global top-``keep`` either; only the ones that enter travel to the driver with a prediction.

Same selection as the local engine for a fitted model: batch composition does not change a
document's probabilities, the driver offers candidates in pool order with the same fresh-document
index (``preserve_order``), and the heap breaks ties the same way (the earlier document wins).

Random scores (cold start, or the ``random`` strategy) differ from the local engine's: they are a
hash of ``(seed, document id)``, so they do not depend on how the pool is split among actors.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import logging
import os
import struct
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import raystart
from ..errors import DataError
from ..model import Document, Prediction
from .strategies import Candidate, TopCandidates

if TYPE_CHECKING:
    from .learner import Learner, PoolScores

__all__ = ["INSTALL_HINT", "import_ray", "init_ray", "score_pool_ray", "shutdown"]

log = logging.getLogger(__name__)

INSTALL_HINT = raystart.INSTALL_HINT

#: output row kinds: one summary per scored batch, then its candidates and its unreadable lines
SUMMARY, CANDIDATE, BAD = 0, 1, 2
#: a shard's byte offsets live in the low 40 bits of a position key (files up to 1 TiB)
_OFFSET_BITS = 40
#: shard sizes: small enough to spread a modest pool over the actors, large enough to amortise a call
_MIN_SHARD = 256 * 1024
_MAX_SHARD = 32 * 1024 * 1024
#: documents per window when the pool is streamed from the driver (not a local JSON Lines file)
WINDOW = 200_000

_started_here = False


def import_ray() -> Any:
    """``ray`` with Ray Data, or a :class:`UsageError` carrying the one install line."""
    return raystart.import_ray("Scoring on Ray")


def init_ray(address: str | None = None, workers: int | None = None) -> Any:
    """Connect to ``address`` (``ray://host:10001``, ``auto``), or start a local Ray with ``workers``
    CPUs (default: all cores). A Ray the caller already started is used as it is."""
    global _started_here
    ray = import_ray()
    if raystart.start_ray(ray, address, workers):
        _started_here = True
    return ray


@contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """Ray Data settings for annobridge's own datasets, put back afterwards: the caller's process may
    run datasets of its own, with settings of its own."""
    ctx = ray.data.DataContext.get_current()
    verbose = raystart.verbose()
    wanted: dict[str, Any] = {"enable_progress_bars": verbose, "print_on_execution_start": verbose}
    saved = {k: getattr(ctx, k) for k in wanted if hasattr(ctx, k)}
    saved_order = ctx.execution_options.preserve_order
    try:
        for key in saved:
            setattr(ctx, key, wanted[key])
        # The driver numbers fresh documents as they arrive: outputs must come in pool order.
        ctx.execution_options.preserve_order = True
        yield
    finally:
        for key, value in saved.items():
            setattr(ctx, key, value)
        ctx.execution_options.preserve_order = saved_order


def shutdown() -> None:
    """Shut down the Ray that :func:`init_ray` started (never one the caller started)."""
    global _started_here
    if _started_here:
        import ray

        ray.shutdown()
        _started_here = False


def random_scores(seed: int, ids: Iterable[str]) -> list[float]:
    """Uniform [0, 1) scores that depend only on ``(seed, id)``: the same wherever a document is scored."""
    out = []
    prefix = f"{seed}\x00".encode()
    for doc_id in ids:
        digest = hashlib.blake2b(prefix + doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        out.append((struct.unpack(">Q", digest)[0] >> 11) / float(1 << 53))
    return out


# -- the pool as shards ------------------------------------------------------------


def jsonl_shards(source: str | os.PathLike[str], workers: int) -> list[dict[str, Any]] | None:
    """Byte-range shards of a local, uncompressed JSON Lines file, or ``None`` for any other source."""
    from .. import remote
    from ..jsonio import is_gzip

    if remote.is_remote(source):  # the raw string: Path() would fold the "//" of a URL
        return None
    path = remote.local_path(source)
    name = path.name.lower()
    if not (name.endswith(".jsonl") or name.endswith(".ndjson")) or not path.is_file() or is_gzip(path):
        return None
    size = path.stat().st_size
    # A few shards per actor, so a slow one does not hold up the end of the pass.
    per = min(_MAX_SHARD, max(_MIN_SHARD, -(-size // max(1, 4 * workers))))
    bounds = [*range(0, size, per), size]
    return [
        {"path": str(path.resolve()), "start": start, "end": end, "shard": i}
        for i, (start, end) in enumerate(pairwise(bounds))
    ]


def read_shard(path: str, start: int, end: int) -> Iterator[tuple[int, Document | None, str]]:
    """``(byte offset, document or None, skip reason)`` for every line that starts in ``[start, end)``.

    The same per-line rules as :func:`annobridge.readers.read_documents` on a ``.jsonl`` file: blank
    lines are passed over, a line that is not a document is reported (not raised) and costs only itself.
    """
    from ..jsonio import decode_line, is_blank
    from ..readers import _document_from_obj

    name = Path(path).name
    with open(path, "rb") as fh:
        pos = start
        if start > 0:
            # The line that holds byte start-1 belongs to the shard before (ends there if it is a newline).
            fh.seek(start - 1)
            pos = start - 1 + len(fh.readline())
        for raw in fh:  # buffered iteration: the fastest way through a file line by line
            if pos >= end:
                break
            offset, pos = pos, pos + len(raw)
            if offset == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if is_blank(raw):
                continue
            where = f"{name} (byte {offset})"
            obj = decode_line(raw.rstrip(b"\r\n"))
            if not isinstance(obj, dict):
                yield offset, None, f"{where}\x00{obj}"
                continue
            try:
                yield offset, _document_from_obj(obj, where), ""
            except DataError as exc:
                yield offset, None, f"{where}\x00{str(exc).split(': ', 1)[-1]}"


# -- the actors -------------------------------------------------------------------


def pack_dir(path: Path) -> bytes:
    """A saved Learner folder as one uncompressed tar: it travels through the object store to any node."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname="model")
    return buf.getvalue()


def unpack_dir(blob: bytes, into: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # Python before 3.10.12 / 3.11.4: no filters (the tar is our own pack_dir's)
            tar.extractall(into)
    return into / "model"


@dataclass
class ActorSettings:
    strategy: str
    keep: int
    batch_size: int
    version: str
    #: score with the model (False: cold start, or random without pre-annotations)
    use_model: bool
    with_predictions: bool
    seed: int


class ScoreActor:
    """One scoring actor: loads the Learner once, then scores whatever batches it is handed."""

    def __init__(self, shared: list[Any], settings: ActorSettings) -> None:
        import ray

        # One object in the store, fetched by reference: the model and the excluded ids are not
        # pickled into every actor's constructor arguments.
        model, exclude = ray.get(shared[0])
        self.settings = settings
        self.exclude: frozenset[str] = exclude
        self.learner: Learner | None = None
        if settings.use_model:
            from .learner import Learner

            assert model is not None
            self._tmp = tempfile.TemporaryDirectory(prefix="annobridge-ray-")
            self.learner = Learner.load(unpack_dir(model, Path(self._tmp.name)))
        #: this actor's own top-keep keys: what does not enter cannot be in the global top-k
        self._heap: list[tuple[float, int]] = []

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, list[Any]]]:
        if "path" in batch:  # byte-range shards of a JSON Lines file: read here, in the actor
            shards = zip(batch["path"], batch["start"], batch["end"], batch["shard"], strict=True)
            for path, start, end, shard in shards:
                base = int(shard) << _OFFSET_BITS
                lines = ((base + off, doc, bad) for off, doc, bad in read_shard(str(path), int(start), int(end)))
                while chunk := list(islice(lines, self.settings.batch_size)):
                    yield self._score(chunk, ship_documents=True)
        else:  # documents streamed from the driver: it keeps them and needs only the positions back
            rows = [
                (int(p), Document(id=str(i), text=str(t)), "")
                for p, i, t in zip(batch["pos"], batch["id"], batch["text"], strict=True)
            ]
            yield self._score(rows, ship_documents=False)

    def _enters(self, score: float, pos: int) -> bool:
        key = (score, -pos)
        if len(self._heap) < self.settings.keep:
            heapq.heappush(self._heap, key)
            return True
        if key <= self._heap[0]:
            return False
        heapq.heapreplace(self._heap, key)
        return True

    def _score(self, rows: Sequence[tuple[int, Document | None, str]], *, ship_documents: bool) -> dict[str, list[Any]]:
        s = self.settings
        out: dict[str, list[Any]] = {
            k: [] for k in ("kind", "n", "skipped", "pos", "score", "document", "prediction", "note")
        }

        def emit(
            kind: int, n: int, pos: int, score: float, document: str, prediction: str, note: str, skipped: int = 0
        ) -> None:
            for key, value in zip(out, (kind, n, skipped, pos, score, document, prediction, note), strict=True):
                out[key].append(value)

        fresh: list[tuple[int, Document]] = []
        skipped = 0
        bad: list[tuple[int, str]] = []
        for pos, doc, reason in rows:
            if doc is None:
                bad.append((pos, reason))
            elif doc.id in self.exclude or not doc.text.strip():
                skipped += 1
            else:
                fresh.append((pos, doc))
        # The summary comes first: the driver numbers this batch's fresh documents from it.
        emit(SUMMARY, len(fresh), rows[0][0] if rows else 0, 0.0, "", "", "", skipped)
        for pos, reason in bad:
            emit(BAD, 0, pos, 0.0, "", "", reason)
        if not fresh:
            return out
        documents = [d for _, d in fresh]
        batch_out = None
        if s.use_model and s.strategy != "random":
            assert self.learner is not None
            from .gpu import to_host
            from .strategies import uncertainty

            batch_out = self.learner._predict_batch(documents)
            ops = self.learner.ops
            values = [float(v) for v in to_host(ops, uncertainty(batch_out.probs, s.strategy, ops))]
        else:
            values = random_scores(s.seed, (d.id for d in documents))
        for j, ((pos, document), score) in enumerate(zip(fresh, values, strict=True)):
            if not self._enters(score, pos):
                continue
            prediction = ""
            if s.with_predictions and s.use_model:
                assert self.learner is not None
                if batch_out is None:  # random with pre-annotations: predict only what may be kept
                    batch_out = self.learner._predict_batch(documents)
                pred = batch_out.prediction(j, s.version, round(score, 6))
                prediction = json.dumps(pred.to_dict(), ensure_ascii=False)
            shipped = json.dumps(document.to_dict(), ensure_ascii=False) if ship_documents else ""
            emit(CANDIDATE, j, pos, score, shipped, prediction, "")
        return out


# -- the driver ---------------------------------------------------------------------


def _windows(documents: Iterable[Document], exclude: frozenset[str], size: int) -> Iterator[tuple[list[Document], int]]:
    """The driver-side stream in windows of fresh documents, with how many were skipped before each."""
    window: list[Document] = []
    skipped = 0
    for document in documents:
        if document.id in exclude or not document.text.strip():
            skipped += 1
            continue
        window.append(document)
        if len(window) >= size:
            yield window, skipped
            window, skipped = [], 0
    if window or skipped:
        yield window, skipped


def score_pool_ray(
    learner: Learner,
    source: Iterable[Document] | str | os.PathLike[str],
    strategy: str,
    *,
    keep: int,
    batch_size: int,
    exclude_ids: Iterable[str],
    model_version: str,
    with_predictions: bool,
    seed: int,
    address: str | None = None,
    workers: int | None = None,
    window: int | None = None,
) -> PoolScores:
    """The Ray engine behind :meth:`Learner.score_pool`; see the module docstring."""
    from .learner import PoolScores

    t_start = time.perf_counter()
    ray = init_ray(address, workers)
    cold = not learner.fitted
    effective = "random" if cold else strategy
    use_model = not cold and (effective != "random" or with_predictions)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    n_actors = workers or max(1, cpus)
    if address is None and cpus and n_actors > cpus:
        # A local Ray started elsewhere with fewer CPUs: actors beyond them would never be placed.
        log.warning("Ray has %d CPUs: scoring with %d actors, not %d", cpus, cpus, n_actors)
        n_actors = cpus
    log.info("Scoring on Ray with %d actors (%s)", n_actors, address or "local Ray")
    exclude = frozenset(exclude_ids)
    settings = ActorSettings(effective, keep, batch_size, model_version, use_model, with_predictions, seed)
    blob: bytes | None = None
    if use_model:
        with tempfile.TemporaryDirectory(prefix="annobridge-ray-") as tmp:
            blob = pack_dir(learner.save(Path(tmp) / "model"))
    shared = [ray.put((blob, exclude))]
    del blob
    startup = time.perf_counter() - t_start

    top = TopCandidates(keep)
    state = {"index": 0, "scored": 0, "skipped": 0}

    def run(items: list[dict[str, Any]], held: list[Document] | None) -> None:
        """Score one dataset and merge its candidates, in pool order, into ``top``."""
        # At least one block per actor, or Ray Data cannot hand every actor work.
        per = 1 if held is None else batch_size
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), -(-len(items) // per))))
        mapped = ds.map_batches(
            ScoreActor,
            fn_constructor_kwargs={"shared": shared, "settings": settings},
            batch_size=per,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(n_actors, ds.num_blocks())),
            num_cpus=1,
        )
        base = 0
        for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            columns = ("kind", "n", "skipped", "pos", "score", "document", "prediction", "note")
            for kind, n, skipped, pos, score, document, prediction, note in zip(
                *(out[c] for c in columns), strict=True
            ):
                if kind == SUMMARY:
                    base = state["index"]
                    state["index"] += int(n)
                    state["skipped"] += int(skipped)
                elif kind == BAD:
                    where, _, reason = str(note).partition("\x00")
                    log.warning("pool %s skipped: %s", where, reason)
                else:
                    index = base + int(n)
                    doc = Document.from_dict(json.loads(document)) if held is None else held[int(pos)]
                    pred = Prediction.from_dict(json.loads(prediction)) if prediction else None
                    value = float(score)
                    top.offer(value, index, partial(Candidate, value, index, doc, pred))

    shards = None
    if isinstance(source, (str, os.PathLike)):
        shards = jsonl_shards(source, n_actors)
    with _data_context(ray):
        if shards is not None:
            if shards:
                run(shards, None)
        else:
            if isinstance(source, (str, os.PathLike)):
                from .learner import read_pool

                source = read_pool(source)
            for docs, skipped in _windows(source, exclude, window or WINDOW):
                state["skipped"] += skipped
                if docs:
                    rows = [{"pos": p, "id": d.id, "text": d.text} for p, d in enumerate(docs)]
                    run(rows, docs)
    state["scored"] = state["index"]
    return PoolScores(
        candidates=top.ranked(),
        strategy=effective,
        scored=state["scored"],
        skipped=state["skipped"],
        seconds=time.perf_counter() - t_start,
        cold_start=cold,
        engine="ray",
        startup_seconds=startup,
    )
