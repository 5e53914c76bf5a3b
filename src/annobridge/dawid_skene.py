"""Annotator reliability by EM (Dawid & Skene 1979), for ``--merge dawid-skene``.

Each annotator ``j`` has a confusion matrix ``confusion[j, true, given]``: the probability that they
answer ``given`` when the truth is ``true``. EM alternates:

* **E-step**: each item's posterior over the true class, ``prior[k] * prod_j confusion[j, k, l_ij]``,
  normalised;
* **M-step**: the class prior and every confusion matrix from the posteriors (expected counts), plus
  pseudo-counts.

Initialisation is the majority vote (each item's vote shares), which also fixes the labelling of the
classes (EM cannot swap them). Iteration stops when no posterior moves by more than ``tol`` (or after
``max_iter`` rounds; ``converged`` says which).

Smoothing: every row of every confusion matrix starts from ``smoothing`` pseudo-answers, spread as an
annotator of ``prior_accuracy`` would spread them (``prior_accuracy`` on the diagonal, the rest evenly
on the other classes). An annotator with 2,000 answers is untouched by 2 pseudo-answers; one with three
answers is pulled towards a moderately reliable annotator instead of being trusted (or distrusted)
completely on three data points. The class prior gets one pseudo-count per class.

The model is fitted over the whole pull (:class:`CategoryVoteCollector`, fed by the export's survey
pass) and applied per record by :mod:`annobridge.merge` where the votes disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .merge import CategoryBallots, category_ballots
from .model import Record, TaskKind

__all__ = ["CategoryModel", "CategoryVoteCollector", "DawidSkene", "fit_category_model", "fit_dawid_skene"]

#: the two classes of one multi-label label (a yes/no question)
_NO, _YES = "no", "yes"
#: two posteriors closer than this are a tie: the votes do not decide
_TIE = 1e-9


@dataclass
class DawidSkene:
    """A fitted model: class prior, one confusion matrix per annotator, and how the fit went."""

    classes: list[str]
    annotators: list[str]
    #: (K,) probability of each true class
    prior: NDArray[np.float64]
    #: (J, K, K): confusion[j, true, given]
    confusion: NDArray[np.float64]
    #: (J,) how many answers each annotator gave
    answers: NDArray[np.int64]
    #: (J,) the expected share of each annotator's answers that are right, under the final posteriors
    accuracy: NDArray[np.float64]
    iterations: int
    converged: bool
    log_likelihood: float
    #: the row an annotator the fit never saw gets (the smoothing prior)
    default_row: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros((0, 0)))

    def accuracies(self) -> dict[str, float]:
        return {name: float(a) for name, a in zip(self.annotators, self.accuracy, strict=True)}

    def posterior(self, votes: Mapping[str, str]) -> NDArray[np.float64]:
        """P(true class | these votes), over :attr:`classes`. Votes for unknown classes are ignored."""
        index = {c: k for k, c in enumerate(self.classes)}
        who = {a: j for j, a in enumerate(self.annotators)}
        log_p = np.log(self.prior).copy()
        for voter, given in votes.items():
            col = index.get(given)
            if col is None:
                continue
            j = who.get(voter)
            column = self.confusion[j, :, col] if j is not None else self.default_row[:, col]
            log_p += np.log(column)
        log_p -= log_p.max()
        p: NDArray[np.float64] = np.exp(log_p)
        return p / p.sum()

    def decide(self, votes: Mapping[str, str]) -> str | None:
        """The most probable class, or None when two classes are (numerically) equally probable."""
        p = self.posterior(votes)
        order = np.argsort(-p, kind="stable")
        if len(order) > 1 and p[order[0]] - p[order[1]] <= _TIE:
            return None
        return self.classes[int(order[0])]


def fit_dawid_skene(
    items: Sequence[Mapping[str, str]],
    classes: Sequence[str] | None = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-5,
    smoothing: float = 2.0,
    prior_accuracy: float = 0.7,
) -> DawidSkene:
    """Fit on ``items``, each a mapping voter -> the class they gave (an item without votes is ignored)."""
    found: dict[str, None] = dict.fromkeys(classes or ())
    voters: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    given: list[str] = []
    n_items = 0
    for votes in items:
        if not votes:
            continue
        for voter, value in votes.items():
            found.setdefault(value)
            rows.append(n_items)
            cols.append(voters.setdefault(voter, len(voters)))
            given.append(value)
        n_items += 1
    names = list(found)
    k_classes, n_voters = len(names), len(voters)
    class_index = {c: k for k, c in enumerate(names)}
    item_idx = np.asarray(rows, dtype=np.int64)
    ann_idx = np.asarray(cols, dtype=np.int64)
    lab_idx = np.asarray([class_index[g] for g in given], dtype=np.int64)

    k = max(k_classes, 1)
    off = (1.0 - prior_accuracy) / (k - 1) if k > 1 else 0.0
    pseudo = np.full((k, k), off * smoothing)
    np.fill_diagonal(pseudo, prior_accuracy * smoothing if k > 1 else smoothing)
    default_row = pseudo / pseudo.sum(axis=1, keepdims=True)
    answers = np.bincount(ann_idx, minlength=n_voters).astype(np.int64)
    if n_items == 0 or k_classes < 2:
        prior = np.full(k, 1.0 / k)
        confusion = np.tile(default_row, (n_voters, 1, 1))
        return DawidSkene(names, list(voters), prior, confusion, answers, np.ones(n_voters), 0, True, 0.0, default_row)

    # majority-vote initialisation: each item's share of votes per class
    posterior = np.zeros((n_items, k))
    np.add.at(posterior, (item_idx, lab_idx), 1.0)
    posterior /= posterior.sum(axis=1, keepdims=True)
    pair = ann_idx * k + lab_idx  # (annotator, given class), flattened
    converged = False
    log_likelihood = 0.0
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        # M-step: expected counts of (annotator, true, given), plus the smoothing pseudo-answers
        prior = (posterior.sum(axis=0) + 1.0) / (n_items + k)
        counts = np.empty((n_voters, k, k))
        weights = posterior[item_idx]
        for true in range(k):
            counts[:, true, :] = np.bincount(pair, weights=weights[:, true], minlength=n_voters * k).reshape(
                n_voters, k
            )
        counts += pseudo[None, :, :]
        confusion = counts / counts.sum(axis=2, keepdims=True)
        # E-step: log prior + sum of the log confusion column each vote picks
        log_conf = np.log(confusion)
        log_post = np.tile(np.log(prior), (n_items, 1))
        contrib = log_conf[ann_idx, :, lab_idx]  # (M, K)
        for true in range(k):
            log_post[:, true] += np.bincount(item_idx, weights=contrib[:, true], minlength=n_items)
        top = log_post.max(axis=1, keepdims=True)
        unnorm = np.exp(log_post - top)
        norm = unnorm.sum(axis=1, keepdims=True)
        log_likelihood = float((np.log(norm) + top).sum())
        new_posterior = unnorm / norm
        delta = float(np.abs(new_posterior - posterior).max())
        posterior = new_posterior
        if delta < tol:
            converged = True
            break
    right = posterior[item_idx, lab_idx]
    accuracy = np.bincount(ann_idx, weights=right, minlength=n_voters) / np.maximum(answers, 1)
    return DawidSkene(
        names, list(voters), prior, confusion, answers, accuracy, iterations, converged, log_likelihood, default_row
    )


@dataclass
class CategoryModel:
    """The fitted reliabilities a ``dawid-skene`` merge applies: one model (exclusive) or one per label."""

    exclusive: bool
    #: exclusive textcat: one model under the key ""; multi-label: one yes/no model per label
    models: dict[str, DawidSkene]

    def decide(self, votes: Mapping[str, str]) -> str | None:
        """Exclusive textcat: the label, or None on a tie."""
        return self.models[""].decide(votes)

    def decide_label(self, label: str, votes: Mapping[str, bool]) -> bool | None:
        """Multi-label: does ``label`` hold, or None on a tie. A label the fit never saw: the plain majority."""
        model = self.models.get(label)
        if model is None:
            yes = sum(votes.values())
            return None if 2 * yes == len(votes) else 2 * yes > len(votes)
        decided = model.decide({voter: _YES if value else _NO for voter, value in votes.items()})
        return None if decided is None else decided == _YES

    def accuracies(self) -> dict[str, float]:
        """Each annotator's estimated accuracy (multi-label: over all their yes/no answers)."""
        right: dict[str, float] = {}
        total: dict[str, int] = {}
        for model in self.models.values():
            for name, acc, n in zip(model.annotators, model.accuracy, model.answers, strict=True):
                right[name] = right.get(name, 0.0) + float(acc) * int(n)
                total[name] = total.get(name, 0) + int(n)
        return {name: right[name] / total[name] for name in sorted(total) if total[name]}

    def summary(self) -> dict[str, Any]:
        """For the export report: estimated accuracy and answers per annotator, and how the fit went."""
        answers: dict[str, int] = {}
        for model in self.models.values():
            for name, n in zip(model.annotators, model.answers, strict=True):
                answers[name] = answers.get(name, 0) + int(n)
        return {
            "annotators": {
                name: {"accuracy": round(acc, 4), "answers": answers[name]} for name, acc in self.accuracies().items()
            },
            "models": len(self.models),
            "iterations": max((m.iterations for m in self.models.values()), default=0),
            "converged": all(m.converged for m in self.models.values()),
        }


