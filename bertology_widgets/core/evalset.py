"""Examples tokenized once for one bound model (``BoundModel.encode``), with what they are scored against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .batching import EncodedExamples

if TYPE_CHECKING:
    from ..glue import Example, GlueTask


@dataclass(frozen=True)
class EvalSet:
    """Examples tokenized once for one bound model.

    Attributes
    ----------
    examples : sequence of Example
    encoded : EncodedExamples
        Unpadded token ids, ``n`` rows, cut to ``max_length``.
    labels : np.ndarray, shape ``(n,)``, or None
        Class ids in the task's order (or regression targets); None for unlabelled examples.
    task : GlueTask or None
    max_length : int
    targets : tuple or None
        What an objective scores each example against besides ``labels`` (one entry per example,
        e.g. a masked language model's masked positions and their tokens); None for GLUE.
    """

    examples: Sequence[Example]
    encoded: EncodedExamples
    labels: np.ndarray | None
    task: GlueTask | None
    max_length: int
    targets: tuple | None = None

    def __len__(self) -> int:
        return len(self.encoded)

    def head(self, n: int) -> EvalSet:
        """The first ``n`` examples, without tokenizing them again."""
        encoded = self.encoded
        return EvalSet(
            examples=self.examples[:n],
            encoded=EncodedExamples(encoded.input_ids[:n],
                                    None if encoded.token_type_ids is None else encoded.token_type_ids[:n],
                                    encoded.truncated[:n]),
            labels=None if self.labels is None else self.labels[:n],
            task=self.task,
            max_length=self.max_length,
            targets=None if self.targets is None else self.targets[:n],
        )

    def require_labels(self) -> np.ndarray:
        """The labels ``(n,)``; raises ``ValueError`` for unlabelled examples (a GLUE test split)."""
        if self.labels is None:
            raise ValueError("these examples have no labels (a GLUE test split has none); use 'validation'")
        return self.labels


__all__ = ["EvalSet"]
