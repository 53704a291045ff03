"""GLUE from the Hugging Face hub, through the optional ``datasets`` package.

Used by :func:`~bertology_widgets.glue.load_glue` when no local GLUE folder
is configured. ``datasets`` is imported only here and only when called;
install it with ``pip install bertology-widgets[hub]``.
"""

from __future__ import annotations

from .examples import Example
from .tasks import GlueTask

#: The hub dataset holding the GLUE configs (``"sst2"``, ``"mnli"``, ...).
HUB_DATASET = "nyu-mll/glue"


def _hub_label(task: GlueTask, labelled: bool, value) -> int | float | None:
    """The hub's label as an :class:`Example` label; test rows carry -1 there."""
    if not labelled or value is None:
        return None
    if task.is_regression:
        return float(value)
    return int(value) if int(value) >= 0 else None


def load_from_hub(task: GlueTask, split: str, *, max_examples: int | None = None) -> list[Example]:
    """Download (or take from the ``datasets`` cache) one split of one task.

    Parameters
    ----------
    task : GlueTask
        The task; its ``name`` is the config of :data:`HUB_DATASET`.
    split : str
        Canonical split name; these are the hub's split names too.
    max_examples : int, optional
        Keep the first this many examples.

    Returns
    -------
    list of Example
        With the hub's label ids (the same order as ``task.label_names``).

    Raises
    ------
    ImportError
        When ``datasets`` is not installed.
    """
    import datasets  # optional dependency: bertology-widgets[hub]

    dataset = datasets.load_dataset(HUB_DATASET, task.name, split=split)
    if max_examples is not None:
        dataset = dataset.select(range(min(max_examples, len(dataset))))
    labelled = task.is_labelled(split)
    examples = []
    for position, record in enumerate(dataset):
        texts = [record[column] for column in task.hub_text_columns]
        examples.append(
            Example(
                text_a=texts[0],
                text_b=texts[1] if len(texts) > 1 else None,
                label=_hub_label(task, labelled, record.get("label")),
                idx=position,
                source=f"{HUB_DATASET}:{task.name}/{split}[{position}]",
            )
        )
    return examples
