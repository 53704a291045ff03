"""What a command runs on: the :class:`Inputs` of ``load_inputs`` and the ``--mask`` file checked against the model.

The lowest of the command modules: the GLUE side (``_common``) and the language-model side
(``_language_model``) both build on it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


def load_mask_file(path):
    """The ``--mask`` file (``.npy`` or ``.json``), or None when no file is given."""
    from ..core.mask_files import load_mask

    return None if path is None else load_mask(path)


def mask_for_model(mask, path, bound):
    """``mask`` (from the file ``path``) if its shape is the bound model's ``(layers, heads)``; None stays None."""
    if mask is None:
        return None
    shape = bound.shape
    if mask.shape != shape:
        raise ValueError(f"the mask in {path} has shape {mask.shape}, but this model has {shape[0]} layers x "
                         f"{shape[1]} heads; give a mask of shape {shape}")
    return mask


class Inputs(NamedTuple):
    """What ``load_inputs`` (``_common``; ``load_lm_inputs`` for ``--task lm``) gives a command."""

    bound: Any  # BoundModel: the model bound once, with --label-map and --ablation applied
    eval_set: Any  # EvalSet or None: the examples encoded once
    task: Any  # GlueTask or None
    mask: np.ndarray | None  # --mask, checked against the model's shape


__all__ = ["Inputs", "load_mask_file", "mask_for_model"]
