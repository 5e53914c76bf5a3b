"""annobridge: one interface over annotation tools, and a straight path to spaCy training data.

>>> import annobridge
>>> with annobridge.open_adapter("prodigy:annotations.jsonl") as source:
...     report = annobridge.export(source, "corpus/", task="ner")
"""

from __future__ import annotations

from .adapter import Adapter, AdapterURL, Capabilities, ImportResult
from .agreement import AgreementReport, agreement
from .config import AdapterConfig, Secret
from .errors import AdapterError, AnnobridgeError, DataError, MissingDependencyError, SchemaError, UsageError
from .export import ExportReport, export
from .hookspecs import hookimpl
from .model import Annotation, Answer, Document, LabelSchema, Prediction, Record, Span, TaskKind
from .plugins import get_registry, open_adapter

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "AdapterURL",
    "AgreementReport",
    "AnnobridgeError",
    "Annotation",
    "Answer",
    "Capabilities",
    "DataError",
    "Document",
    "ExportReport",
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
    "agreement",
    "export",
    "get_registry",
    "hookimpl",
    "open_adapter",
]
