"""The model's class order versus the task's label order.

Public checkpoints number their classes as their authors chose:
``roberta-large-mnli`` says ``{0: CONTRADICTION, 1: NEUTRAL, 2: ENTAILMENT}``
where our MNLI order is entailment, neutral, contradiction. Scored against
the wrong order, a 90 % model reads as 30 %.

:func:`align_labels` reads ``config.id2label``, matches it to the task's
label names (case-insensitive, with the synonyms in :data:`SYNONYMS`;
generic ``LABEL_i`` names mean "already in task order"), and then permutes
the rows of the model's final classification layer, in place, so that
output ``j`` *is* task label ``j``; ``config.id2label`` is rewritten to the
task's names to match.

Why permute the weights rather than the logits: it is one change in one
place, and every consumer then holds by construction, including those that
read ``model(...).logits`` directly (importance's loss, capture, the live
layer-by-layer scorer, the probe, the masking curve, the dashboard's
labels). A row permutation of the last linear layer is exactly a
permutation of its outputs, so scores are bitwise unchanged and the loss is
the same function of the gates: importance is unchanged too (for each
example the loss uses the class the model itself calls, say, "positive").
The step is idempotent: an aligned model's names already match the task.
:func:`applied_label_map` recalls the mapping used, for notices.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .exceptions import BertologyWarning

if TYPE_CHECKING:
    from ..glue import GlueTask

#: Accepted names (normalised: lower case, ``_`` for spaces and hyphens) of each task label.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "negative": ("negative", "neg"),
    "positive": ("positive", "pos"),
    "entailment": ("entailment", "entails", "entailed"),
    "not_entailment": ("not_entailment", "non_entailment", "no_entailment", "not_entailed"),
    "neutral": ("neutral",),
    "contradiction": ("contradiction", "contradict", "contradicts"),
    "equivalent": ("equivalent", "paraphrase"),
    "not_equivalent": ("not_equivalent", "not_paraphrase", "non_paraphrase"),
    "acceptable": ("acceptable", "grammatical"),
    "unacceptable": ("unacceptable", "not_acceptable", "ungrammatical"),
    "duplicate": ("duplicate",),
    "not_duplicate": ("not_duplicate", "non_duplicate"),
}

_GENERIC = re.compile(r"^label_(\d+)$")
_APPLIED_ATTR = "_bertology_label_map"


def normalize_label(name: object) -> str:
    """``"NOT ENTAILMENT"`` -> ``"not_entailment"``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


@dataclass(frozen=True)
class LabelMap:
    """How a model's classes correspond to a task's labels.

    Attributes
    ----------
    task : str
        The GLUE task's display name.
    model_names, task_names : tuple of str
        ``config.id2label`` in class order; the task's ``label_names``.
    model_to_task : tuple of int
        ``model_to_task[i]`` is the task label of the model's class ``i``.
    """

    task: str
    model_names: tuple[str, ...]
    task_names: tuple[str, ...]
    model_to_task: tuple[int, ...]

    @property
    def is_identity(self) -> bool:
        return all(i == t for i, t in enumerate(self.model_to_task))

    @property
    def task_to_model(self) -> tuple[int, ...]:
        """``task_to_model[j]``: the model's class for task label ``j`` (the inverse permutation)."""
        inverse = [0] * len(self.model_to_task)
        for i, t in enumerate(self.model_to_task):
            inverse[t] = i
        return tuple(inverse)

    def describe(self) -> str:
        """``"model class 0 'POSITIVE' -> positive, 1 'NEGATIVE' -> negative (SST-2 order: negative, positive)"``."""
        pairs = ", ".join(f"{i} {name!r} -> {self.task_names[t]}"
                          for i, (name, t) in enumerate(zip(self.model_names, self.model_to_task)))
        return f"model class {pairs} ({self.task} order: {', '.join(self.task_names)})"

    def as_dict(self) -> dict:
        """``{model class name: task label name}``, e.g. for ``--json`` output."""
        return {name: self.task_names[t] for name, t in zip(self.model_names, self.model_to_task)}


