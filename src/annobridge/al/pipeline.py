"""Bring your own spaCy pipeline: the Learner fine-tunes one component of a pipeline you already have.

``Learner.from_pipeline("en_core_web_md", "ner", labels)`` or ``--pipeline output/model-best``:

* the pipeline is loaded once with ``spacy.load`` (an installed package or the folder ``spacy train``
  wrote), on the GPU first when ``--gpu`` asks for one, so the weights land there;
* the **target component** is the one named by ``component``, else the first whose factory fits the
  task (``textcat``, ``textcat_multilabel``, ``beam_ner``/``ner``, ``spancat``). A trained one is
  *fine-tuned*: its weights are kept, the loop continues training them. A greedy ``ner`` is switched to
  beam decoding (same weights, same model: ``ner`` and ``beam_ner`` differ only in their decoding
  settings), because only a beam gives entity probabilities;
* when there is none, one is **added** with its own tok2vec; it reads the pipeline's static vectors when
  the pipeline has any (``en_core_web_md``/``lg``, or vectors you loaded), so the new component starts
  from what the pipeline knows about words. It runs on tokens alone, so scoring the pool does not run
  the rest of the pipeline;
* components the target listens to (a shared ``tok2vec``, or a ``transformer``) are fine-tuned with it.
  Components that listen to the same upstream model (a tagger, a parser) may drift: the loop measures
  only its target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import spacy
from spacy.language import Language

from ..errors import UsageError
from ..model import TaskKind

if TYPE_CHECKING:
    from .learner import LearnerConfig

__all__ = ["FACTORIES", "PreparedPipeline", "component_config", "is_initialized", "load_pipeline", "prepare_pipeline"]

#: factories that can serve each task, the one a new component gets first
FACTORIES: dict[TaskKind, tuple[str, ...]] = {
    TaskKind.TEXTCAT: ("textcat",),
    TaskKind.TEXTCAT_MULTILABEL: ("textcat_multilabel",),
    TaskKind.NER: ("beam_ner", "ner"),
    TaskKind.SPANS: ("spancat",),
}


def load_pipeline(name_or_path: str | Path) -> Language:
    """``spacy.load`` with an error that says what to give instead."""
    try:
        return spacy.load(name_or_path)
    except OSError as exc:
        raise UsageError(
            f"Cannot load the spaCy pipeline {str(name_or_path)!r}: it is neither an installed pipeline "
            "package nor a pipeline folder. Give a package you installed (e.g. `python -m spacy download "
            "en_core_web_md`, then --pipeline en_core_web_md) or the folder `spacy train` wrote "
            f"(e.g. --pipeline output/model-best). ({type(exc).__name__}: {exc})"
        ) from None


def is_initialized(proc: Any) -> bool:
    """Whether a component has weights: one loaded from disk has; one just added has none yet.

    thinc's ``has_param`` is ``None`` for a declared but unset parameter, ``True`` once it is set.
    """
    model = getattr(proc, "model", None)
    if model is None:
        return True
    return any(node.has_param(name) for node in model.walk() for name in node.param_names)


def _tok2vec(config: LearnerConfig, *, vectors: bool) -> dict[str, Any]:
    return {
        "@architectures": "spacy.HashEmbedCNN.v2",
        # True: the embedding also reads the vocab's static vectors (a pipeline's md/lg vectors)
        "pretrained_vectors": True if vectors else None,
        "width": config.width,
        "depth": config.depth,
        "embed_size": config.embed_size,
        "window_size": 1,
        "maxout_pieces": 3,
        "subword_features": True,
    }


def component_config(task: TaskKind, config: LearnerConfig, *, vectors: bool = False) -> tuple[str, dict[str, Any]]:
    """The factory and config of a component the Learner builds for ``task``.

    Without static vectors textcat is the BOW model (fast, strong on short texts); with vectors it is
    the ensemble of that BOW model and a CNN over the vectors, so a pipeline's vectors are used.
    """
    if task in (TaskKind.TEXTCAT, TaskKind.TEXTCAT_MULTILABEL):
        bow = {
            "@architectures": "spacy.TextCatBOW.v3",
            "exclusive_classes": task == TaskKind.TEXTCAT,
            "ngram_size": config.ngram_size,
            "no_output_layer": False,
        }
        if not vectors:
            model: dict[str, Any] = bow
        else:
            model = {"@architectures": "spacy.TextCatEnsemble.v2", "tok2vec": _tok2vec(config, vectors=True),
                     "linear_model": bow}
        return FACTORIES[task][0], {"model": model}
    if task == TaskKind.NER:
        return "beam_ner", {
            "beam_width": config.beam_width,
            "beam_density": config.beam_density,
            "beam_update_prob": 0.5,
            "model": {"hidden_width": 64, "tok2vec": _tok2vec(config, vectors=vectors)},
        }
    return "spancat", {
        "spans_key": config.spans_key,
        "suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": list(config.ngram_sizes)},
        "model": {"tok2vec": _tok2vec(config, vectors=vectors)},
    }


@dataclass
class PreparedPipeline:
    """A loaded pipeline made ready for the Learner, and what was done to it (``notes``, for the user)."""

    nlp: Language
    component: str
    labels: list[str]
    #: the component was added here (it needs no other component to run)
    added: bool
    #: the component had weights: it is fine-tuned, not initialised
    trained: bool
    notes: list[str] = field(default_factory=list)


def _factory(nlp: Language, name: str) -> str:
    return str(nlp.get_pipe_meta(name).factory)


def prepare_pipeline(
    nlp: Language,
    task: TaskKind | str,
    labels: Sequence[str],
    *,
    component: str | None,
    config: LearnerConfig,
) -> PreparedPipeline:
    """Find or add the target component and give it the labels; see the module docstring."""
    task = TaskKind(task)
    wanted = list(dict.fromkeys(labels))
    fits = FACTORIES[task]
    if component is None:
        component = next((n for n in nlp.pipe_names if _factory(nlp, n) in fits), None)
    notes: list[str] = []
    if component is None or component not in nlp.pipe_names:
        name = component or fits[0]
        vectors = nlp.vocab.vectors.shape[0] > 0 and nlp.vocab.vectors.shape[1] > 0
        factory, cfg = component_config(task, config, vectors=vectors)
        added: Any = nlp.add_pipe(factory, name=name, config=cfg)
        for label in wanted:
            added.add_label(label)
        width = nlp.vocab.vectors.shape[1]
        how = f"reading the pipeline's {width}-d static vectors" if vectors else "no static vectors"
        notes.append(f"added a new {factory} component {name!r} ({how}); the other components are kept")
        return PreparedPipeline(nlp, name, wanted, added=True, trained=False, notes=notes)
    factory = _factory(nlp, component)
    if factory not in fits:
        raise UsageError(
            f"Component {component!r} is a {factory!r} component; task {task.value} needs one of "
            f"{', '.join(fits)}. Name another with --component (a new name adds a fresh component)."
        )
    pipe: Any = nlp.get_pipe(component)
    trained = is_initialized(pipe)
    if task == TaskKind.NER and int(pipe.cfg.get("beam_width", 1)) < 2:
        # ner and beam_ner are one class (EntityRecognizer); the decoding is read from cfg at predict time.
        pipe.cfg.update(beam_width=config.beam_width, beam_density=config.beam_density, beam_update_prob=0.5)
        notes.append(f"{component!r} is a greedy ner: decoded with a beam of {config.beam_width} from now on "
                     "(its weights are kept) so its parses give entity probabilities")
    have = list(pipe.labels)
    if not trained:
        for label in wanted:
            if label not in have:
                pipe.add_label(label)
        return PreparedPipeline(nlp, component, wanted, added=False, trained=False, notes=notes)
    missing = [label for label in wanted if label not in have]
    if task in (TaskKind.TEXTCAT, TaskKind.TEXTCAT_MULTILABEL) and (missing or set(have) - set(wanted)):
        raise UsageError(
            f"Component {component!r} was trained with the labels {have}, the loop asks for {wanted}: a "
            "trained text classifier keeps its label set. Give --labels to match, or --component NEW_NAME "
            "to add a fresh classifier beside it."
        )
    for label in missing:
        try:
            pipe.add_label(label)
        except ValueError as exc:  # spaCy E922: this model's output layer cannot grow
            raise UsageError(
                f"Component {component!r} cannot learn the new label {label!r} ({exc}); give --component "
                "NEW_NAME to add a fresh component beside it."
            ) from None
    if missing:
        notes.append(f"new labels for {component!r}: {', '.join(missing)} (its output layer grows; the rest is kept)")
    extra = [label for label in have if label not in wanted]
    if extra:
        notes.append(f"{component!r} also predicts {', '.join(extra)}: those labels are kept in its pre-annotations")
    notes.append(f"fine-tuning the trained {factory} component {component!r} (weights kept, not re-initialised)")
    return PreparedPipeline(nlp, component, have + missing, added=False, trained=True, notes=notes)
