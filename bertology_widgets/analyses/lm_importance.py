"""Head importance (Michel et al. 2019) and attention entropy on a language model's own loss.

Two procedures:

- the default, as for classifiers: each text's importance is ``|d loss_i / d g|``
  at the current mask, with ``loss_i`` the text's mean NLL over its predicted
  tokens (:meth:`~bertology_widgets.core.lm_objective.LanguageModelObjective.losses`),
  averaged over the texts; the entropy is of the attention weights, averaged
  over the real query tokens of every text;
- ``compat=True`` follows transformers' ``run_prune_gpt.py`` exactly (as the
  classifier's ``compat`` follows ``run_bertology.py``): batches of one text by
  default, in file order (its sequential loader); each batch's loss is the mean NLL over its predicted tokens (the
  ``labels=`` loss); the gate's gradient is never zeroed, and its absolute
  value is added up after every batch; the entropy is that of the **squared**
  attention weights, summed over the batch, the query positions and (as that
  script does) the heads of the layer, so every head of a layer gets the same
  number; importance and entropy are divided by the number of input tokens;
  the score is ``1 / (sum of the batch losses)``.

Then, in both, each layer's importance is divided by its L2 norm and all of it
min-max scaled to ``[0, 1]`` (each can be turned off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet
from ..core.capturing import attention_implementation
from ..core.gating import HeadMaskLike
from ..core.lm_objective import LanguageModelObjective
from ..core.modes import eval_mode


@dataclass
class LMImportance:
    """What :func:`lm_head_importance` found.

    Attributes
    ----------
    importance : np.ndarray, shape ``(layers, heads)``
        After the normalisations asked for.
    raw_importance : np.ndarray, shape ``(layers, heads)``
        Before them.
    entropy : np.ndarray, shape ``(layers, heads)``, or None
    loss : float
        The mean NLL per text (default), or the sum of the batch losses (``compat``).
    score : float
        ``1 / loss`` under ``compat`` (``run_prune_gpt.py``'s score), else NaN (the objective's
        :func:`~bertology_widgets.analyses.lm_evaluation.evaluate_lm` gives the perplexity).
    """

    importance: np.ndarray
    raw_importance: np.ndarray
    entropy: np.ndarray | None
    loss: float
    score: float


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """``-sum p log p`` over the last axis, with ``0 log 0 = 0``."""
    plogp = p * torch.log(p)
    plogp[p == 0] = 0
    return -plogp.sum(-1)


def normalize_importance(raw: torch.Tensor, by_layer: bool = True, global_: bool = True) -> torch.Tensor:
    """Each layer divided by its L2 norm, then all of it min-max scaled to ``[0, 1]`` (``run_bertology.py``)."""
    importance = raw.clone()
    if by_layer:
        importance /= importance.pow(2).sum(-1).pow(0.5).unsqueeze(-1) + 1e-20
    if global_:
        importance = (importance - importance.min()) / (importance.max() - importance.min())
    return importance


def lm_head_importance(bound: BoundModel, eval_set: EvalSet, objective: LanguageModelObjective,
                       mask: HeadMaskLike = None, *, compat: bool = False, batch_size: int | None = None,
                       compute_entropy: bool = True, normalize_by_layer: bool = True,
                       normalize_global: bool = True) -> LMImportance:
    """Head importance ``(layers, heads)`` on the LM loss at ``mask`` (see the module docstring).

    ``batch_size`` defaults to 1 with ``compat`` (as ``run_prune_gpt.py``), else 8.
    """
    model = bound.model
    layers, heads = bound.shape
    base = bound.gates(mask).detach().float().to(bound.device)
    batch_size = batch_size or (1 if compat else 8)
    importance = torch.zeros(layers, heads, dtype=torch.float64)
    entropy = torch.zeros(layers, heads, dtype=torch.float64)
    gates = base.clone().requires_grad_(True)  # compat: one gate tensor, its gradient never zeroed
    total_loss, tokens, texts = 0.0, 0.0, 0
    implementation = "eager" if compute_entropy else getattr(model.config, "_attn_implementation", "sdpa")
    with eval_mode(model), attention_implementation(model, implementation), torch.enable_grad():
        for indices in _batches(eval_set, batch_size, compat):
            batch = collate(eval_set.encoded, indices, bound.pad_id, bound.device,
                            with_token_types=bound.uses_token_types)
            if not compat:
                gates = base.expand(len(indices), layers, heads).clone().requires_grad_(True)
            with bound.masked(gates):
                out = model(**batch, output_attentions=compute_entropy,
                            **({"use_cache": False} if bound.is_causal else {}))
            if compat:
                rows, cols, targets = (t.to(bound.device) for t in objective.targets(batch, eval_set, indices))
                batch_loss = F.cross_entropy(out.logits[rows, cols].float(), targets)
                batch_loss.backward()
                importance += _grad(gates).abs().double().cpu()
                total_loss += float(batch_loss.detach())
            else:
                losses = objective.losses(out.logits, batch, eval_set, indices)
                losses.sum().backward()
                importance += _grad(gates).abs().double().sum(0).cpu()
                total_loss += float(losses.detach().sum())
            query = batch["attention_mask"].to(torch.float64)  # (batch, q)
            if compute_entropy:
                for layer, attn in enumerate(out.attentions):
                    if compat:  # the squared weights; summed over batch, queries and the layer's heads
                        value = (_entropy(attn.detach().double() ** 2) * query[:, None]).sum()
                        entropy[layer] += value
                    else:
                        entropy[layer] += (_entropy(attn.detach().double()) * query[:, None]).sum(-1).sum(0).cpu()
            tokens += float(query.sum())
            texts += len(indices)
    raw = importance / (tokens if compat else texts)
    loss = total_loss if compat else total_loss / texts
    normalized = normalize_importance(raw, normalize_by_layer, normalize_global)
    return LMImportance(importance=normalized.numpy(), raw_importance=raw.numpy(),
                        entropy=(entropy / tokens).numpy() if compute_entropy else None, loss=loss,
                        score=1.0 / total_loss if compat else float("nan"))


def _batches(eval_set: EvalSet, batch_size: int, compat: bool) -> list[np.ndarray]:
    """Length-sorted batches; under ``compat`` the texts in file order, as the script's sequential loader
    (its gradient is never zeroed, so the order changes the sums)."""
    if not compat:
        return length_sorted_batches(eval_set.encoded.lengths, batch_size)
    order = np.arange(len(eval_set))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _grad(gates: torch.Tensor) -> torch.Tensor:
    assert gates.grad is not None, "the loss does not depend on the gates"
    return gates.grad.detach()


__all__ = ["LMImportance", "lm_head_importance", "normalize_importance"]
