"""Hidden-state analysis: norms, layer-to-layer similarity, PCA and pooled sentence states.

Pure NumPy / torch; the views in :mod:`bertology_widgets.widgets.hidden_states`
and the probes in :mod:`bertology_widgets.analyses.probe` are written against these.

Shapes: ``hs`` is ``(layers + 1, pos, hidden)`` (the embedding output, then the
output of every layer), as in :attr:`ModelSession.hidden_states
<bertology_widgets.session.ModelSession>` and :attr:`Capture.hidden_states
<bertology_widgets.core.capturing.Capture>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, as_scored
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from ..runtime.progress import Progress, progress_reporter

if TYPE_CHECKING:
    import numpy.typing as npt
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example

POOLINGS = ("cls", "mean")
_EPS = 1e-12


def _check_states(hs, ndim: int, what: str) -> np.ndarray:
    hs = np.asarray(hs, dtype=np.float64)
    if hs.ndim != ndim:
        raise ValueError(f"expected {what}, got an array of shape {hs.shape}")
    return hs


def token_norms(hs: npt.ArrayLike) -> np.ndarray:
    """L2 norm of every token's state at every layer.

    ``hs (layers + 1, pos, hidden)`` -> ``(layers + 1, pos)``.
    """
    hs = _check_states(hs, 3, "hidden states of shape (layers + 1, pos, hidden)")
    return np.sqrt(np.einsum("lph,lph->lp", hs, hs))


def layer_to_layer_cosine(hs: npt.ArrayLike) -> np.ndarray:
    """Cosine similarity of each token's state with its state one layer below.

    ``hs (layers + 1, pos, hidden)`` -> ``(layers, pos)``: row ``l`` compares
    the output of layer ``l`` with its input (``hs[l + 1]`` with ``hs[l]``).
    A zero vector has similarity 0 with anything.
    """
    hs = _check_states(hs, 3, "hidden states of shape (layers + 1, pos, hidden)")
    norms = token_norms(hs)
    dots = np.einsum("lph,lph->lp", hs[1:], hs[:-1])
    return dots / np.maximum(norms[1:] * norms[:-1], _EPS)


def pca_2d(states: npt.ArrayLike) -> np.ndarray:
    """The tokens projected on the first two principal components.

    ``states (pos, hidden)`` -> ``(pos, 2)``. The states are centred; the
    components come from an SVD. Sign convention (deterministic, and the same
    for ``states`` and ``-states``): in each column the coordinate of largest
    magnitude is positive. With fewer than 3 tokens or a rank below 2, the
    missing components are zeros.
    """
    x = _check_states(states, 2, "token states of shape (pos, hidden)")
    out = np.zeros((x.shape[0], 2))
    if x.shape[0] == 0:
        return out
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    scores = u[:, :k] * s[:k]
    scores[:, s[:k] <= _EPS * max(float(s[0]), 1.0)] = 0.0
    biggest = scores[np.argmax(np.abs(scores), axis=0), np.arange(k)]
    out[:, :k] = scores * np.where(biggest < 0, -1.0, 1.0)
    return out


def pooling_positions(attention_mask: torch.Tensor, pooling: str, causal: bool) -> torch.Tensor:
    """Weights ``(batch, pos)`` that pool a batch's token states into one vector per example.

    ``"mean"``: uniform over the non-padding tokens. ``"cls"``: all weight on
    the first token for encoders (``[CLS]`` / ``<s>``) and on the last
    non-padding token for decoders (GPT-2, Llama), the only token that has
    seen the whole input, as their sequence classifiers do. Right padding
    (as :func:`~bertology_widgets.core.batching.collate` pads) is assumed.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    valid = attention_mask.to(torch.float32)
    if pooling == "mean":
        return valid / valid.sum(dim=1, keepdim=True).clamp(min=1.0)
    weights = torch.zeros_like(valid)
    rows = torch.arange(valid.shape[0])
    last = (valid.sum(dim=1).long() - 1).clamp(min=0) if causal else torch.zeros_like(rows)
    weights[rows, last] = 1.0
    return weights


@torch.inference_mode()
def pooled_states(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                  examples: Sequence[Example] | None = None, mask: HeadMaskLike = None, pooling: str = "cls",
                  batch_size: int = 32, max_length: int = 128,
                  progress: Progress = False) -> np.ndarray:
    """One vector per example and layer: the pooled hidden states under a head mask.

    Parameters
    ----------
    bound, eval_set
        A bound model (see :mod:`bertology_widgets.core.architectures`) and its encoded examples; or a
        model, its tokenizer and ``examples`` (:class:`~bertology_widgets.glue.Example`), bound here
        (see :func:`~bertology_widgets.core.bound.as_scored`). The bound model's default ablation
        applies to ``mask``.
    mask : array-like, shape ``(layers, heads)``, optional
        Head mask applied during the pass (1 keep, 0 mask).
    pooling : {"cls", "mean"}
        See :func:`pooling_positions`: ``"cls"`` is the first token for
        encoders and the last non-padding token for decoders; ``"mean"``
        averages the non-padding tokens.
    batch_size, max_length : int
        Examples per length-sorted batch; tokens per example (longer ones are truncated).
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, total)`` in batches.

    Returns
    -------
    np.ndarray, float32, shape ``(layers + 1, n, hidden)``
        Row 0 pools the embedding output, row ``l`` the output of layer ``l - 1``.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    bound, eval_set = as_scored(bound, eval_set, examples, max_length=max_length)
    model = bound.model
    causal = bound.is_causal
    encoded = eval_set.encoded
    device = bound.device
    pad, with_types = bound.pad_id, bound.uses_token_types
    out = None
    batches = length_sorted_batches(encoded.lengths, batch_size)
    report = progress_reporter(progress, len(batches), desc="hidden states", unit="batch")
    with eval_mode(model), bound.masked(mask), report:
        for indices in report.iterate(batches):
            batch = collate(encoded, indices, pad, device, with_types)
            hidden = model(**batch, output_hidden_states=True).hidden_states
            weights = pooling_positions(batch["attention_mask"].cpu(), pooling, causal)
            pooled = torch.einsum("bp,lbph->lbh", weights, torch.stack(hidden).float().cpu())
            if out is None:
                out = np.zeros((pooled.shape[0], len(encoded), pooled.shape[2]), dtype=np.float32)
            out[:, indices] = pooled.numpy()
    if out is None:
        raise ValueError("no examples given to pool hidden states over")
    return out


__all__ = ["POOLINGS", "layer_to_layer_cosine", "pca_2d", "pooled_states", "pooling_positions", "token_norms"]