class CategoryVoteCollector:
    """Collects every record's category votes in one pass (the export's survey), then fits the model."""

    def __init__(self, task: TaskKind | str) -> None:
        self.task = TaskKind(task)
        if self.task.is_span_task:
            raise ValueError("dawid-skene models categories (textcat, textcat_multilabel), not spans")
        self._ballots: list[CategoryBallots] = []
        self._labels: dict[str, None] = {}

    def add(self, record: Record) -> None:
        ballots = category_ballots(record)
        if ballots.manual or ballots.binary:
            self._ballots.append(ballots)
            self._labels.update(dict.fromkeys(ballots.labels()))

    def fit(self, labels: Sequence[str] | None = None, **options: Any) -> CategoryModel:
        """Fit over everything collected; ``labels``: the label set (default: every label seen)."""
        label_set = list(labels) if labels else list(self._labels)
        if self.task == TaskKind.TEXTCAT:
            items = [b.exclusive() for b in self._ballots]
            return CategoryModel(True, {"": fit_dawid_skene(items, label_set, **options)})
        models: dict[str, DawidSkene] = {}
        for label in label_set:
            items = [
                {voter: _YES if yes else _NO for voter, yes in b.label_votes(label).items()} for b in self._ballots
            ]
            models[label] = fit_dawid_skene(items, [_NO, _YES], **options)
        return CategoryModel(False, models)


def fit_category_model(
    records: Iterable[Record], task: TaskKind | str, labels: Sequence[str] | None = None, **options: Any
) -> CategoryModel:
    """Fit the ``dawid-skene`` model over ``records`` (what the export does in its survey pass)."""
    collector = CategoryVoteCollector(task)
    for record in records:
        collector.add(record)
    return collector.fit(labels, **options)
