"""What a session binds: a classifier for a GLUE task, or a language model with its own objective."""

from __future__ import annotations

from ..core.architectures import adapter_for
from ..core.bound import BoundModel, as_bound, bind
from ..core.lm_objective import LM_TASKS, lm_objective
from ..core.unembedding import has_lm_head


def session_bound(model, tokenizer, task, label_map) -> BoundModel:
    """The session's bound model: a classifier for a GLUE task, a language model with its objective for
    ``task`` in :data:`~bertology_widgets.core.lm_objective.LM_TASKS`.

    A language model given a GLUE task raises :class:`~bertology_widgets.models.loading.NoClassificationHeadError`
    (its scores would come from a random head), naming ``task="lm"``.
    """
    from ..models.loading import NoClassificationHeadError

    net = model.model if isinstance(model, BoundModel) else model
    is_lm = has_lm_head(net) and not adapter_for(net).is_task_model(net)
    if task is None and is_lm and not isinstance(model, BoundModel):
        task = "lm"  # a language model with no task named: its own objective
    if isinstance(model, BoundModel) or task not in LM_TASKS:
        if task is not None and task not in LM_TASKS and is_lm:
            raise NoClassificationHeadError(
                f"{type(net).__name__} is a language model with no classification head for {task}, so its {task} "
                f'scores would come from a random head; open it with task="lm" to score its own objective, or '
                f"fine-tune a classifier on it first: bertology finetune --task {task}")
        return as_bound(model, tokenizer, task=task, label_map=label_map)
    return bind(model, tokenizer, objective=lm_objective(model, task))


def lm_live_precision(precision: str) -> str:
    """A language model's live precision: fp32 (``"auto"`` too); bf16 is refused (it has no guard live)."""
    if precision == "bf16":
        raise ValueError('a language model\'s live score runs in fp32 (precision="auto" or "fp32"): a perplexity has '
                         "no close calls for the bf16 guard to re-score; for bf16's perplexity run "
                         "bertology evaluate --task lm --precision bf16")
    return "fp32"


__all__ = ["LM_TASKS", "lm_live_precision", "session_bound"]
