"""The export pipeline: pull -> merge -> verify offsets -> split -> write, with a report that adds up.

Every record read ends in exactly one place: exported to a split, or skipped
with a reason. ``records_read == records_exported + sum(records_skipped)`` is
checked before the report is returned.

What must be known before the first document is written (exclusive textcat's
label set, stratified splits, the ``dawid-skene`` reliabilities, which are fitted
over the whole pull) comes from one *survey* pass. The survey pulls once and
spools the records to a file in the staging folder; the export then reads the
spool, so a server is never pulled twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc

from . import remote
from .adapter import Adapter
from .atomic import atomic_write_text, replace_dir, staging_dir
from .convert import INCORRECT_SPANS_KEY, DocConverter
from .dawid_skene import CategoryVoteCollector
from .errors import DataError, UsageError
from .formats import FORMATS, SplitWriter, make_writer, writer_class
from .merge import POLICY_REASONS, Policy
from .model import Answer, LabelSchema, Record, TaskKind
from .split import SplitSpec, StratifiedAssigner, parse_split

__all__ = ["ENGINES", "POLICY_REASONS", "ExportReport", "NothingExportedError", "export", "is_export_dir", "load_nlp"]

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
    #: a few document ids per span adjustment / drop ("adjusted: why" / "dropped: why")
    span_examples: dict[str, list[str]] = field(default_factory=dict)
    #: things that are not errors but that a user should look at (an empty split, one group)
    warnings: list[str] = field(default_factory=list)
    #: earlier answers replaced by the same annotator's later one (one vote per annotator)
    answers_superseded: int = 0
    #: spans whose text proved the source's offset units, per unit ("codepoint", "utf16", "utf8")
    offset_units_proved: Counter[str] = field(default_factory=Counter)
    #: spans without decisive text, by how their unit was decided ("utf16 by source", "ambiguous", ...)
    offset_units_decided: Counter[str] = field(default_factory=Counter)
    #: per-span merging: spans the policy could not decide (a tie, a disagreement), by label, in every
    #: document merged per span (exported with the span left out / its tokens missing, or skipped)
    disputed_spans: Counter[str] = field(default_factory=Counter)
    #: per-span merging: spans fewer than half of the annotators marked (majority), by label
    outvoted_spans: Counter[str] = field(default_factory=Counter)
    #: exported documents that kept disputed regions (ner: missing tokens) or left disputed spans out (spans)
    docs_with_disputes: int = 0
    #: tokens left missing (neither an entity nor O) in the exported ner documents
    missing_tokens: int = 0
    #: ``--merge dawid-skene``: the fitted reliabilities (per annotator accuracy and answers) and the fit
    dawid_skene: dict[str, Any] | None = None

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

    def _span_note(self, kind: str, why: str, doc_id: str) -> None:
        (self.spans_adjusted if kind == "adjusted" else self.spans_dropped)[why] += 1
        bucket = self.span_examples.setdefault(f"{kind}: {why}", [])
        if len(bucket) < 5 and doc_id not in bucket:
            bucket.append(doc_id)

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
            "span_examples": self.span_examples,
            "answers_superseded": self.answers_superseded,
            "disputed_spans": dict(self.disputed_spans.most_common()),
            "outvoted_spans": dict(self.outvoted_spans.most_common()),
            "docs_with_disputes": self.docs_with_disputes,
            "missing_tokens": self.missing_tokens,
            "dawid_skene": self.dawid_skene,
            "offset_units": {
                "proved": dict(self.offset_units_proved.most_common()),
                "decided": dict(self.offset_units_decided.most_common()),
            },
            "warnings": self.warnings,
            "config": self.config,
        }

    def write_json(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")


class NothingExportedError(DataError):
    """Records were read but none could be exported: the previous output is left as it was."""

    def __init__(self, report: ExportReport) -> None:
        self.report = report
        reasons = ", ".join(f"{reason} ({n})" for reason, n in report.records_skipped.most_common(3))
        super().__init__(
            f"0 of {report.records_read} records exported ({reasons}); {report.out_dir} was left as it was"
        )


#: files an annobridge export consists of, besides its split folders / files
_EXPORT_MARKERS = ("report.json", "manifest.jsonl")


def is_export_dir(path: Path) -> bool:
    """True when ``path`` holds an earlier annobridge export (so replacing it loses nothing of the user's)."""
    report = path / "report.json"
    if not report.is_file() or not (path / "manifest.jsonl").is_file():
        return False
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "records_read" in data and "task" in data


def _check_out_dir(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise UsageError(f"--out {out} is the current folder or holds it: give the export a folder of its own")
    if force or is_export_dir(out) or not any(out.iterdir()):
        return
    raise UsageError(
        f"--out {out} is not empty and holds no annobridge export; an export replaces the whole folder. "
        "Choose another folder, or pass --force to replace it."
    )


def load_nlp(lang: str = "en", model: str | None = None) -> Language:
    """The tokenizer to build reference docs with: a pipeline's, or a blank language's."""
    if model:
        try:
            return spacy.load(model, exclude=["tagger", "parser", "ner", "lemmatizer", "textcat", "senter"])
        except OSError as exc:
            raise UsageError(missing_model_message(model, exc)) from None
    try:
        return spacy.blank(lang)
    except (ImportError, KeyError) as exc:
        raise UsageError(f"Unknown language code {lang!r} for spacy.blank: {exc}") from None


def missing_model_message(model: str, exc: BaseException) -> str:
    """What to say when ``spacy.load(model)`` fails: the download command when it is a package name."""
    import sys

    if os.sep in model or "/" in model or Path(model).exists():
        return f"Cannot load spaCy pipeline {model!r}: {exc}"
    return (
        f"The spaCy pipeline {model!r} is not installed. Install it with: "
        f"{_quote(sys.executable)} -m spacy download {model}"
    )


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


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
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> ExportReport:
    """Export a source's annotations as spaCy training data under ``out_dir``.

    ``source`` is an open :class:`Adapter` or a URL string (``prodigy:data.jsonl``).
    Writes one directory (DocBin shards) or file per split, ``manifest.jsonl``
    (doc -> source id, split, file) and ``report.json``; returns the report.

    The output appears atomically: it is built in a temporary sibling folder and swapped in
    whole, so ``out_dir`` afterwards holds exactly this export (no shard of an earlier one), and
    an interrupted or failed export leaves the previous one untouched. A non-empty ``out_dir``
    that is not an annobridge export is refused unless ``force``.

    ``out_dir`` may be an fsspec URL (``s3://bucket/corpus``, ``file:///abs/corpus``): a remote
    export is built locally, uploaded under a fresh version prefix and published by its manifest,
    written last (:func:`annobridge.remote.publish_export`; read it back with
    :func:`annobridge.remote.download_export`).
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
    if shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, not {shard_size}")
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "ray":
        from .export_ray import check_ray_options

        check_ray_options(format, workers)  # before anything is read or written
    elif ray_address is not None or workers is not None:
        raise UsageError("--address and --workers are options of --engine ray")
    spec = split if isinstance(split, SplitSpec) else parse_split(split, seed)
    policy_obj = Policy(policy)
    if policy_obj.name == "dawid-skene" and task_kind.is_span_task:
        raise UsageError(
            "--merge dawid-skene weighs annotators on categories: use it with --task textcat or "
            "textcat_multilabel (for ner / spans: majority or unanimous decide per span)"
        )
    out_url = str(out_dir).rstrip("/") if remote.is_remote(out_dir) else None
    if out_url is not None:
        remote.check_export_target(out_url, force)
        # config.cfg's paths: where download_export(out_url, NAME) puts the splits
        out = Path(remote.basename(out_url) or "corpus")
    else:
        out = remote.local_path(out_dir)
        _check_out_dir(out, force)
    shown = out_url or str(out)
    nlp = nlp or load_nlp(lang, model)

    adapter, owned = _open_source(source)
    staged: Path | None = None
    writers: dict[str, SplitWriter] = {}
    writer_kind = writer_class(format)
    try:
        adapter.require("pull", to="export annotations")
        _check_task_fits(adapter, task_kind)
        need_labels = task_kind == TaskKind.TEXTCAT and not labels
        assign: Callable[[str], str] = spec.assign
        report = ExportReport(task=task_kind.value, out_dir=shown, format=format)
        staged = Path(tempfile.mkdtemp(prefix=".annobridge-export-")) if out_url else staging_dir(out)
        spool: Path | None = None
        collector = CategoryVoteCollector(task_kind) if policy_obj.name == "dawid-skene" else None
        if need_labels or stratify or collector is not None:
            spool = staged / _SPOOL
            found, strata = _survey(
                adapter, answers, group_by, labels=need_labels, strata=stratify, spool=spool, collector=collector
            )
            labels = found if need_labels else labels
            if stratify:
                assign = StratifiedAssigner(spec, strata).assign
            if collector is not None:
                policy_obj.model = collector.fit(labels)
                report.dawid_skene = policy_obj.model.summary()
        schema = LabelSchema(task_kind, labels=list(labels or []))
        converter = DocConverter(nlp, schema, align=align, policy=policy_obj)

        label_set: set[str] = set(schema.labels)
        groups = _GroupTally(group_by)
        records = _read_spool(spool) if spool is not None else adapter.pull(answers=answers)
        with (staged / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
            ledger = Ledger(report, groups, manifest, progress)
            if engine == "ray":
                from .export_ray import convert_on_ray

                convert_on_ray(
                    _counted(records, report),
                    ledger,
                    converter,
                    place=lambda record: _place(record, group_by, assign),
                    staged=staged,
                    shard_size=shard_size,
                    address=ray_address,
                    workers=workers,
                    shown=shown,
                )
            else:
                max_length = nlp.max_length
                for record in _counted(records, report):
                    outcome, doc = convert_record(converter, writer_kind, record, max_length)
                    place = _place(record, group_by, assign)
                    if doc is None:
                        ledger.account(outcome, place)
                        continue
                    writer = writers.get(place.split)
                    if writer is None:
                        writer = writers[place.split] = make_writer(format, staged, place.split, shard_size)
                    file, index = writer.add(doc, record)
                    ledger.account(outcome, place, file, index)
        if spool is not None:
            spool.unlink()
        for where, reason in adapter.skipped:
            report.records_read += 1
            report.records_skipped[reason] += 1
            report._example(reason, where)
        for doc_id, kind, why in adapter.span_notes:
            report._span_note(kind, why, doc_id)
        report.offset_units_proved.update(converter.units.proofs)
        for (unit, basis), n in converter.units.decisions.items():
            report.offset_units_decided[f"{unit} by {basis}" if unit else basis] += n
        for name in list(writers):
            report.files[name] = writers.pop(name).close()
        spans_seen = ledger.spans_seen
        for split_labels in report.labels_per_split.values():
            label_set.update(split_labels)
        report.labels = sorted(label_set)
        if not report.balanced:  # a bug, not a data problem: never hand out a report that does not add up
            raise AssertionError(f"export report does not add up: {report.to_dict()}")
        if report.records_read and not report.records_exported:
            raise NothingExportedError(report)
        if task_kind.is_span_task and report.records_exported and not spans_seen:
            raise UsageError(
                f"--task {task_kind.value}, but none of the {report.records_read} records has a span: "
                "the source holds no span annotations (categories? try --task textcat or textcat_multilabel). "
                f"Nothing was written; {shown} was left as it was."
            )
        report.warnings.extend(_split_warnings(spec, report, groups))
        if write_config and format == "spacy":
            config_path = write_spacy_config(staged, task_kind, report, lang=lang, paths_root=out)
            report.config = str(out / config_path.name)
        report.write_json(staged / "report.json")
        if out_url is not None:
            remote.publish_export(staged, out_url)  # the local build is removed below
        else:
            replace_dir(staged, out)
            staged = None
        return report
    finally:
        for writer in writers.values():  # only after a failure: close the files before removing them
            try:
                writer.close()
            except Exception:
                pass
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        if owned:
            adapter.close()


#: where ``export(engine=...)`` converts records to Docs
ENGINES = ("local", "ray")


class Place(NamedTuple):
    """Where a record goes if it is exported, and what its manifest line and ``--group-by`` tally need.

    Decided on the driver from the record alone (the split hashes its key), so an engine that converts
    elsewhere sends the record away and keeps only this.
    """

    id: str
    native_ids: dict[str, Any] | None
    split: str
    key: str
    has_group_key: bool


def _place(record: Record, group_by: str | None, assign: Callable[[str], str]) -> Place:
    key = _split_key(record, group_by)
    has_key = group_by is not None and group_by in record.document.meta
    return Place(record.id, record.native_ids or None, assign(key), key, has_key)


@dataclass
class RecordOutcome:
    """What converting one record tells the report: everything of the result but its Doc.

    Plain data, so a Ray worker can send it back to the driver, which tallies it with :class:`Ledger`
    exactly as the local engine does. ``reason`` is set when the record is skipped.
    """

    reason: str | None = None
    conflict: str | None = None
    disputed_spans: dict[str, int] = field(default_factory=dict)
    outvoted_spans: dict[str, int] = field(default_factory=dict)
    #: (kind, why, doc id) per span repair or drop
    span_events: list[tuple[str, str, str]] = field(default_factory=list)
    superseded: int = 0
    #: spans the merged record proposed (ner/spans: a task with none at all is refused)
    spans_seen: int = 0
    labels: list[str] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    incorrect_spans: int = 0
    missing_tokens: int = 0


def convert_record(
    converter: DocConverter, writer_kind: type[SplitWriter], record: Record, max_length: int
) -> tuple[RecordOutcome, Doc | None]:
    """Convert one record: its outcome, and its Doc when it is exported (None when skipped).

    The one place a record becomes a Doc, for both engines (the Ray engine runs it in its workers).
    """
    reason = _unfit_text(record.text, max_length)
    if reason is None:
        try:
            result = converter.convert(record)
        except UnicodeError:
            reason = "text contains a lone surrogate (not valid Unicode)"
        except (ValueError, RecursionError, OverflowError) as exc:
            reason = f"could not be converted ({type(exc).__name__}: {str(exc)[:120]})"
    if reason is not None:
        return RecordOutcome(reason=reason), None
    merged = result.merged
    outcome = RecordOutcome(
        conflict=result.conflict,
        disputed_spans=dict(result.disputed_spans),
        outvoted_spans=dict(result.outvoted_spans),
        span_events=[(event.kind, event.why, event.doc_id or record.id) for event in result.span_events],
        superseded=result.superseded,
        spans_seen=0 if merged is None else len(merged.spans) + len(merged.incorrect_spans),
        labels=list(result.labels),
        annotators=[] if merged is None else list(merged.annotators),
        incorrect_spans=result.incorrect_spans,
        missing_tokens=result.missing_tokens,
    )
    unfit = None if result.doc is None else writer_kind.cannot_hold(result.doc)
    if result.doc is None or unfit is not None:
        outcome.reason = unfit or result.reason or "not converted"
        return outcome, None
    return outcome, result.doc


class Ledger:
    """Tallies record outcomes into the report and writes the manifest, in the records' order.

    Both engines account every record here, so the report and the manifest cannot differ by engine.
    """

    def __init__(
        self, report: ExportReport, groups: _GroupTally, manifest: IO[str], progress: Callable[[int], None] | None
    ) -> None:
        self.report, self.groups, self.manifest, self.progress = report, groups, manifest, progress
        self.spans_seen = 0

    def account(self, outcome: RecordOutcome, place: Place, file: str | None = None, index: int = 0) -> None:
        """One record: skipped (``outcome.reason``) or exported to ``file`` at ``index``."""
        report = self.report
        if outcome.conflict:
            report.conflicts[outcome.conflict] += 1
        report.disputed_spans.update(outcome.disputed_spans)
        report.outvoted_spans.update(outcome.outvoted_spans)
        for kind, why, doc_id in outcome.span_events:
            report._span_note(kind, why, doc_id)
        report.answers_superseded += outcome.superseded
        self.spans_seen += outcome.spans_seen
        if outcome.reason is not None or file is None:
            reason = outcome.reason or "not converted"
            report.records_skipped[reason] += 1
            report._example(reason, place.id)
        else:
            split_name = place.split
            self.groups.add(place.key, place.has_group_key)
            report.records_exported += 1
            report.docs_per_split[split_name] += 1
            split_labels = report.labels_per_split.get(split_name)
            if split_labels is None:
                split_labels = report.labels_per_split[split_name] = Counter()
            for label in outcome.labels:
                split_labels[label] += 1
            for annotator in outcome.annotators:
                report.annotators[annotator] += 1
            report.incorrect_spans += outcome.incorrect_spans
            report.missing_tokens += outcome.missing_tokens
            if outcome.missing_tokens or outcome.disputed_spans:
                report.docs_with_disputes += 1
            # split and file names are plain ASCII we made; only the ids need JSON escaping
            native = f', "native_ids": {srsly.json_dumps(place.native_ids)}' if place.native_ids else ""
            self.manifest.write(
                f'{{"id": {srsly.json_dumps(place.id)}, "split": "{split_name}", '
                f'"file": "{file}", "index": {index}{native}}}\n'
            )
        if self.progress is not None:
            self.progress(1)


def _unfit_text(text: str, max_length: int) -> str | None:
    """Why spaCy cannot take this text at all (checked before tokenizing), or None."""
    if len(text) > max_length:
        return f"text longer than spaCy's max_length ({len(text):,} > {max_length:,} characters)"
    return None


def _check_task_fits(adapter: Adapter, task: TaskKind) -> None:
    """Refuse a task that the source's own project does not ask for, before anything is written."""
    try:
        schema = adapter.source_schema()
    except NotImplementedError:
        return
    if schema is None or schema.task.is_span_task == task.is_span_task:
        return
    asked = "spans (ner or spans)" if schema.task.is_span_task else "categories (textcat or textcat_multilabel)"
    labels = f" with labels {', '.join(schema.labels[:8])}" if schema.labels else ""
    raise UsageError(
        f"{adapter.url} asks annotators for {asked}{labels}; --task {task.value} does not fit. "
        f"Use --task {schema.task.value}."
    )


class _GroupTally:
    """What ``--group-by`` did: how many groups, how many documents lacked the key."""

    def __init__(self, group_by: str | None) -> None:
        self.group_by = group_by
        self.groups: set[str] = set()
        self.missing = 0
        self.docs = 0

    def add(self, key: str, has_key: bool) -> None:
        """One exported document: its split key, and whether its meta had the ``--group-by`` key."""
        if self.group_by is None:
            return
        self.docs += 1
        if has_key:
            if len(self.groups) < 2:  # only "one group or more" matters; keep memory flat
                self.groups.add(key)
        else:
            self.missing += 1


def _split_warnings(spec: SplitSpec, report: ExportReport, groups: _GroupTally) -> list[str]:
    warnings: list[str] = []
    if report.records_exported:
        for name in spec.active_names():
            if not report.docs_per_split.get(name):
                warnings.append(
                    f"the {name} split is empty ({report.records_exported} docs exported): "
                    + ("spacy train needs training docs" if name == "train" else "more data or other --split ratios")
                )
    if groups.group_by and groups.docs:
        if groups.missing * 2 > groups.docs:
            warnings.append(
                f"--group-by {groups.group_by}: {groups.missing} of {groups.docs} documents lack that meta key "
                "and were split by their own id"
            )
        elif len(groups.groups) == 1 and not groups.missing:
            warnings.append(
                f"--group-by {groups.group_by}: every document has the same value, so all are in one split"
            )
    return warnings


def _counted(records: Iterator[Record], report: ExportReport) -> Iterator[Record]:
    for record in records:
        report.records_read += 1
        yield record


def _split_key(record: Record, group_by: str | None) -> str:
    """What the split hashes: the document id, or its group's value so a group stays together."""
    return str(record.document.meta.get(group_by, record.id)) if group_by else record.id


#: the survey's copy of the pull, inside the staging folder (removed before the folder is swapped in)
_SPOOL = ".survey-records.jsonl"


def _read_spool(path: Path) -> Iterator[Record]:
    with path.open("r", encoding="ascii") as fh:
        for line in fh:
            yield Record.from_dict(json.loads(line))


def _survey(
    adapter: Adapter,
    answers: Collection[Answer] | None,
    group_by: str | None,
    *,
    labels: bool,
    strata: bool,
    spool: Path,
    collector: CategoryVoteCollector | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """One pass before the export for what it must know up front; the records are spooled to ``spool``.

    Exclusive textcat needs the whole label set before the first doc; stratified splits need every
    (key, label) pair; ``dawid-skene`` needs every vote (``collector``). All come from the same single
    pull, and the export then reads the spool (JSON, ASCII-escaped: lone surrogates survive to be
    reported by the main pass), so the source is read once whatever it costs. What the adapter skipped
    stays on it for the main pass to report.
    """
    items: list[tuple[str, str]] = []
    out = spool.open("w", encoding="ascii")

    def records() -> Iterator[Record]:
        for record in adapter.pull(answers=answers):
            out.write(json.dumps(record.to_dict(), ensure_ascii=True) + "\n")
            if collector is not None:
                collector.add(record)
            if strata:
                cats: set[str] = set()
                for ann in record.annotations:
                    if ann.answer == Answer.ACCEPT:
                        cats.update(label for label, value in ann.categories.items() if value == 1.0)
                items.append((_split_key(record, group_by), ",".join(sorted(cats))))
            yield record

    with out:
        if labels:
            found = LabelSchema.infer(TaskKind.TEXTCAT, records()).labels
        else:
            found = []
            for _ in records():
                pass
    return found, items


_PIPES = {
    TaskKind.NER: "ner",
    TaskKind.SPANS: "spancat",
    TaskKind.TEXTCAT: "textcat",
    TaskKind.TEXTCAT_MULTILABEL: "textcat_multilabel",
}


def write_spacy_config(
    out: Path, task: TaskKind, report: ExportReport, *, lang: str = "en", paths_root: Path | None = None
) -> Path:
    """A starter ``config.cfg`` (spaCy's own ``init config``, CPU, efficiency) pointing at the exported splits.

    Written into ``out``; its paths point into ``paths_root`` (the final folder, when ``out`` is
    the staging folder the export is built in).
    """
    root = paths_root or out
    from spacy.cli.init_config import init_config

    config = init_config(lang=lang, pipeline=[_PIPES[task]], optimize="efficiency", gpu=False, silent=True)
    splits = list(report.files)
    config["paths"]["train"] = str(root / "train") if "train" in splits else None
    config["paths"]["dev"] = str(root / "dev") if "dev" in splits else None
    if task == TaskKind.NER and report.incorrect_spans:
        config["components"]["ner"]["incorrect_spans_key"] = INCORRECT_SPANS_KEY
    path = out / "config.cfg"
    atomic_write_text(path, config.to_str())
    return path
