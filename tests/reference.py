"""Independent reference helpers for the test suite (tiny-model sizes, where heads live, gating references).

Everything here is written against transformers' own module names, not the
package's architecture table, so the tests check the package against an
independent account of where each head lives. Tests import these from here
(not from ``conftest``); the shared fixtures stay in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import torch

from bertology_widgets.core.gating import mask_heads
from bertology_widgets.testing import TINY_ARCHITECTURES, tiny_bound, tiny_model

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel
    from transformers.pytorch_utils import Conv1D

    from bertology_widgets.core.gating import HeadMaskLike

ARCHS = TINY_ARCHITECTURES
PRUNABLE = tuple(a for a in ARCHS if a != "llama")  # Llama is masking-only
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")

LAYERS, HEADS, HIDDEN = 3, 4, 32
HEAD_DIM = HIDDEN // HEADS
# transformers' default std (0.02) makes one head move the logits by ~1e-5;
# 0.1 makes it ~1e-2, so "masking changes the output" is clearly measurable.
INIT_STD = 0.1

# Tiny BERT, RoBERTa and ELECTRA have token-type embeddings (type_vocab_size 2);
# the others do not (GPT-2 would even add wte(token_type_ids) to its input).
TOKEN_TYPE_ARCHS = ("bert", "roberta", "electra")

SENTENCES = [
    "The cat sat on the warm mat.",
    "A dog barked loudly at the moon all night long in the quiet park.",
    "Hello there.",
]
PAIR = ("The cat sat on the mat.", "It was warm and sunny there.")

# Where each head lives, by transformers' own module names (not the package's table).
_LAYER = {
    "bert": "bert.encoder.layer.{}",
    "roberta": "roberta.encoder.layer.{}",
    "electra": "electra.encoder.layer.{}",
    "distilbert": "distilbert.transformer.layer.{}",
    "gpt2": "transformer.h.{}",
    "llama": "model.layers.{}",
}
_BERT_LIKE = ("attention.self.value", "attention.output.dense")
_VALUE_AND_OUT = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": ("attention.v_lin", "attention.out_lin"),
    "gpt2": ("attn.c_attn", "attn.c_proj"),  # c_attn is the fused [Q | K | V] Conv1D
    "llama": ("self_attn.v_proj", "self_attn.o_proj"),
}


def layer_module(model: nn.Module, arch: str, layer: int) -> nn.Module:
    return model.get_submodule(_LAYER[arch].format(layer))


def value_projection(model: nn.Module, arch: str, layer: int) -> nn.Linear | Conv1D:
    return layer_module(model, arch, layer).get_submodule(_VALUE_AND_OUT[arch][0])


def out_projection(model: nn.Module, arch: str, layer: int) -> nn.Linear | Conv1D:
    return layer_module(model, arch, layer).get_submodule(_VALUE_AND_OUT[arch][1])


@functools.lru_cache(maxsize=None)
def shared_model(arch: str, attn: str = "sdpa", seed: int = 0) -> PreTrainedModel:
    """The session's tiny ``arch`` classifier in eval mode, for tests that only run it (and mask it)."""
    return tiny_model(arch, seed=seed, attn_implementation=attn, num_layers=LAYERS, num_heads=HEADS,
                      hidden=HIDDEN, initializer_range=INIT_STD)


def saved_tiny_model(folder: Path, tokenizer: Any, **tiny_kwargs: Any) -> PreTrainedModel:
    """A tiny BERT recorded as an SST-2 model, saved with ``tokenizer`` into ``folder / "model"`` (what the
    CLI's ``--model`` reads); returns the model. ``tiny_kwargs`` go to :func:`tiny_model`."""
    model = tiny_model("bert", **tiny_kwargs)
    model.config.bertology_task = "sst2"
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return model


def make_model(arch: str, attn: str = "sdpa", seed: int = 0) -> PreTrainedModel:
    """A private deep copy of :func:`shared_model`, for tests that prune or otherwise modify it."""
    return copy.deepcopy(shared_model(arch, attn, seed))


def model_inputs(arch: str, encoded: Mapping[str, Any]) -> dict:
    """Tokenizer output as ``arch`` takes it: token_type_ids only for archs that use them."""
    batch = dict(encoded)
    if arch not in TOKEN_TYPE_ARCHS:
        batch.pop("token_type_ids", None)
    return batch


@torch.no_grad()
def count_pre_hooks(model: torch.nn.Module) -> int:
    """Forward pre-hooks on all of ``model``'s modules: 0 once every ``mask_heads`` block has closed.

    Inside one, one gate hook per layer whose gates are not all 1 (plus any hook of the test's own).
    """
    return sum(len(module._forward_pre_hooks) for module in model.modules())


@contextlib.contextmanager
def layers_run(layers: Iterable[nn.Module]) -> Iterator[list[int]]:
    """Record which of ``layers`` (a model's layer modules) run a forward inside the ``with`` block.

    Yields the list the indices are appended to, in call order.
    """
    ran: list[int] = []
    handles = [layer.register_forward_hook(lambda module, args, out, i=i: ran.append(i))
               for i, layer in enumerate(layers)]
    try:
        yield ran
    finally:
        for handle in handles:
            handle.remove()


def logits_of(model: nn.Module, batch: dict) -> torch.Tensor:
    return model(**batch).logits


@torch.no_grad()
def masked_logits(model: nn.Module, batch: dict, mask: HeadMaskLike) -> torch.Tensor:
    with mask_heads(tiny_bound(model), mask):
        return model(**batch).logits


