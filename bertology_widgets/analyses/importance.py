"""Head importance and attention entropy (Michel et al., 2019).

A head's importance is how much the loss moves when its gate moves:
``I_h = E_x |dL(x) / dg_h|``, with ``g_h`` the gate on the head's output
(1 = as trained). :func:`head_importance` computes it, with the attention
entropy of every head on the same pass, either by that definition
(``per_example=True``, the default) or exactly as transformers'
``examples/research_projects/bertology/run_bertology.py`` does
(``compat=True``), quirks included.

The gates are the ones :func:`bertology_widgets.core.gating.mask_heads` uses (a
pre-hook on each layer's attention output projection), because transformers 5
ignores ``head_mask``. Scaling a head's output by ``g`` there is what
``head_mask`` did to its attention probabilities, so the gradients are the same.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import EncodedExamples, collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, as_scored
from ..core.capturing import attention_implementation
from ..core.gating import HeadMaskLike
from ..core.lm_objective import LanguageModelObjective
from ..core.modes import eval_mode
from ..core.objective import Objective
from ..runtime.distributed import ONE_PROCESS, Processes, ordered_sum
from ..runtime.progress import Progress, ProgressReporter, progress_reporter
from .evaluation import DEFAULT_MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example

#: Examples per forward/backward pass by default: 1 in compat mode (as run_bertology.py).
DEFAULT_IMPORTANCE_BATCH_SIZE = 16


@dataclass
class ImportanceResult:
    """What :func:`head_importance` measured.

    Attributes
    ----------
    importance : np.ndarray, shape ``(layers, heads)``
        Importance after the chosen normalisations (higher = more important).
    entropy : np.ndarray, shape ``(layers, heads)``, or None
        Mean attention entropy per non-padding query token, in nats
        (None when ``compute_entropy=False``).
    raw_importance : np.ndarray, shape ``(layers, heads)``
        Importance before normalisation: mean ``|dL/dg|`` per example, or in
        compat mode the accumulated sum divided by the token count.
    tokens : int
        Non-padding tokens seen.
    n_examples : int
        Examples seen.
    seconds : float
        Wall-clock time of the computation.
    """

    importance: np.ndarray
    entropy: np.ndarray | None
    raw_importance: np.ndarray
    tokens: int
    n_examples: int
    seconds: float

    @property
    def ranks(self) -> np.ndarray:
        """``(layers, heads)`` int ranks by importance: 0 = most important (run_bertology's head ranks)."""
        order = np.argsort(-self.importance.reshape(-1), kind="stable")
        ranks = np.empty(order.size, dtype=np.int64)
        ranks[order] = np.arange(order.size)
        return ranks.reshape(self.importance.shape)


def normalize_importance(raw: np.ndarray | torch.Tensor, by_layer: bool = True,
                         global_min_max: bool = True) -> np.ndarray:
    """Normalise ``(layers, heads)`` importance as run_bertology.py does.

    ``by_layer`` divides each layer by its L2 norm (``+ 1e-20``);
    ``global_min_max`` then maps the whole table onto ``[0, 1]``. Where every
    value is equal, min-max has no answer (run_bertology.py gives NaN) and
    this returns zeros.
    """
    scores = torch.as_tensor(np.asarray(raw, dtype=np.float32)).clone()
    if by_layer:
        exponent = 2
        norm_by_layer = torch.pow(torch.pow(scores, exponent).sum(-1), 1 / exponent)
        scores /= norm_by_layer.unsqueeze(-1) + 1e-20
    if global_min_max:
        spread = scores.max() - scores.min()
        scores = (scores - scores.min()) / spread if spread > 0 else torch.zeros_like(scores)
    return scores.numpy()


def attention_entropy_sums(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
    """``(layers, heads)`` entropy summed over non-padding query tokens of a batch.

    ``attentions``: one ``(batch, heads, query, key)`` tensor per layer;
    entropy ``-sum_k p log p`` (``0 log 0 = 0``) over the key axis.
    """
    query_mask = attention_mask.float()[:, None, :]
    return torch.stack([
        (-torch.xlogy(attn.detach().float(), attn.detach().float()).sum(-1) * query_mask).sum((0, 2))
        for attn in attentions
    ])


def _check_unpruned(bound: BoundModel) -> None:
    if any(len(heads) != bound.num_heads for heads in bound.kept_heads()):
        raise ValueError("head importance needs an unpruned model; mask heads (mask=...) instead of pruning them")


def _masked_entropy(entropy_sum: torch.Tensor, gates: torch.Tensor, tokens: float) -> torch.Tensor:
    """run_bertology.py's entropy under ``head_mask``: that of ``g * p``, i.e. ``g H(p) - g log g`` per token."""
    return gates * entropy_sum - torch.xlogy(gates, gates) * tokens


def head_importance(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
                    examples: Sequence[Example] | None = None, mask: HeadMaskLike = None, *,
                    per_example: bool = True, compat: bool = False,
                    batch_size: int | None = None, normalize_by_layer: bool = True, normalize_global: bool = True,
                    compute_entropy: bool = True, max_length: int = DEFAULT_MAX_LENGTH, task: str | None = None,
                    progress: Progress = False, on_progress: Callable[[int, int], None] | None = None,
                    processes: Processes = ONE_PROCESS) -> ImportanceResult:
    """Importance ``E_x |dL/dg_h|`` and attention entropy of every head.

    Parameters
    ----------
    bound, eval_set
        An unpruned bound model (BERT family, GPT-2, ...) and its encoded examples; or a model, its
        tokenizer and labelled ``examples`` (:class:`~bertology_widgets.glue.Example`), bound here
        (see :func:`~bertology_widgets.core.bound.as_scored`). The loss is the objective's
        (:meth:`~bertology_widgets.core.objective.Objective.losses`: for a GLUE task the model's
        own, cross-entropy, or squared error for STS-B).
    mask : array-like, shape ``(layers, heads)``, optional
        Gates to hold the heads at (1 keep, 0 masked); the gradients are taken there.
    per_example : bool
        True (the paper's definition): ``|dL(x)/dg|`` for each example, then
        the mean over examples. Batches are length-sorted and each example
        gets its own copy of the gates (a ``(batch, layers, heads)`` mask for
        :func:`~bertology_widgets.core.gating.mask_heads`), so one
        backward pass gives every example's own gradient: as exact as one
        example at a time, and about 2x faster on one CPU thread (MiniLM,
        SST-2); the gain grows with parallel hardware.
        False: ``|dL(batch)/dg|`` of each batch's mean loss, averaged over
        examples (equal to True at ``batch_size=1``; coarser above it).
    compat : bool
        Reproduce ``run_bertology.py`` instead (``per_example`` is then
        ignored): batches of ``batch_size`` (default 1) in file order, the
        batch-mean loss's gradient added to a gradient that is never zeroed,
        and the absolute value of that running sum added up after every
        batch, then divided by the number of non-padding tokens. (Its padding
        to 128 tokens is left out; it changes nothing but rounding.) For a
        language model's objective, ``run_prune_gpt.py`` instead
        (:func:`~bertology_widgets.analyses.lm_importance.lm_head_importance`):
        the batch loss is the ``labels=`` loss, the entropy that of the squared
        attention weights, the sums divided by the token count.
    batch_size : int, optional
        Examples per pass: 1 in compat mode, else
        :data:`DEFAULT_IMPORTANCE_BATCH_SIZE`.
    normalize_by_layer, normalize_global : bool
        run_bertology.py's L2 normalisation per layer, then min-max over all
        heads (see :func:`normalize_importance`); ``raw_importance`` is kept.
    compute_entropy : bool
        Also measure attention entropy. Attention weights exist only in
        eager attention, so the pass switches to eager for the duration;
        without entropy it stays on the model's (SDPA) path. Entropy is that
        of each head's attention distribution, which the gates do not change;
        in compat mode it is that of the gated probabilities, as
        ``head_mask`` left them (0 for a masked head).
    max_length : int
        Tokens per example.
    task : str, optional
        GLUE task (decides classification vs regression); default: the model's.
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, total)`` in
        examples after every batch, this process's share (see :mod:`~bertology_widgets.runtime.progress`).
    on_progress : callable, optional
        Also called as ``on_progress(done, total)`` (the older keyword).
    processes : :class:`~bertology_widgets.runtime.distributed.Processes`
        Under ``accelerate launch``, :func:`~bertology_widgets.runtime.distributed.current_processes`:
        each process takes every N-th batch, and the per-batch sums are gathered
        and added in batch order, so the result is the single-process one
        (compat mode is sequential and runs whole in every process). Only the
        main process shows the bar.

    Returns
    -------
    ImportanceResult
    """
    start = time.perf_counter()
    bound, eval_set = as_scored(bound, eval_set, examples, task=task, max_length=max_length)
    objective = bound.require_objective()
    objective.check(eval_set)
    _check_unpruned(bound)
    if batch_size is None:
        batch_size = 1 if compat else DEFAULT_IMPORTANCE_BATCH_SIZE
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if compat and isinstance(objective, LanguageModelObjective):
        return _run_prune_gpt_importance(bound, eval_set, objective, mask, batch_size, compute_entropy,
                                         normalize_by_layer, normalize_global, start)
    device = bound.device
    encoded = eval_set.encoded
    run = _ImportancePass(
        bound=bound, eval_set=eval_set, encoded=encoded, device=device, compute_entropy=compute_entropy,
        objective=objective, gates=bound.gates(mask).detach().float().to(device),
    )

    def report(total: int) -> ProgressReporter:  # in examples, this process's share
        return progress_reporter(progress, total, show_bar=processes.is_main, desc="head importance", unit="example",
                                 on_progress=on_progress)

    if compat:
        total, entropy_sum, tokens = _compat_sums(run, batch_size, report)
        raw = total / tokens
        if compute_entropy:
            entropy_sum = _masked_entropy(entropy_sum, run.gates.cpu(), tokens)
    else:
        sums = _per_example_sums if per_example else _batch_mean_sums
        total, entropy_sum, tokens = sums(run, batch_size, processes, report)
        raw = total / len(encoded)
    return ImportanceResult(
        importance=normalize_importance(raw.numpy(), normalize_by_layer, normalize_global),
        entropy=(entropy_sum / tokens).numpy() if compute_entropy else None,
        raw_importance=raw.numpy(),
        tokens=int(tokens),
        n_examples=len(encoded),
        seconds=time.perf_counter() - start,
    )


def _run_prune_gpt_importance(bound: BoundModel, eval_set: EvalSet, objective: LanguageModelObjective,
                              mask: HeadMaskLike, batch_size: int, compute_entropy: bool, normalize_by_layer: bool,
                              normalize_global: bool, start: float) -> ImportanceResult:
    """``compat`` for a language model: ``run_prune_gpt.py``'s procedure, as an :class:`ImportanceResult`."""
    from .lm_importance import lm_head_importance

    result = lm_head_importance(bound, eval_set, objective, mask, compat=True, batch_size=batch_size,
                                compute_entropy=compute_entropy, normalize_by_layer=normalize_by_layer,
                                normalize_global=normalize_global)
    return ImportanceResult(importance=result.importance.astype(np.float32), entropy=result.entropy,
                            raw_importance=result.raw_importance, tokens=int(sum(eval_set.encoded.lengths)),
                            n_examples=len(eval_set), seconds=time.perf_counter() - start)


#: ``report(total)``: a progress reporter for ``total`` examples.
Reports = Callable[[int], ProgressReporter]
#: Importance ``(layers, heads)``, attention entropy ``(layers, heads)`` and a token count, of a batch or summed.
Sums = tuple[torch.Tensor, torch.Tensor, float]


@dataclass
class _ImportancePass:
    """What every batch of one :func:`head_importance` computation shares."""

    bound: BoundModel
    eval_set: EvalSet
    encoded: EncodedExamples
    objective: Objective  # its losses() is the loss differentiated
    gates: torch.Tensor  # (layers, heads), on the model's device: where the gradients are taken
    compute_entropy: bool
    device: torch.device

    def gradient(self, indices: np.ndarray, gate: torch.Tensor, summed: bool) -> Sums:
        """``d loss / d gate`` for one batch, its ``(layers, heads)`` entropy sums and its token count.

        ``gate``: ``(layers, heads)`` or ``(batch, layers, heads)``, requiring grad;
        the loss is the per-example losses' sum (``summed``) or their mean.
        """
        bound = self.bound
        batch = collate(self.encoded, indices, bound.pad_id, self.device, bound.uses_token_types)
        with bound.masked(gate):
            out = bound.model(**batch, output_attentions=self.compute_entropy)
        losses = self.objective.losses(bound.task_logits(out.logits), batch, self.eval_set, indices)
        (grad,) = torch.autograd.grad(losses.sum() if summed else losses.mean(), gate)
        entropy = (attention_entropy_sums(out.attentions, batch["attention_mask"]) if self.compute_entropy
                   else torch.zeros(self.gates.shape, device=grad.device))
        return grad, entropy, float(batch["attention_mask"].sum())

    def sums(self, batches: list[np.ndarray], processes: Processes, report: Reports,
             batch_part: Callable[[np.ndarray], Sums]) -> Sums:
        """Add up ``batch_part(indices)`` = (importance ``(layers, heads)``, entropy ``(layers, heads)``, tokens).

        ``report(total)`` makes the progress reporter once the examples this process runs are known.

        ``processes`` share the batches out; the parts are gathered and added
        in batch order, so the sums are the single-process ones.
        Returns the importance and entropy sums (CPU tensors) and the token count.
        """
        mine = processes.take(batches)
        model = self.bound.model
        attention = attention_implementation(model, "eager") if self.compute_entropy else contextlib.nullcontext()
        parts = []  # per batch: (importance sum, entropy sum, tokens), flattened
        progress = report(sum(len(indices) for _, indices in mine))
        with progress, eval_mode(model), attention, torch.enable_grad():
            for _, indices in mine:
                importance, entropy, tokens = batch_part(indices)
                parts.append(np.concatenate([importance.detach().cpu().numpy().ravel(),
                                             entropy.cpu().numpy().ravel(), [tokens]]))
                progress.update(len(indices))
        shape = tuple(self.gates.shape)
        size = shape[0] * shape[1]
        rows = np.asarray(parts, dtype=np.float64).reshape(len(parts), 2 * size + 1)
        rows = processes.gather_rows([number for number, _ in mine], rows, len(batches))
        total = torch.from_numpy(ordered_sum(rows[:, :size].astype(np.float32))).reshape(shape)
        entropy_sum = torch.from_numpy(ordered_sum(rows[:, size:2 * size].astype(np.float32))).reshape(shape)
        return total, entropy_sum, float(rows[:, -1].sum())


def _per_example_sums(run: _ImportancePass, batch_size: int, processes: Processes, report: Reports) -> Sums:
    """Sum over examples of ``|dL(x)/dg|``: each example of a batch gets its own copy of the gates."""
    def part(indices: np.ndarray) -> Sums:
        gate = run.gates.expand(len(indices), -1, -1).clone().requires_grad_(True)
        grad, entropy, tokens = run.gradient(indices, gate, summed=True)
        return grad.abs().sum(0), entropy, tokens

    return run.sums(length_sorted_batches(run.encoded.lengths, batch_size), processes, report, part)


def _batch_mean_sums(run: _ImportancePass, batch_size: int, processes: Processes, report: Reports) -> Sums:
    """Sum over batches of ``|dL(batch)/dg|`` (batch-mean loss) times the batch's size."""
    def part(indices: np.ndarray) -> Sums:
        gate = run.gates.clone().requires_grad_(True)
        grad, entropy, tokens = run.gradient(indices, gate, summed=False)
        return grad.abs() * len(indices), entropy, tokens

    return run.sums(length_sorted_batches(run.encoded.lengths, batch_size), processes, report, part)


def _compat_sums(run: _ImportancePass, batch_size: int, report: Reports) -> Sums:
    """run_bertology.py's sum: ``|running gradient|`` after every batch, in file order, the gradient never zeroed.

    The running gradient follows the file order, so the batches are not
    shared out: every process runs them all.
    """
    order = np.arange(len(run.encoded))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    running = torch.zeros(run.gates.shape, device=run.device)  # head_mask.grad

    def part(indices: np.ndarray) -> Sums:
        nonlocal running
        gate = run.gates.clone().requires_grad_(True)
        grad, entropy, tokens = run.gradient(indices, gate, summed=False)
        running = running + grad
        return running.abs(), entropy, tokens

    return run.sums(batches, ONE_PROCESS, report, part)


def format_head_table(table: np.ndarray, fmt: str | None = None) -> str:
    """A ``(layers, heads)`` table laid out as run_bertology.py's ``print_2d_tensor``, numbered from 0 like the API."""
    table = np.asarray(table)
    if fmt is None:
        fmt = "d" if np.issubdtype(table.dtype, np.integer) else ".5f"
    lines = ["layer, head (from 0) >\t" + "\t".join(str(h) for h in range(table.shape[1]))]
    lines += [f"layer {row}:\t" + "\t".join(format(x, fmt) for x in table[row]) for row in range(table.shape[0])]
    return "\n".join(lines)


__all__ = [
    "DEFAULT_IMPORTANCE_BATCH_SIZE",
    "ImportanceResult",
    "attention_entropy_sums",
    "format_head_table",
    "head_importance",
    "normalize_importance",
]
