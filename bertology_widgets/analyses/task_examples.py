"""A GLUE task's labelled examples for the sentence probes: seeded subsets and integer class labels.

Shared by the pipeline's ``task`` row (:mod:`bertology_widgets.analyses.pipeline`)
and the layer probe (:mod:`bertology_widgets.analyses.probe`), which is a view of
that row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    from ..glue import Example


def subsample(examples: Iterable[Example], limit: int | None, seed: int) -> list:
    """At most ``limit`` of ``examples``, drawn at random without replacement (all, in order, if fewer)."""
    examples = list(examples)
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=int(limit), replace=False))
    return [examples[i] for i in keep]


def class_labels(examples: Iterable[Example], what: str) -> np.ndarray:
    """The integer class labels ``(n,)`` of ``examples``; ``ValueError`` for missing or regression labels."""
    labels = [ex.label for ex in examples]
    if any(label is None for label in labels):
        raise ValueError(f"the {what} examples have no labels (a GLUE test split?); probes need labelled data")
    array = np.asarray(labels)
    if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
        raise ValueError(f"the {what} labels are real numbers (a regression task such as STS-B); "
                         "layer probes support classification tasks only")
    return array.astype(np.int64)


__all__ = ["class_labels", "subsample"]