def reference_for_mask(model: nn.Module, arch: str, mask: HeadMaskLike) -> nn.Module:
    """Reference for gating: a deep copy with each head's value projection scaled by its gate.

    A head's output is ``softmax(QK^T) V_head``, so scaling its V rows (and
    bias) by ``g`` scales its output exactly as a gate ``g`` does. For GPT-2
    the fused ``c_attn`` Conv1D has weight ``(in, 3E)`` = ``[Q | K | V]`` columns.
    """
    ref = copy.deepcopy(model)
    mask = torch.as_tensor(mask, dtype=torch.float32)
    for layer in range(mask.shape[0]):
        proj = value_projection(ref, arch, layer)
        for head in range(mask.shape[1]):
            gate = float(mask[layer, head])
            if gate == 1.0:
                continue
            offset = 2 * HIDDEN if arch == "gpt2" else 0
            cols = slice(offset + head * HEAD_DIM, offset + (head + 1) * HEAD_DIM)
            weight = proj.weight.data[:, cols] if arch == "gpt2" else proj.weight.data[cols]
            weight.mul_(gate)
            if proj.bias is not None:
                proj.bias.data[cols].mul_(gate)
    return ref


def one_head_mask(layer: int, head: int, gate: float = 0.0) -> torch.Tensor:
    mask = torch.ones(LAYERS, HEADS)
    mask[layer, head] = gate
    return mask


def params_removed(num_heads_removed: int) -> int:
    """Parameters that pruning ``n`` heads must remove: Q, K, V weights + biases and out-proj columns."""
    return num_heads_removed * (3 * (HIDDEN * HEAD_DIM + HEAD_DIM) + HEAD_DIM * HIDDEN)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def last_layer_output(model: nn.Module, last_layer: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(output of last_layer, the model's logits)`` for ``batch``: what a classifier head reads, and its answer."""
    outputs = []
    hook = last_layer.register_forward_hook(
        lambda module, args, output: outputs.append(output[0] if isinstance(output, (tuple, list)) else output))
    try:
        with torch.no_grad():
            expected = model(**batch).logits
    finally:
        hook.remove()
    return outputs[0], expected


@contextlib.contextmanager
def faulty_batches(scorer: Any, fault: Callable[[int], object]) -> Iterator[Any]:
    """Inside the block, ``fault(number)`` runs before the live ``scorer`` scores each batch.

    ``fault`` may raise (a failing batch, a ``KeyboardInterrupt``): the way to
    test how the session reports a scoring failure. It runs on the scoring
    thread, like the batch itself.
    """
    score_batch = scorer._batch_logits

    def faulty(number, gates):
        fault(number)
        return score_batch(number, gates)

    scorer._batch_logits = faulty
    try:
        yield scorer
    finally:
        del scorer._batch_logits


def run_cli(argv: list, capsys: Any) -> tuple[int, str, str]:
    """``bertology argv...`` in this process: ``(exit code, stdout, stderr)``."""
    from bertology_widgets.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- tiny language models ------------------------------------------------------------------------------------------
#: Tiny language models by family; ``llama-gqa`` shares each key/value head between two query heads.
LMS = ("openai-gpt", "gpt2", "llama", "llama-gqa", "bert", "roberta", "distilbert")
CAUSAL_LMS = ("openai-gpt", "gpt2", "llama", "llama-gqa")
PRUNABLE_LMS = ("openai-gpt", "gpt2", "bert", "roberta", "distilbert")
#: transformers' own path from the model to a layer's attention output projection.
_OUT_PROJ = {
    "openai-gpt": "transformer.h.{}.attn.c_proj", "gpt2": "transformer.h.{}.attn.c_proj",
    "llama": "model.layers.{}.self_attn.o_proj", "llama-gqa": "model.layers.{}.self_attn.o_proj",
    "bert": "bert.encoder.layer.{}.attention.output.dense",
    "roberta": "roberta.encoder.layer.{}.attention.output.dense",
    "distilbert": "distilbert.transformer.layer.{}.attention.out_lin",
}
_CONV1D = ("openai-gpt", "gpt2")


@functools.lru_cache(maxsize=None)
def shared_lm(arch: str) -> PreTrainedModel:
    """A tiny random language model of ``arch`` in ``LMS`` (shared: tests that change it take a deep copy)."""
    from bertology_widgets.testing import tiny_config, tiny_lm

    sizes = dict(num_layers=LAYERS, num_heads=HEADS, hidden=HIDDEN, initializer_range=INIT_STD)
    if arch != "llama-gqa":
        return tiny_lm(arch, **sizes)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config("llama", **sizes)
    config.num_key_value_heads = HEADS // 2
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


def lm_batch(tokenizer: Any, arch: str, texts: Iterable[str] = SENTENCES) -> dict:
    """A padded batch of ``texts`` as the tiny ``arch`` language model takes it."""
    batch = dict(tokenizer(list(texts), padding=True, return_tensors="pt"))
    if arch != "bert":
        batch.pop("token_type_ids")
    return batch


def zero_head_slices(model: nn.Module, arch: str, mask: HeadMaskLike) -> nn.Module:
    """A copy whose output projections see each head's input slice scaled by its gate (0: zeroed).

    Scaling the slice of the projection's input is scaling the matching weight rows (``Conv1D``, weight
    ``(in, out)``) or columns (``nn.Linear``, weight ``(out, in)``).
    """
    ref = copy.deepcopy(model)
    mask = torch.as_tensor(mask, dtype=torch.float32)
    for layer in range(mask.shape[0]):
        proj = ref.get_submodule(_OUT_PROJ[arch].format(layer))
        for head in range(mask.shape[1]):
            cols = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
            weight = proj.weight.data[cols] if arch in _CONV1D else proj.weight.data[:, cols]
            weight.mul_(float(mask[layer, head]))
    return ref