def _model_names(id2label, num_labels: int) -> list[str]:
    table = {int(k): str(v) for k, v in (id2label or {}).items()}
    return [table.get(i, f"LABEL_{i}") for i in range(num_labels)]


def _task_index(name, task_names, synonyms: bool = True) -> int | None:
    key = normalize_label(name)
    if re.fullmatch(r"\d+", key) and int(key) < len(task_names):
        return int(key)
    for j, task_name in enumerate(task_names):
        if key == normalize_label(task_name) or (synonyms and key in SYNONYMS.get(normalize_label(task_name), ())):
            return j
    return None


def _mismatch(task, model_names, task_names, why: str, recorded: str | None) -> ValueError:
    example = ", ".join(f"{m!r}: {t!r}" for m, t in zip(model_names, task_names))
    cli = ",".join(f"{m}={t}" for m, t in zip(model_names, task_names))
    trained = f"; the model records task {recorded!r}" if recorded else ""
    return ValueError(
        f"cannot match the model's labels to {task.display_name}'s ({why}){trained}: the model's classes are "
        f"{list(model_names)}, {task.display_name}'s labels are {list(task_names)}. Say which is which with "
        f"label_map={{{example}}} (Python) or --label-map {cli} (command line)"
    )


def resolve_label_map(
    id2label: dict, task: str | GlueTask, label_map: dict | None = None, recorded_task: str | None = None
) -> LabelMap:
    """Match ``id2label`` (``{class: name}``) to ``task``'s labels.

    Parameters
    ----------
    id2label : dict
        The model's ``config.id2label``.
    task : str or GlueTask
    label_map : dict, optional
        ``{model class name or index: task label name or index}`` for every
        class, overriding the automatic matching.
    recorded_task : str, optional
        The task the model was fine-tuned on, named in errors.

    Raises
    ------
    ValueError
        When names cannot be matched one to one; the message lists both
        lists and shows the ``label_map`` / ``--label-map`` that would fix it.
    """
    from ..glue import get_task

    glue_task = get_task(task)
    task_names = tuple(glue_task.label_names)
    if glue_task.is_regression:
        return LabelMap(glue_task.display_name, ("score",), ("score",), (0,))
    model_names = _model_names(id2label, len(task_names))
    if label_map is not None:
        given = {normalize_label(k): v for k, v in dict(label_map).items()}
        mapping = []
        for i, name in enumerate(model_names):
            target = given.get(normalize_label(name), given.get(str(i)))
            index = None if target is None else _task_index(target, task_names, synonyms=False)
            if index is None:
                raise _mismatch(glue_task, model_names, task_names,
                                f"label_map gives no task label for class {i} {name!r}", recorded_task)
            mapping.append(index)
    else:
        mapping = []
        for i, name in enumerate(model_names):
            generic = _GENERIC.match(normalize_label(name))
            index = int(generic.group(1)) if generic else _task_index(name, task_names)
            if index is None or index >= len(task_names):
                raise _mismatch(glue_task, model_names, task_names, f"no task label is called {name!r}",
                                recorded_task)
            mapping.append(index)
    if sorted(mapping) != list(range(len(task_names))):
        raise _mismatch(glue_task, model_names, task_names, "two classes map to the same label", recorded_task)
    return LabelMap(glue_task.display_name, tuple(model_names), task_names, tuple(mapping))


def output_layer(model: nn.Module) -> nn.Linear:
    """The task model's last ``nn.Linear`` with one output per class (BERT's ``classifier``, GPT-2's ``score``...)."""
    from .architectures import adapter_for

    adapter = adapter_for(model)
    config: Any = model.config
    num_labels = int(config.num_labels)
    found = [module for name in adapter.classifier_modules for module in getattr(model, name).modules()
             if isinstance(module, nn.Linear) and module.out_features == num_labels]
    if not found:
        raise ValueError(f"{type(model).__name__} has no linear layer with {num_labels} outputs to reorder")
    return found[-1]


