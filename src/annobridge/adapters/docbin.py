"""``spacy:PATH`` - spaCy ``DocBin`` files (``.spacy``) as a source: training data made elsewhere, or an export.

``PATH`` is one ``.spacy`` file or a folder, whose ``.spacy`` files (at any depth, e.g. an export's
``train/``, ``dev/``, ``test/`` shards) are read in path order.

Each Doc is one record with one accepted manual annotation by ``spacy``: ``doc.ents`` are its
spans (``?spans_key=sc``: the span group ``doc.spans["sc"]`` instead, for the spans task) and
``doc.cats`` its categories. A Doc with no entity annotation, no span group of that key and no
cats gives a record without annotations (the export reports it as such).

Ids: a DocBin holds no ids unless ``user_data`` was stored; ``user_data["id"]`` is used when
present, else ``<file>:<index>`` (the file relative to ``PATH`` when it is a folder), stable as long
as the files are.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from ..adapter import Adapter, AdapterURL, Capabilities, filter_answers
from ..config import AdapterConfig
from ..errors import UsageError
from ..hookspecs import hookimpl
from ..model import Annotation, Answer, Document, Record, Span

__all__ = ["DocBinAdapter", "docbin_files"]

ANNOTATOR = "spacy"


def docbin_files(path: Path) -> list[Path]:
    """``path`` itself, or the ``.spacy`` files under the folder ``path``, in path order."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.spacy") if p.is_file())
    return [path]


class DocBinAdapter(Adapter):
    scheme = "spacy"
    description = "spaCy DocBin files (.spacy, or a folder of them): ents, span groups, cats"
    url_example = "spacy:corpus/train"
    capabilities = Capabilities(pull=True, overlapping_spans=True)

    def __init__(self, url: AdapterURL, config: AdapterConfig | None = None) -> None:
        super().__init__(url, config)
        if not url.path:
            raise UsageError("spacy: needs a .spacy file or a folder of them, e.g. spacy:corpus/train")
        self.path = Path(url.path).expanduser()
        self.spans_key: str | None = url.params.get("spans_key") or None
        self.lang = url.params.get("lang", "xx")

    def _files(self) -> list[Path]:
        if not self.path.exists():
            raise UsageError(f"No such file or folder: {self.path}")
        files = docbin_files(self.path)
        if not files:
            raise UsageError(f"{self.path}: no .spacy files in this folder")
        return files

    def pull(self, *, answers: Collection[Answer] | None = None, since: Any = None) -> Iterator[Record]:
        import spacy
        from spacy.tokens import DocBin

        vocab = spacy.blank(self.lang).vocab
        for file in self._files():
            label = file.relative_to(self.path).as_posix() if self.path.is_dir() else file.name
            try:
                docbin = DocBin().from_disk(file)
            except Exception as exc:  # zlib, msgpack and spaCy each raise their own: all mean "not a DocBin"
                self.skip(label, f"not a readable spaCy DocBin ({type(exc).__name__})")
                continue
            # one Doc at a time: the DocBin holds compact arrays, a list of Docs would be many times that
            for index, doc in enumerate(docbin.get_docs(vocab)):
                yield filter_answers(self._record(doc, f"{label}:{index}"), answers)

    def _record(self, doc: Any, where: str) -> Record:
        user_id = doc.user_data.get("id") if isinstance(doc.user_data, dict) else None
        doc_id = str(user_id) if isinstance(user_id, (str, int)) and not isinstance(user_id, bool) else where
        document = Document(id=doc_id, text=doc.text, meta={"source": where})
        if self.spans_key is not None:
            group = doc.spans.get(self.spans_key) if self.spans_key in doc.spans else None
            spans = [_span(s) for s in group] if group is not None else []
            annotated = group is not None
        else:
            spans = [_span(s) for s in doc.ents]
            annotated = doc.has_annotation("ENT_IOB")
        categories = {str(k): float(v) for k, v in doc.cats.items()}
        if not annotated and not categories:
            return Record(document)
        annotation = Annotation(annotator=ANNOTATOR, spans=spans, categories=categories, answer=Answer.ACCEPT,
                                mode="manual")
        return Record(document, [annotation])

    def count(self) -> int | None:
        return None  # knowing means decompressing every file: not cheap


def _span(span: Any) -> Span:
    return Span(span.start_char, span.end_char, span.label_, text=span.text)


@hookimpl
def register_adapters(register: Any) -> None:
    register(DocBinAdapter)
