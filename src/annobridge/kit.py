"""The adapter kit: everything an adapter package may import from annobridge, in one place.

An adapter (built-in or third-party) imports from ``annobridge.kit``, ``annobridge.http`` (REST tools,
needs the ``http`` extra) and ``annobridge.testing`` (its tests) only. ``tools/check_adapter_imports.py``
enforces that for the packages under ``adapters/`` in CI, so the core can change its internals without
breaking a plugin. Everything here is public, typed and documented in docs/plugins.md.
"""

from __future__ import annotations

from .adapter import (
    Adapter,
    AdapterURL,
    Capabilities,
    ImportResult,
    as_datetime,
    as_utc,
    filter_answers,
    is_loopback,
    redact,
    since_datetime,
)
from .atomic import atomic_open, atomic_write_text
from .bulk import batched, import_missing, parallel_map
from .config import AdapterConfig, Secret
from .cursor import AnnotationLedger, DigestCursor, PullCursor, digest, utc_iso
from .errors import (
    AdapterError,
    AmbiguousWrite,
    AnnobridgeError,
    DataError,
    MissingDependencyError,
    SchemaError,
    ServerUnreachableError,
    UsageError,
)
from .hookspecs import hookimpl
from .jsonio import (
    BOM,
    LONE_SURROGATE,
    BadLine,
    append_json_lines,
    batches_by_encoded_size,
    decode_line,
    document_problem,
    has_lone_surrogate,
    is_blank,
    is_gzip,
    is_json_array_file,
    iter_json_array,
    json_line,
    json_problem,
    open_binary,
    read_items,
    read_json_items,
    read_json_lines,
    rewrite_json_lines,
)
from .lineindex import LineIndex
from .lookup import Lookup
from .model import Annotation, Answer, Document, LabelSchema, Prediction, Record, Span, TaskKind
from .offsets import (
    OffsetUnits,
    check_span,
    codepoint_to_utf16,
    has_astral,
    read_spans,
    utf16_to_codepoint,
    word_boundaries,
)
from .options import AdapterOptions
from .polling import poll_until
from .review import REVIEW_META_KEY, ReviewItem

__all__ = [
    "BOM",
    "LONE_SURROGATE",
    "REVIEW_META_KEY",
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "AdapterOptions",
    "AdapterURL",
    "AmbiguousWrite",
    "AnnobridgeError",
    "Annotation",
    "AnnotationLedger",
    "Answer",
    "BadLine",
    "Capabilities",
    "DataError",
    "DigestCursor",
    "Document",
    "ImportResult",
    "LabelSchema",
    "LineIndex",
    "Lookup",
    "MissingDependencyError",
    "OffsetUnits",
    "Prediction",
    "PullCursor",
    "Record",
    "ReviewItem",
    "SchemaError",
    "Secret",
    "ServerUnreachableError",
    "Span",
    "TaskKind",
    "UsageError",
    "append_json_lines",
    "as_datetime",
    "as_utc",
    "atomic_open",
    "atomic_write_text",
    "batched",
    "batches_by_encoded_size",
    "check_span",
    "codepoint_to_utf16",
    "decode_line",
    "digest",
    "document_problem",
    "filter_answers",
    "has_astral",
    "has_lone_surrogate",
    "hookimpl",
    "import_missing",
    "is_blank",
    "is_gzip",
    "is_json_array_file",
    "is_loopback",
    "iter_json_array",
    "json_line",
    "json_problem",
    "open_binary",
    "parallel_map",
    "poll_until",
    "read_items",
    "read_json_items",
    "read_json_lines",
    "read_spans",
    "redact",
    "rewrite_json_lines",
    "since_datetime",
    "utc_iso",
    "utf16_to_codepoint",
    "word_boundaries",
]