@torch.no_grad()
def align_labels(model: nn.Module, task: str | GlueTask, label_map: dict | None = None) -> LabelMap:
    """Put ``model``'s classes in ``task``'s label order, in place (see the module docstring).

    Returns
    -------
    LabelMap
        The mapping from the model's original classes; its ``is_identity``
        says whether anything moved. A model aligned earlier returns the
        mapping used then.

    Raises
    ------
    ValueError
        When the names cannot be matched (see :func:`resolve_label_map`).
    """
    from ..glue import get_task

    glue_task = get_task(task)
    config: Any = model.config
    if glue_task.is_regression or int(config.num_labels) != glue_task.num_labels:
        return resolve_label_map({}, glue_task)  # regression, or a size check elsewhere refuses it
    mapping = resolve_label_map(config.id2label, glue_task, label_map, recorded_task(model))
    if mapping.is_identity and label_map is None:
        previous = getattr(model, _APPLIED_ATTR, None)
        return previous if previous is not None and previous.task_names == mapping.task_names else mapping
    if not mapping.is_identity:
        linear = output_layer(model)
        order = torch.as_tensor(mapping.task_to_model, device=linear.weight.device)
        linear.weight.copy_(linear.weight[order])
        if linear.bias is not None:
            linear.bias.copy_(linear.bias[order])
    # the task's names from now on, so that later (automatic) calls find nothing to do
    config.id2label = dict(enumerate(mapping.task_names))
    config.label2id = {name: i for i, name in enumerate(mapping.task_names)}
    if mapping.is_identity:
        return mapping
    setattr(model, _APPLIED_ATTR, mapping)
    return mapping


class TaskMismatchWarning(BertologyWarning):
    """The model records that it was fine-tuned on another task than the one it is scored on."""


def recorded_task(model: nn.Module) -> str | None:
    """The task the model says it was fine-tuned on (``bertology_task`` or ``finetuning_task``), if any."""
    config = getattr(model, "config", None)
    return getattr(config, "bertology_task", None) or getattr(config, "finetuning_task", None)


def warn_if_other_task(model: nn.Module, task: str | GlueTask) -> str | None:
    """Warn (and return the message) when ``model`` records a fine-tuning task other than ``task``."""
    from ..glue import get_task

    glue_task = get_task(task)
    recorded = recorded_task(model)
    try:
        other = get_task(recorded) if recorded else None
    except ValueError:  # a task name outside GLUE: nothing to compare with
        return None
    if other is None or other.name == glue_task.name:
        return None
    message = (f"this model was fine-tuned on {other.display_name} but is scored on {glue_task.display_name}; "
               f"expect a meaningless score unless that is what you want")
    warnings.warn(message, TaskMismatchWarning, stacklevel=3)
    return message


def applied_label_map(model: nn.Module) -> LabelMap | None:
    """The non-identity mapping :func:`align_labels` applied to ``model``, or ``None``."""
    return getattr(model, _APPLIED_ATTR, None)


def label_notice(model: nn.Module) -> str:
    """One line naming the class mapping applied to ``model`` (``""`` when its order was the task's)."""
    mapping = applied_label_map(model)
    return "" if mapping is None else f"labels reordered to the task's: {mapping.describe()}"


def parse_label_map(text: str | None) -> dict | None:
    """``--label-map``: ``"NEGATIVE=negative,POSITIVE=positive"`` or a JSON object, to a dict."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--label-map is not valid JSON ({exc.msg}); "
                             f"write e.g. NEGATIVE=negative,POSITIVE=positive") from None
        if not isinstance(value, dict):
            raise ValueError("--label-map must be a JSON object like {\"NEGATIVE\": \"negative\"}")
        return {str(k): str(v) for k, v in value.items()}
    pairs = [p for p in text.split(",") if p.strip()]
    if not pairs or any(p.count("=") != 1 for p in pairs):
        raise ValueError(f"--label-map {text!r}: write MODEL_LABEL=TASK_LABEL pairs separated by commas, "
                         f"e.g. NEGATIVE=negative,POSITIVE=positive")
    return {k.strip(): v.strip() for k, v in (p.split("=") for p in pairs)}


__all__ = ["SYNONYMS", "LabelMap", "TaskMismatchWarning", "align_labels", "applied_label_map", "label_notice",
           "normalize_label", "output_layer",
           "parse_label_map", "recorded_task", "resolve_label_map", "warn_if_other_task"]
