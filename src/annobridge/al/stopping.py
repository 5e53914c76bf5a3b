"""A stopping signal: how much the model's predictions still change from one round to the next.

*Stabilizing predictions* (Bloodgood & Vijay-Shanker 2009): keep a fixed sample of unlabelled pool
documents (the *stop set*), predict it after every round, and compare with the previous round's
predictions. When consecutive models agree almost perfectly (Cohen's kappa >= 0.99) for a few rounds
in a row, more labels mostly stop changing what the model says, and labelling can stop.

What is compared, per task (one categorical decision per item):

==================  ========================================================================
textcat             one item per document: the predicted label (argmax)
textcat_multilabel  one item per document and label: yes/no at 0.5
ner                 one item per token: its BIO tag in the best parse (``B-ORG``, ``I-ORG``, ``O``)
spans               one item per token and label: inside a predicted span of that label, yes/no
==================  ========================================================================

Kappa corrects for chance agreement: on a stop set that is 95% ``O`` tokens (or 87% ham), raw
agreement is high even between two poor models; kappa is not. Both are recorded.

The dev curve's slope (score gained per 100 labels since the previous round) is reported next to it
when there is a dev set; it is a second opinion, not part of the rule.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError
from ..model import Document, TaskKind

__all__ = [
    "STOP_METRICS",
    "StabilityPoint",
    "StoppingRule",
    "agreement",
    "cohen_kappa",
    "dev_slope",
    "prediction_items",
    "reservoir_sample",
    "stability",
]

STOP_METRICS: tuple[str, ...] = ("kappa", "agreement")


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """The share of items with the same decision (1.0 for no items)."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} predictions: the stop set changed between rounds")
    if not a:
        return 1.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' decisions on the same items: (p_o - p_e) / (1 - p_e).

    When chance agreement is certain (both always say the same one label: a model that predicts
    "ham" for everything, or no entity anywhere) kappa is undefined and this returns ``nan``: such a
    model is not *stable*, it has not started to discriminate, and the rule must not fire on it.
    """
    p_o = agreement(a, b)
    n = len(a)
    if n == 0:
        return 1.0
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if p_e >= 1.0:
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


def dev_slope(labels: Sequence[int], scores: Sequence[float | None]) -> float | None:
    """Dev score gained per 100 labels between the last two rounds; ``None`` without two scored rounds."""
    if len(labels) < 2 or scores[-1] is None or scores[-2] is None or labels[-1] == labels[-2]:
        return None
    return 100.0 * (float(scores[-1]) - float(scores[-2])) / (labels[-1] - labels[-2])  # type: ignore[arg-type]


@dataclass
class StabilityPoint:
    """One round's signal: agreement and kappa with the previous round (``None`` in the first)."""

    round: int
    kappa: float | None
    agreement: float | None
    items: int
    dev_slope: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoppingRule:
    """Stop once ``metric`` >= ``threshold`` in each of the last ``rounds`` rounds.

    The default (kappa >= 0.99 over 3 consecutive rounds) is Bloodgood & Vijay-Shanker's.
    ``max_slope`` (optional): also require the dev curve to have flattened, i.e. the mean dev slope
    (score per 100 labels) over those rounds <= ``max_slope``; rounds without a dev slope (no dev
    set) do not count, and with none at all the condition is not checked.
    """

    threshold: float = 0.99
    rounds: int = 3
    metric: str = "kappa"
    max_slope: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in STOP_METRICS:
            raise UsageError(f"stop metric must be one of {', '.join(STOP_METRICS)}, not {self.metric!r}")
        if self.rounds < 1:
            raise UsageError("the stopping rule needs at least 1 round")
        if not 0.0 < self.threshold <= 1.0:
            raise UsageError("the stopping threshold is in (0, 1]")

    def value(self, point: StabilityPoint) -> float | None:
        return point.kappa if self.metric == "kappa" else point.agreement

    def fires(self, history: Sequence[StabilityPoint]) -> bool:
        """Whether the last ``rounds`` points all reach the threshold."""
        if len(history) < self.rounds:
            return False
        window = history[-self.rounds :]
        values = [self.value(p) for p in window]
        if not all(v is not None and v >= self.threshold for v in values):
            return False
        slopes = [p.dev_slope for p in window if p.dev_slope is not None]
        return self.max_slope is None or not slopes or sum(slopes) / len(slopes) <= self.max_slope

    def fires_at(self, history: Sequence[StabilityPoint]) -> int | None:
        """The index of the first point at which the rule fires, or ``None``."""
        for i in range(len(history)):
            if self.fires(history[: i + 1]):
                return i
        return None

    def describe(self) -> str:
        text = f"{self.metric} >= {self.threshold:g} in {self.rounds} consecutive round(s)"
        if self.max_slope is not None:
            text += f", dev slope <= {self.max_slope:g}/100 labels"
        return text


def stability(
    previous: Sequence[str] | None, current: Sequence[str], round: int, slope: float | None = None
) -> StabilityPoint:
    if previous is None:
        return StabilityPoint(round, None, None, len(current), slope)
    return StabilityPoint(
        round, round_or_none(cohen_kappa(previous, current)), round_or_none(agreement(previous, current)),
        len(current), slope,
    )  # fmt: skip


def round_or_none(value: float | None, digits: int = 6) -> float | None:
    """Rounded; ``None`` for ``None`` and ``nan`` (JSON has no NaN; an undefined kappa reads as "n/a")."""
    return None if value is None or math.isnan(value) else round(float(value), digits)


def reservoir_sample(documents: Iterable[Document], n: int, seed: int = 0) -> list[Document]:
    """``n`` documents drawn uniformly from a stream of unknown length, in O(n) memory; seeded."""
    if n < 1:
        return []
    rng = random.Random(seed)
    sample: list[Document] = []
    for i, document in enumerate(d for d in documents if d.text.strip()):
        if i < n:
            sample.append(document)
        else:
            j = rng.randint(0, i)
            if j < n:
                sample[j] = document
    return sample


def prediction_items(learner: Any, documents: Sequence[Document], *, batch_size: int = 256) -> list[str]:
    """The learner's decisions on ``documents``, flattened to one string per item (see the module doc)."""
    task = learner.task
    out: list[str] = []
    labels = list(learner.labels)
    for out_batch in learner.batches(documents, batch_size=batch_size):
        for i, doc in enumerate(out_batch.docs):
            pred = out_batch.prediction(i, "stop-set")
            if task == TaskKind.TEXTCAT:
                cats = pred.categories
                out.append(max(labels, key=lambda label: (cats.get(label, 0.0), -labels.index(label))))
            elif task == TaskKind.TEXTCAT_MULTILABEL:
                out.extend("1" if pred.categories.get(label, 0.0) >= 0.5 else "0" for label in labels)
            elif task == TaskKind.NER:
                tags = ["O"] * len(doc)
                for span in pred.spans:
                    sp = doc.char_span(span.start, span.end, alignment_mode="expand")
                    if sp is None:
                        continue
                    for t in range(sp.start, sp.end):
                        tags[t] = ("B-" if t == sp.start else "I-") + span.label
                out.extend(tags)
            else:
                inside = {label: [False] * len(doc) for label in labels}
                for span in pred.spans:
                    sp = doc.char_span(span.start, span.end, alignment_mode="expand")
                    if sp is None or span.label not in inside:
                        continue
                    for t in range(sp.start, sp.end):
                        inside[span.label][t] = True
                out.extend("1" if inside[label][t] else "0" for label in labels for t in range(len(doc)))
    return out
