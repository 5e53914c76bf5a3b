"""``conll:PATH`` - CoNLL / IOB token-per-line NER files (CoNLL-2003, WNUT-17, annobridge's own ``--format conll``).

One token a line, whitespace-separated columns, the **tag last** (``word TAG`` or
``word POS CHUNK TAG``; a tab-separated file is split at tabs only, so a token may hold a space).
A blank (or whitespace-only) line ends a sentence; a ``-DOCSTART-`` line ends a document.

Tags: ``O``, ``B-X`` / ``I-X`` (IOB2, and IOB1, where an ``I-X`` after anything but ``X`` starts
an entity), and ``E-X`` / ``S-X`` (IOBES) or ``L-X`` / ``U-X`` (BILUO). One decoder reads them all:
an entity starts at ``B``/``S``/``U``, or at an ``I``/``E``/``L`` that does not continue one of
its type; it ends at ``E``/``L``/``S``/``U``, at ``O``, or where the next tag does not continue it.

Each sentence is one record (``?doc=1``: each ``-DOCSTART-`` document), its text the tokens
joined by single spaces (sentences of a document too), spans at the exact character offsets of
their tokens, as one accepted manual annotation by ``conll``. Ids are ``<file name>:<n>``, n the
0-based sentence (or document) number in the file, stable as long as the file is. A malformed
line (one column, an unknown tag, bytes that are not UTF-8) costs only its sentence, reported.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapter import Adapter, AdapterURL, Capabilities, filter_answers
from ..config import AdapterConfig
from ..errors import UsageError
from ..hookspecs import hookimpl
from ..jsonio import BOM, BadLine, open_binary
from ..model import Annotation, Answer, Document, Record, Span

__all__ = ["ConllAdapter", "ConllSentence", "read_conll", "sentence_spans"]

ANNOTATOR = "conll"
_TAG = re.compile(r"^(?:O|([BIESLU])-(\S.*))$")
_DOCSTART = "-DOCSTART-"


@dataclass
class ConllSentence:
    """The tokens and tags of one sentence (or document), where it starts, and its place in the file."""

    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    line: int = 0
    index: int = 0
    #: which ``-DOCSTART-`` document of the file it is in (0 before the first marker)
    document: int = 0

    @property
    def text(self) -> str:
        return " ".join(self.words)


def sentence_spans(words: list[str], tags: list[str]) -> list[Span]:
    """The entities of a tagged token sequence, at the offsets of ``" ".join(words)``.

    Raises :class:`ValueError` for a tag that is none of O, B-, I-, E-, S-, L-, U-.
    """
    spans: list[Span] = []
    offset = 0
    open_label: str | None = None
    open_start = 0
    prev_end = 0

    def close() -> None:
        nonlocal open_label
        if open_label is not None:
            spans.append(Span(open_start, prev_end, open_label))
            open_label = None

    for word, tag in zip(words, tags, strict=True):
        start, end = offset, offset + len(word)
        offset = end + 1
        match = _TAG.match(tag)
        if match is None:
            raise ValueError(f"unknown tag {tag!r} (expected O, B-X, I-X, E-X, S-X, L-X or U-X)")
        prefix, label = match.group(1), match.group(2)
        if prefix is None:  # O
            close()
        elif prefix in "BSU" or open_label != label:
            close()
            open_label, open_start = label, start
        prev_end = end
        if prefix is not None and prefix in "ESLU":
            close()
    close()
    return spans


def _columns(line: str) -> list[str]:
    parts = line.split("\t") if "\t" in line else line.split()
    return [p.strip() for p in parts if p.strip()]


def read_conll(path: str | Path, *, by_document: bool = False) -> Iterator[tuple[str, ConllSentence | BadLine]]:
    """``(where, sentence or BadLine)`` for each sentence (``by_document``: each ``-DOCSTART-`` document).

    ``where`` is ``file:line`` of the first token (of the offending line for a bad one). A sentence
    with a bad line is reported once and left out whole; the next one starts clean.
    """
    path = Path(path)
    name = path.name
    index = 0
    document = 0
    current = ConllSentence()
    bad: tuple[int, str] | None = None

    def flush() -> Iterator[tuple[str, ConllSentence | BadLine]]:
        nonlocal current, bad, index
        if bad is not None:
            yield f"{name}:{bad[0]}", BadLine(bad[1])
            index += 1
        elif current.words:
            current.index = index
            yield f"{name}:{current.line}", current
            index += 1
        current = ConllSentence(document=document)
        bad = None

    with open_binary(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                if bad is None:
                    bad = (lineno, "line is not UTF-8")
                continue
            if not line.strip():
                if not by_document and (current.words or bad is not None):
                    yield from flush()
                continue
            columns = _columns(line)
            if columns[0] == _DOCSTART:
                if current.words or bad is not None:
                    yield from flush()
                document += 1
                current.document = document
                continue
            if bad is not None:
                continue
            if len(columns) < 2:
                bad = (lineno, "a token line needs a word and a tag (one column found)")
                continue
            tag = columns[-1]
            if _TAG.match(tag) is None:
                bad = (lineno, f"unknown tag {tag!r} (expected O, B-X, I-X, E-X, S-X, L-X or U-X)")
                continue
            if not current.words:
                current.line = lineno
            current.words.append(columns[0])
            current.tags.append(tag)
    if current.words or bad is not None:
        yield from flush()


def sentence_record(sentence: ConllSentence, name: str) -> Record:
    text = sentence.text
    spans = sentence_spans(sentence.words, sentence.tags)
    for span in spans:
        span.text = text[span.start : span.end]
    meta: dict[str, Any] = {"source": name, "line": sentence.line}
    if sentence.document:
        meta["conll_document"] = sentence.document
    document = Document(id=f"{name}:{sentence.index}", text=text, meta=meta)
    annotation = Annotation(annotator=ANNOTATOR, spans=spans, answer=Answer.ACCEPT, mode="manual")
    return Record(document, [annotation], native_ids={"line": sentence.line})


class ConllAdapter(Adapter):
    scheme = "conll"
    description = "CoNLL/IOB NER files (one token a line, tag last: IOB1, IOB2, IOBES, BILUO)"
    url_example = "conll:wnut17train.conll"
    capabilities = Capabilities(pull=True, tasks=("ner", "spans"))

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None) -> None:
        super().__init__(url, config)
        if not url.path:
            raise UsageError("conll: needs a file path, e.g. conll:train.conll")
        self.path = Path(url.path).expanduser()
        self.by_document = url.params.get("doc", "0").lower() in ("1", "true", "yes")

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        if not self.path.exists():
            raise UsageError(f"No such file: {self.path}")
        name = self.path.name
        for where, sentence in read_conll(self.path, by_document=self.by_document):
            if isinstance(sentence, BadLine):
                self.skip(where, sentence.reason)
                continue
            yield filter_answers(sentence_record(sentence, name), answers)

    def count(self) -> int | None:
        if not self.path.exists():
            return 0
        return sum(1 for _ in read_conll(self.path, by_document=self.by_document))


@hookimpl
def register_adapters(register: Any) -> None:
    register(ConllAdapter)
