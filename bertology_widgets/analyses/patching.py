"""Activation patching: which heads carry the decision for this input?

Run a clean and a corrupted input. For each head, put the head's output from
the clean run into the corrupted run (at every position, or at one position)
and measure how much of the clean behaviour comes back, as TransformerLens's
``get_act_patch_attn_head_out_all_pos`` does. Heads are patched where they
are gated: the input of the attention output projection.

All patched runs go through the model in batches: each batch row is the
corrupted input with one (layer, head[, position]) replaced by the clean
run's value, cached once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..core.bound import BoundModel, as_bound
from ..core.capturing import _model_inputs, encode
from ..core.gating import HeadMaskLike
from ..core.hooks import this_thread_only
from ..core.lm_objective import LanguageModelObjective
from ..core.modes import eval_mode
from ..core.objective import PatchMetric, logit_difference, normalised_logit_difference

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class PatchingResult:
    """One patching experiment.

    Attributes
    ----------
    grid : np.ndarray, shape ``(layers, heads)`` or ``(layers, heads, pos)``
        The metric for each patched head (and position). NaN for heads pruned away.
    clean_logits, corrupted_logits : np.ndarray, shape ``(k,)``
        What the objective reads from each run (``Objective.readout``: a classifier's logits ``(labels,)``).
    clean_tokens, corrupted_tokens : list of str
    per_position : bool
    """

    grid: np.ndarray
    clean_logits: np.ndarray
    corrupted_logits: np.ndarray
    clean_tokens: list
    corrupted_tokens: list
    per_position: bool

    @property
    def clean_prediction(self) -> int:
        return int(np.argmax(self.clean_logits))

    @property
    def corrupted_prediction(self) -> int:
        return int(np.argmax(self.corrupted_logits))

    def to_dict(self) -> dict:
        """JSON-ready (NaN -> None)."""
        grid = np.where(np.isfinite(self.grid), self.grid, np.nan).astype(object)
        grid[~np.isfinite(self.grid)] = None
        return {"grid": grid.tolist(), "per_position": self.per_position,
                "clean_tokens": self.clean_tokens, "corrupted_tokens": self.corrupted_tokens,
                "clean_logits": self.clean_logits.tolist(), "corrupted_logits": self.corrupted_logits.tolist(),
                "clean_prediction": self.clean_prediction, "corrupted_prediction": self.corrupted_prediction}


def _patch_hook(layer_index: int, kept: list[int], head_dim: int, clean: list, plans: dict):
    """Pre-hook replacing chosen head slices by the clean run's, row by row.

    ``plans["select"]`` is ``(rows, layers, heads, pos)`` float (1 = take the
    clean value); ``clean[layer_index]`` is ``(1, pos, kept * d_head)``.
    """
    def hook(module, args):
        x = args[0]
        select = plans["select"][:, layer_index, kept]  # (rows, kept, pos)
        if not bool(select.any()):
            return None
        width = min(x.shape[1], clean[layer_index].shape[1])
        heads = x.view(*x.shape[:-1], -1, head_dim).clone()
        source = clean[layer_index][:, :width].view(1, width, -1, head_dim).to(x.dtype)
        s = select.permute(0, 2, 1)[:, :width, :, None].to(x.dtype)  # (rows, pos, kept, 1)
        heads[:, :width] = heads[:, :width] * (1 - s) + source * s
        return (heads.view(x.shape), *args[1:])

    return hook


@torch.inference_mode()
def run_patching(model: BoundModel | nn.Module, tokenizer: PreTrainedTokenizerBase | None, clean: str,
                 corrupted: str, *, metric: PatchMetric | None = None, target: int | None = None,
                 per_position: bool = False, mask: HeadMaskLike = None, batch_size: int = 72) -> PatchingResult:
    """Patch every head's clean output into the corrupted run; see :func:`patch_heads`.

    ``model``: a bound model (``tokenizer`` then ``None``), or a model and its tokenizer, bound here
    (:func:`~bertology_widgets.core.bound.as_bound`). The bound model's label order is applied to the
    logits, its default ablation to ``mask``; its objective says what is read from each run
    (``Objective.readout``) and the default ``metric`` (``Objective.patch_metric(target)``).
    """
    bound = as_bound(model, tokenizer)
    model, tokenizer = bound.model, bound.tokenizer
    adapter = bound.adapter
    objective = bound.objective
    if not bound.is_task_model and not isinstance(objective, LanguageModelObjective):
        raise ValueError(f"{type(model).__name__} has no sequence-classification head; patching compares logits "
                         f"(for a language model, bind it with its objective: lm_objective(model))")
    if metric is None:  # without an objective (no task): the classifier's logit difference
        metric = objective.patch_metric(target) if objective is not None else partial(
            normalised_logit_difference, target=target)
    num_layers, num_heads = bound.shape
    head_dim = bound.head_dim
    kept = bound.kept_heads()
    device = bound.device
    clean_batch, _ = encode(tokenizer, model, clean)
    corrupt_batch, _ = encode(tokenizer, model, corrupted)
    clean_in = {k: v.to(device) for k, v in _model_inputs(model, clean_batch).items()}
    corrupt_in = {k: v.to(device) for k, v in _model_inputs(model, corrupt_batch).items()}
    n_clean, n_corrupt = clean_in["input_ids"].shape[1], corrupt_in["input_ids"].shape[1]
    if per_position and n_clean != n_corrupt:
        raise ValueError(f"per-position patching needs inputs of the same token length; the clean input has "
                         f"{n_clean} tokens and the corrupted one {n_corrupt}")
    layers = adapter.layer_modules(model)
    extra = {"use_cache": False} if adapter.causal else {}
    cached: list = [None] * num_layers
    plans = {"select": torch.zeros(1, num_layers, num_heads, n_corrupt)}

    def grab(layer_index):
        def hook(module, args):
            cached[layer_index] = args[0].detach().clone()
        return hook

    def read(inputs: dict) -> torch.Tensor:
        """``(rows, k)``: what the objective reads from a run of ``inputs``."""
        logits = bound.task_logits(model(**inputs, **extra).logits).float()
        return logits if objective is None else objective.readout(logits, inputs["attention_mask"])

    with eval_mode(model):
        with bound.masked(mask):
            handles = [adapter.out_projection(layers[i]).register_forward_pre_hook(this_thread_only(grab(i)))
                       for i in range(num_layers) if kept[i]]
            try:
                clean_logits = read(clean_in)[0].cpu().numpy()
            finally:
                for handle in handles:
                    handle.remove()
            handles = [adapter.out_projection(layers[i]).register_forward_pre_hook(
                this_thread_only(_patch_hook(i, kept[i], head_dim, cached, plans)))
                for i in range(num_layers) if kept[i]]
            try:
                corrupted_logits = read(corrupt_in)[0].cpu().numpy()
                jobs = [(layer, head, p) for layer in range(num_layers) for head in kept[layer]
                        for p in (range(n_corrupt) if per_position else [None])]
                values = np.zeros(len(jobs), dtype=np.float64)  # the metric per chunk: no (jobs, vocab) array
                for start in range(0, len(jobs), batch_size):
                    chunk = jobs[start:start + batch_size]
                    select = torch.zeros(len(chunk), num_layers, num_heads, n_corrupt)
                    for row, (layer, head, p) in enumerate(chunk):
                        select[row, layer, head, slice(None) if p is None else p] = 1.0
                    plans["select"] = select.to(device)
                    inputs = {k: v.expand(len(chunk), -1) for k, v in corrupt_in.items()}
                    patched = read(inputs).cpu().numpy().astype(np.float64)
                    values[start:start + len(chunk)] = metric(patched, clean_logits, corrupted_logits)
            finally:
                for handle in handles:
                    handle.remove()
    grid = np.full((num_layers, num_heads, n_corrupt) if per_position else (num_layers, num_heads), np.nan)
    for (layer, head, p), value in zip(jobs, values):
        grid[(layer, head) if p is None else (layer, head, p)] = value
    ids = tokenizer.convert_ids_to_tokens
    return PatchingResult(grid=grid, clean_logits=clean_logits, corrupted_logits=corrupted_logits,
                          clean_tokens=ids(clean_in["input_ids"][0].tolist()),
                          corrupted_tokens=ids(corrupt_in["input_ids"][0].tolist()), per_position=per_position)


def patch_heads(model: BoundModel | nn.Module, tokenizer: PreTrainedTokenizerBase | None, clean: str,
                corrupted: str, *, metric: PatchMetric | None = None, target: int | None = None,
                per_position: bool = False, mask: HeadMaskLike = None, batch_size: int = 72) -> np.ndarray:
    """Activation patching of every head from a clean into a corrupted run.

    Parameters
    ----------
    model, tokenizer
        A bound sequence classifier (``tokenizer`` then ``None``), or a supported one and its tokenizer.
    clean, corrupted : str
        The two inputs. When their token lengths differ, positions are
        matched from the start and only the common prefix is patched; use
        inputs of equal length for a clean comparison.
    metric : callable, optional
        ``metric(patched (n, k), clean (k,), corrupted (k,)) -> (n,)``, called on each batch of patched
        runs (so a language model's ``(runs, vocabulary)`` readouts are never held at once); default: the objective's
        (``Objective.patch_metric``; for a classifier :func:`normalised_logit_difference`).
    target : int, optional
        The class (or token) whose restoration the default metric measures (default: the clean top one).
    per_position : bool
        Patch one position at a time (needs equal token lengths).
    mask : array-like ``(layers, heads)``, optional
        Head mask applied to every run (clean, corrupted and patched).
    batch_size : int
        Patched runs per forward pass.

    Returns
    -------
    np.ndarray
        ``(layers, heads)``, or ``(layers, heads, pos)`` with ``per_position``.
        Use :func:`run_patching` for the logits and tokens too.
    """
    return run_patching(model, tokenizer, clean, corrupted, metric=metric, target=target, per_position=per_position,
                        mask=mask, batch_size=batch_size).grid


__all__ = ["PatchingResult", "logit_difference", "normalised_logit_difference", "patch_heads", "run_patching"]
