"""Output writers, one per ``--format``. Each writes one split's documents and keeps memory flat."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, cast

import numpy
from spacy.attrs import ORTH, SPACY, intify_attr
from spacy.tokens import Doc, DocBin

from .model import Record

__all__ = ["DOCBIN_ATTRS", "FORMATS", "ConllWriter", "DocBinWriter", "FastTextWriter", "JsonlWriter", "SplitWriter"]

#: enough for ents, spans and cats (spans and cats are always stored); leaner than the
#: default attrs and about 40% faster to write (docs/benchmarks.md)
DOCBIN_ATTRS = ("ORTH", "ENT_IOB", "ENT_TYPE")
FORMATS = ("spacy", "fasttext", "conll", "jsonl")
_LEAN_ATTR_IDS = tuple(sorted(intify_attr(name) for name in DOCBIN_ATTRS))
_WHITESPACE = re.compile(r"\s")


class LeanDocBin(DocBin):
    """A DocBin whose ``add`` interns only the strings of what annobridge stores.

    ``DocBin.add`` interns nine strings per token (tag, lemma, norm, morph, dep, entity ids, ...)
    whatever attrs it keeps, which is half its time. Our docs carry ORTH, entity IOB/type, cats
    and span groups only, so the texts and labels are all the string table needs. The file
    format is DocBin's own: ``DocBin().from_disk`` and ``spacy train`` read it unchanged
    (``tests/core/test_formats.py`` checks they round-trip to the same docs).
    """

    def add(self, doc: Doc) -> None:
        if tuple(self.attrs) != _LEAN_ATTR_IDS:
            super().add(doc)
            return
        self.tokens.append(doc.to_array(list(self.attrs)))  # type: ignore[arg-type]
        spaces = doc.to_array(SPACY)
        self.spaces.append(numpy.asarray(spaces.reshape((spaces.shape[0], 1)), dtype=bool))
        self.flags.append({"has_unknown_spaces": doc.has_unknown_spaces})
        strings = self.strings
        # the token texts by their ORTH ids, only those this bin has not seen: building a Token
        # object per token just to read its text was a fifth of the export's time
        orths = self.__dict__.setdefault("_orths", set())
        new = set(cast("list[int]", doc.to_array(ORTH).tolist())) - orths
        if new:
            vocab_strings = doc.vocab.strings
            strings.update([vocab_strings[orth] for orth in new])
            orths |= new
        strings.update([ent.label_ for ent in doc.ents])
        self.cats.append(doc.cats)
        self.span_groups.append(doc.spans.to_bytes())
        for group in doc.spans.values():
            for span in group:
                strings.add(span.label_)
                if span.kb_id in doc.vocab.strings:
                    strings.add(span.kb_id_)
                if span.id in doc.vocab.strings:
                    strings.add(span.id_)


#: why a doc with missing tokens is not written as IOB
MISSING_IN_CONLL = (
    "has tokens with no decided entity tag (disputed or unjudged), which conll cannot mark: use --format spacy"
)


class SplitWriter:
    """Writes one split; ``add`` returns where the doc went: (file relative to the output dir, index in it)."""

    @staticmethod
    def cannot_hold(doc: Doc) -> str | None:
        """Why this format cannot store ``doc`` faithfully, or None (the export skips it with the reason)."""
        return None

    def __init__(self, out_dir: Path, split: str) -> None:
        self.out_dir, self.split = out_dir, split
        self.count = 0

    def add(self, doc: Doc, record: Record) -> tuple[str, int]:
        raise NotImplementedError

    def close(self) -> list[str]:
        """Flush and return the files written (relative paths)."""
        raise NotImplementedError


class DocBinWriter(SplitWriter):
    """Sharded DocBins: a new file every ``shard_size`` docs, so peak memory stays flat.

    ``spacy train --paths.train DIR`` reads the whole directory.
    """

    def __init__(self, out_dir: Path, split: str, shard_size: int = 10_000) -> None:
        super().__init__(out_dir, split)
        self.shard_size = shard_size
        self.files: list[str] = []
        self._bin = LeanDocBin(attrs=DOCBIN_ATTRS)
        self._shard = 0
        (out_dir / split).mkdir(parents=True, exist_ok=True)

    @property
    def _current(self) -> str:
        return f"{self.split}/{self.split}-{self._shard:04d}.spacy"

    def add(self, doc: Doc, record: Record) -> tuple[str, int]:
        name, index = self._current, len(self._bin)
        self._bin.add(doc)
        self.count += 1
        if len(self._bin) >= self.shard_size:
            self._flush()
        return name, index

    def _flush(self) -> None:
        if len(self._bin):
            self._bin.to_disk(self.out_dir / self._current)
            self.files.append(self._current)
            self._shard += 1
            self._bin = LeanDocBin(attrs=DOCBIN_ATTRS)

    def close(self) -> list[str]:
        self._flush()
        return self.files


class _TextFileWriter(SplitWriter):
    suffix = ".txt"

    def __init__(self, out_dir: Path, split: str) -> None:
        super().__init__(out_dir, split)
        self.name = f"{split}{self.suffix}"
        self._fh: IO[str] = (out_dir / self.name).open("w", encoding="utf-8")

    def add(self, doc: Doc, record: Record) -> tuple[str, int]:
        self._write(doc, record)
        self.count += 1
        return self.name, self.count - 1

    def _write(self, doc: Doc, record: Record) -> None:
        raise NotImplementedError

    def close(self) -> list[str]:
        self._fh.close()
        return [self.name]


class FastTextWriter(_TextFileWriter):
    """``__label__A __label__B text`` per line (positive labels only)."""

    def _write(self, doc: Doc, record: Record) -> None:
        labels = " ".join("__label__" + re.sub(r"\s+", "_", label) for label, v in doc.cats.items() if v == 1.0)
        text = re.sub(r"\s+", " ", doc.text).strip()
        self._fh.write(f"{labels} {text}\n" if labels else f"{text}\n")


class ConllWriter(_TextFileWriter):
    """CoNLL-2003 style NER (``word IOB-tag``, docs separated by ``-DOCSTART-``) for ``spacy convert -c ner``.

    Whitespace tokens are left out and whitespace inside a token becomes ``_``: the format cannot hold them.
    """

    suffix = ".iob"

    @staticmethod
    def cannot_hold(doc: Doc) -> str | None:
        # spaCy's IOB reader has no missing tag (E177 on "-"): writing O would turn a region nobody decided
        # (disputed under --merge majority, unjudged in binary answers) into "no entity here"
        if any(token.ent_iob == 0 and not token.is_space for token in doc):
            return MISSING_IN_CONLL
        return None

    def _write(self, doc: Doc, record: Record) -> None:
        lines = ["-DOCSTART- -X- O O", ""]
        for token in doc:
            if token.is_space:
                continue
            tag = "O" if token.ent_iob_ in ("O", "") else f"{token.ent_iob_}-{token.ent_type_}"
            word = _WHITESPACE.sub("_", token.text)
            lines.append(f"{word} {tag}")
        lines.append("")
        self._fh.write("\n".join(lines) + "\n")


class JsonlWriter(_TextFileWriter):
    """The source records of the split, lossless, in annobridge JSONL."""

    suffix = ".jsonl"

    def _write(self, doc: Doc, record: Record) -> None:
        self._fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def writer_class(fmt: str) -> type[SplitWriter]:
    classes: dict[str, type[SplitWriter]] = {
        "spacy": DocBinWriter, "fasttext": FastTextWriter, "conll": ConllWriter, "jsonl": JsonlWriter
    }
    if fmt not in classes:
        raise ValueError(fmt)
    return classes[fmt]


def make_writer(fmt: str, out_dir: Path, split: str, shard_size: int) -> SplitWriter:
    if fmt == "spacy":
        return DocBinWriter(out_dir, split, shard_size)
    return writer_class(fmt)(out_dir, split)
