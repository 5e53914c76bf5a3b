"""The export pipeline: pull -> merge -> verify offsets -> split -> write, with a report that adds up.

Every record read ends in exactly one place: exported to a split, or skipped
with a reason. ``records_read == records_exported + sum(records_skipped)`` is
checked before the report is returned.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
import srsly
from spacy.language import Language

from .adapter import Adapter
from .convert import INCORRECT_SPANS_KEY, DocConverter
from .errors import UsageError
from .formats import FORMATS, SplitWriter, make_writer
from .merge import POLICY_REASONS, Policy
from .model import Answer, LabelSchema, Record, TaskKind
from .split import SplitSpec, StratifiedAssigner, parse_split

__all__ = ["POLICY_REASONS", "ExportReport", "export", "load_nlp"]

_MAX_EXAMPLES = 20


@dataclass
class ExportReport:
    task: str
    out_dir: str
    format: str
    records_read: int = 0
    records_exported: int = 0
    records_skipped: Counter[str] = field(default_factory=Counter)
    spans_adjusted: Counter[str] = field(default_factory=Counter)
    spans_dropped: Counter[str] = field(default_factory=Counter)
    docs_per_split: Counter[str] = field(default_factory=Counter)
    labels_per_split: dict[str, Counter[str]] = field(default_factory=dict)
    conflicts: Counter[str] = field(default_factory=Counter)
    annotators: Counter[str] = field(default_factory=Counter)
    files: dict[str, list[str]] = field(default_factory=dict)
    #: a few (id or source location, reason) pairs per skip reason, for the user to look at
    examples: dict[str, list[str]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    #: rejected binary spans written to doc.spans["incorrect_spans"] (negative information for ner)
    incorrect_spans: int = 0
    config: str | None = None

    @property
    def data_errors(self) -> int:
        """Records and spans lost to bad data (as opposed to answers that carry no labels)."""
        records = sum(n for reason, n in self.records_skipped.items() if reason not in POLICY_REASONS)
        return records + sum(self.spans_dropped.values())

    @property
    def balanced(self) -> bool:
        return self.records_read == self.records_exported + sum(self.records_skipped.values())

    def _example(self, reason: str, where: str) -> None:
        bucket = self.examples.setdefault(reason, [])
        if len(bucket) < 5:
            bucket.append(where)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "format": self.format,
            "out_dir": self.out_dir,
            "records_read": self.records_read,
            "records_exported": self.records_exported,
            "records_skipped": dict(self.records_skipped.most_common()),
            "data_errors": self.data_errors,
            "spans_adjusted": dict(self.spans_adjusted.most_common()),
            "spans_dropped": dict(self.spans_dropped.most_common()),
            "docs_per_split": dict(self.docs_per_split),
            "labels_per_split": {k: dict(sorted(v.items())) for k, v in self.labels_per_split.items()},
            "conflicts": dict(self.conflicts.most_common()),
            "annotators": dict(self.annotators.most_common()),
            "labels": self.labels,
            "incorrect_spans": self.incorrect_spans,
            "files": self.files,
            "skipped_examples": self.examples,
            "config": self.config,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_nlp(lang: str = "en", model: str | None = None) -> Language:
    """The tokenizer to build reference docs with: a pipeline's, or a blank language's."""
    if model:
        try:
            return spacy.load(model, exclude=["tagger", "parser", "ner", "lemmatizer", "textcat", "senter"])
        except OSError as exc:
            raise UsageError(f"Cannot load spaCy pipeline {model!r}: {exc}") from None
    try:
        return spacy.blank(lang)
    except (ImportError, KeyError) as exc:
        raise UsageError(f"Unknown language code {lang!r} for spacy.blank: {exc}") from None


def _open_source(source: Adapter | str) -> tuple[Adapter, bool]:
    if isinstance(source, Adapter):
        return source, False
    from .plugins import open_adapter

    return open_adapter(source), True


def export(
    source: Adapter | str,
    out_dir: str | Path,
    *,
    task: str | TaskKind,
    labels: list[str] | None = None,
    split: str | SplitSpec = "0.8,0.1,0.1",
    seed: int = 0,
    policy: str = "ground_truth",
    lang: str = "en",
    model: str | None = None,
    nlp: Language | None = None,
    format: str = "spacy",
    align: str = "expand",
    stratify: bool = False,
    group_by: str | None = None,
    shard_size: int = 10_000,
    answers: Collection[Answer] | None = None,
    write_config: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Export a source's annotations as spaCy training data under ``out_dir``.

    ``source`` is an open :class:`Adapter` or a URL string (``prodigy:data.jsonl``).
    Writes one directory (DocBin shards) or file per split, ``manifest.jsonl``
    (doc -> source id, split, file) and ``report.json``; returns the report.
    """
    task_kind = TaskKind(task)
    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format == "fasttext" and task_kind.is_span_task:
        raise UsageError("fastText output holds categories: use it with --task textcat or textcat_multilabel")
    if format == "conll" and task_kind != TaskKind.NER:
        raise UsageError("CoNLL/IOB output holds entities: use it with --task ner")
    if stratify and task_kind.is_span_task:
        raise UsageError("--stratify works on category labels: use it with textcat tasks")
    spec = split if isinstance(split, SplitSpec) else parse_split(split, seed)
    policy_obj = Policy(policy)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nlp = nlp or load_nlp(lang, model)

    adapter, owned = _open_source(source)
    try:
        need_labels = task_kind == TaskKind.TEXTCAT and not labels
        assign: Callable[[str], str] = spec.assign
        if need_labels or stratify:
            found, strata = _survey(adapter, answers, group_by, labels=need_labels, strata=stratify)
            labels = found if need_labels else labels
            if stratify:
                assign = StratifiedAssigner(spec, strata).assign
        schema = LabelSchema(task_kind, labels=list(labels or []))
        converter = DocConverter(nlp, schema, align=align, policy=policy_obj)

        report = ExportReport(task=task_kind.value, out_dir=str(out), format=format)
        writers: dict[str, SplitWriter] = {}
        label_set: set[str] = set(schema.labels)
        with (out / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
            for record in _counted(adapter.pull(answers=answers), report):
                result = converter.convert(record)
                if result.conflict:
                    report.conflicts[result.conflict] += 1
                for note in result.span_notes:
                    kind, _, why = note.partition(": ")
                    (report.spans_adjusted if kind == "adjusted" else report.spans_dropped)[why] += 1
                if result.doc is None:
                    reason = result.reason or "not converted"
                    report.records_skipped[reason] += 1
                    report._example(reason, record.id)
                else:
                    split_name = assign(_split_key(record, group_by))
                    writer = writers.get(split_name)
                    if writer is None:
                        writer = writers[split_name] = make_writer(format, out, split_name, shard_size)
                    file, index = writer.add(result.doc, record)
                    report.records_exported += 1
                    report.docs_per_split[split_name] += 1
                    split_labels = report.labels_per_split.get(split_name)
                    if split_labels is None:
                        split_labels = report.labels_per_split[split_name] = Counter()
                    for label in result.labels:
                        split_labels[label] += 1
                    if result.merged:
                        for annotator in result.merged.annotators:
                            report.annotators[annotator] += 1
                    report.incorrect_spans += result.incorrect_spans
                    # split and file names are plain ASCII we made; only the ids need JSON escaping
                    native = f', "native_ids": {srsly.json_dumps(record.native_ids)}' if record.native_ids else ""
                    manifest.write(
                        f'{{"id": {srsly.json_dumps(record.id)}, "split": "{split_name}", '
                        f'"file": "{file}", "index": {index}{native}}}\n'
                    )
                if progress is not None:
                    progress(1)
        for where, reason in adapter.skipped:
            report.records_read += 1
            report.records_skipped[reason] += 1
            report._example(reason, where)
        for name, writer in writers.items():
            report.files[name] = writer.close()
        for split_labels in report.labels_per_split.values():
            label_set.update(split_labels)
        report.labels = sorted(label_set)
        if write_config and format == "spacy":
            report.config = str(write_spacy_config(out, task_kind, report, lang=lang))
        if not report.balanced:  # a bug, not a data problem: never hand out a report that does not add up
            raise AssertionError(f"export report does not add up: {report.to_dict()}")
        report.write_json(out / "report.json")
        return report
    finally:
        if owned:
            adapter.close()


def _counted(records: Iterator[Record], report: ExportReport) -> Iterator[Record]:
    for record in records:
        report.records_read += 1
        yield record


def _split_key(record: Record, group_by: str | None) -> str:
    """What the split hashes: the document id, or its group's value so a group stays together."""
    return str(record.document.meta.get(group_by, record.id)) if group_by else record.id


def _survey(
    adapter: Adapter, answers: Collection[Answer] | None, group_by: str | None, *, labels: bool, strata: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """One pass before the export for what it must know up front.

    Exclusive textcat needs the whole label set before the first doc; stratified splits need every
    (key, label) pair. Both come from the same single pass, whatever the source costs to read.
    """
    items: list[tuple[str, str]] = []

    def records() -> Iterator[Record]:
        for record in adapter.pull(answers=answers):
            if strata:
                cats: set[str] = set()
                for ann in record.annotations:
                    if ann.answer == Answer.ACCEPT:
                        cats.update(label for label, value in ann.categories.items() if value == 1.0)
                items.append((_split_key(record, group_by), ",".join(sorted(cats))))
            yield record

    if labels:
        found = LabelSchema.infer(TaskKind.TEXTCAT, records()).labels
    else:
        found = []
        for _ in records():
            pass
    adapter.skipped.clear()  # the main pass reports them
    return found, items


_PIPES = {
    TaskKind.NER: "ner",
    TaskKind.SPANS: "spancat",
    TaskKind.TEXTCAT: "textcat",
    TaskKind.TEXTCAT_MULTILABEL: "textcat_multilabel",
}


def write_spacy_config(out: Path, task: TaskKind, report: ExportReport, *, lang: str = "en") -> Path:
    """A starter ``config.cfg`` (spaCy's own ``init config``, CPU, efficiency) pointing at the exported splits."""
    from spacy.cli.init_config import init_config

    config = init_config(lang=lang, pipeline=[_PIPES[task]], optimize="efficiency", gpu=False, silent=True)
    splits = list(report.files)
    config["paths"]["train"] = str(out / "train") if "train" in splits else None
    config["paths"]["dev"] = str(out / "dev") if "dev" in splits else None
    if task == TaskKind.NER and report.incorrect_spans:
        config["components"]["ner"]["incorrect_spans_key"] = INCORRECT_SPANS_KEY
    path = out / "config.cfg"
    config.to_disk(path)
    return path
