"""annobridge: one interface over annotation tools, and a straight path to spaCy training data.

>>> import annobridge
>>> with annobridge.open_adapter("prodigy:annotations.jsonl") as source:
...     report = annobridge.export(source, "corpus/", task="ner")
"""

from __future__ import annotations

from typing import Any

from .adapter import Adapter, AdapterURL, Capabilities, ImportResult
from .config import AdapterConfig, Secret
from .errors import AdapterError, AnnobridgeError, DataError, MissingDependencyError, SchemaError, UsageError
from .hookspecs import hookimpl
from .model import Annotation, Answer, Document, LabelSchema, Prediction, Record, Span, TaskKind
from .plugins import get_registry, open_adapter

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "AdapterURL",
    "AnnobridgeError",
    "Annotation",
    "Answer",
    "Capabilities",
    "DataError",
    "Document",
    "ImportResult",
    "LabelSchema",
    "MissingDependencyError",
    "Prediction",
    "Record",
    "SchemaError",
    "Secret",
    "Span",
    "TaskKind",
    "UsageError",
    "__version__",
    "export",
    "get_registry",
    "hookimpl",
    "open_adapter",
]


def export(*args: Any, **kwargs: Any) -> Any:
    """Convert a source's records to spaCy training data; see :func:`annobridge.export.export`."""
    from .export import export as _export

    return _export(*args, **kwargs)
