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
import torch.nn.functional as F
from torch import nn

from ..core.batching import EncodedExamples, collate, encode_examples, length_sorted_batches, pad_token_id, uses_token_types
from ..core.capturing import attention_implementation
from ..runtime.distributed import ONE_PROCESS, Processes, ordered_sum
from .evaluation import DEFAULT_MAX_LENGTH, labelled_task
from ..core.gating import HeadMaskLike, as_head_mask, kept_heads, mask_heads, model_shape
from ..models.loading import eval_mode
from ..runtime.progress import Progress, ProgressReporter, progress_reporter

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


def example_losses(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """``(batch,)`` losses: cross-entropy, or squared error for regression (STS-B).

    Their mean is the loss transformers' classifiers return for these labels.
    """
    if regression:
        return (logits.float().squeeze(-1) - labels.float()) ** 2
    return F.cross_entropy(logits.float(), labels.long(), reduction="none")


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


def _check_unpruned(model: nn.Module) -> None:
    num_layers, num_heads = model_shape(model)
    if any(len(heads) != num_heads for heads in kept_heads(model)):
        raise ValueError("head importance needs an unpruned model; mask heads (mask=...) instead of pruning them")


def _masked_entropy(entropy_sum: torch.Tensor, gates: torch.Tensor, tokens: float) -> torch.Tensor:
    """run_bertology.py's entropy under ``head_mask``: that of ``g * p``, i.e. ``g H(p) - g log g`` per token."""
    return gates * entropy_sum - torch.xlogy(gates, gates) * tokens


def head_importance(model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example],
                    mask: HeadMaskLike = None, *, per_example: bool = True, compat: bool = False,
                    batch_size: int | None = None, normalize_by_layer: bool = True, normalize_global: bool = True,
                    compute_entropy: bool = True, max_length: int = DEFAULT_MAX_LENGTH, task: str | None = None,
                    progress: Progress = False, on_progress: Callable[[int, int], None] | None = None,
                    processes: Processes = ONE_PROCESS) -> ImportanceResult:
    """Importance ``E_x |dL/dg_h|`` and attention entropy of every head.

    Parameters
    ----------
    model, tokenizer
        An unpruned sequence classifier (BERT family, GPT-2, ...) and its tokenizer.
    examples : sequence of :class:`~bertology_widgets.glue.Example`
        Labelled examples; the loss is the model's (cross-entropy, or squared
        error for STS-B).
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
        to 128 tokens is left out; it changes nothing but rounding.)
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
    glue_task, labels = labelled_task(model, examples, task)
    _check_unpruned(model)
    if batch_size is None:
        batch_size = 1 if compat else DEFAULT_IMPORTANCE_BATCH_SIZE
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    num_layers, num_heads = model_shape(model)
    device = next(model.parameters()).device
    encoded = encode_examples(tokenizer, examples, max_length)
    run = _ImportancePass(
        model=model, encoded=encoded, device=device, compute_entropy=compute_entropy,
        regression=glue_task.is_regression, pad=pad_token_id(model, tokenizer), with_types=uses_token_types(model),
        gates=as_head_mask(mask, num_layers, num_heads).detach().float().to(device),
        labels=torch.as_tensor(labels, dtype=torch.float32 if glue_task.is_regression else torch.long),
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


#: ``report(total)``: a progress reporter for ``total`` examples.
Reports = Callable[[int], ProgressReporter]
#: Importance ``(layers, heads)``, attention entropy ``(layers, heads)`` and a token count, of a batch or summed.
Sums = tuple[torch.Tensor, torch.Tensor, float]


@dataclass
class _ImportancePass:
    """What every batch of one :func:`head_importance` computation shares."""

    model: nn.Module
    encoded: EncodedExamples
    labels: torch.Tensor  # (n,): class ids, or scores for regression
    gates: torch.Tensor  # (layers, heads), on the model's device: where the gradients are taken
    regression: bool
    compute_entropy: bool
    pad: int
    with_types: bool
    device: torch.device

    def gradient(self, indices: np.ndarray, gate: torch.Tensor, summed: bool) -> Sums:
        """``d loss / d gate`` for one batch, its ``(layers, heads)`` entropy sums and its token count.

        ``gate``: ``(layers, heads)`` or ``(batch, layers, heads)``, requiring grad;
        the loss is the per-example losses' sum (``summed``) or their mean.
        """
        batch = collate(self.encoded, indices, self.pad, self.device, self.with_types)
        with mask_heads(self.model, gate):
            out = self.model(**batch, output_attentions=self.compute_entropy)
        losses = example_losses(out.logits, self.labels[indices].to(self.device), self.regression)
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
        attention = attention_implementation(self.model, "eager") if self.compute_entropy else contextlib.nullcontext()
        parts = []  # per batch: (importance sum, entropy sum, tokens), flattened
        progress = report(sum(len(indices) for _, indices in mine))
        with progress, eval_mode(self.model), attention, torch.enable_grad():
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
    "example_losses",
    "format_head_table",
    "head_importance",
    "normalize_importance",
]
