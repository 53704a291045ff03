"""Norm-based attention: the per-head, per-token vectors add up to the attention output exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.attention_norms import attention_norms
from bertology_widgets.core.architectures import adapter_for
from bertology_widgets.core.bound import bind
from bertology_widgets.testing import tiny_bound, tiny_model

TEXT = "the film was a charming mess"


def recorded_output_projection(model, run):
    """The output projection's output per layer (before dropout, residual and layer norm)."""
    adapter = adapter_for(model)
    seen = {}
    handles = [adapter.out_projection(layer).register_forward_hook(
        lambda mod, args, out, i=i: seen.__setitem__(i, out[0].detach().float()))
        for i, layer in enumerate(adapter.layer_modules(model))]
    try:
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    return result, seen


@pytest.mark.parametrize("arch", ["bert", "gpt2", "distilbert"])
@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_decomposition_is_exact_and_a_masked_head_contributes_nothing(arch, ablation, tokenizer):
    model = tiny_model(arch, initializer_range=0.1)
    bound = bind(model, tokenizer)
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1, 2] = 0
    mask[2, 0] = 0.5
    means = torch.randn(3, 4, bound.head_dim) if ablation == "mean" else None
    norms, outputs = recorded_output_projection(model, lambda: attention_norms(
        bound, TEXT, mask, ablation=ablation, means=means, return_vectors=True))
    for layer in range(3):
        total = norms.vectors[layer].sum(dim=(0, 2)) + norms.biases[layer] + norms.constants[layer]
        torch.testing.assert_close(total, outputs[layer], atol=1e-5, rtol=1e-5)
    assert norms.vectors[1][2].abs().max() == 0 and norms.head_norms[1, 2].max() == 0
    np.testing.assert_allclose(norms.head_norms[2, 0], 0.5 * norms.weights[2, 0] *
                               norms.vectors[2][0].norm(dim=-1).numpy() / np.maximum(
                                   0.5 * norms.weights[2, 0], 1e-30), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(norms.layer_norms[0], norms.vectors[0].sum(0).norm(dim=-1).numpy(), atol=1e-5)
    if ablation == "zero":
        assert not norms.ablation_norms.any()
    else:  # the masked head's constant is its own entry, the kept ones add none
        assert norms.ablation_norms[1, 2] > 0 and norms.ablation_norms[2, 0] > 0
        assert norms.ablation_norms[0].max() == 0


def test_head_norms_are_weight_times_vector_norm(tokenizer):
    bound = bind(tiny_model("bert", initializer_range=0.1), tokenizer)
    norms = attention_norms(bound, TEXT, return_vectors=True)
    np.testing.assert_allclose(norms.head_norms, np.stack([v.norm(dim=-1).numpy() for v in norms.vectors]),
                               rtol=1e-5, atol=1e-6)
    assert norms.weights.shape == norms.head_norms.shape == (3, 4, len(norms.tokens), len(norms.tokens))


def test_pruned_model_still_decomposes(tokenizer):
    from bertology_widgets.core.pruning import prune_heads

    model = tiny_model("bert", initializer_range=0.1)
    keep = np.ones((3, 4), dtype=np.float32)
    keep[0, [1, 3]] = 0
    prune_heads(tiny_bound(model), keep)
    bound = bind(model, tokenizer)
    norms, outputs = recorded_output_projection(model, lambda: attention_norms(bound, TEXT, return_vectors=True))
    total = norms.vectors[0].sum(dim=(0, 2)) + norms.biases[0]
    torch.testing.assert_close(total, outputs[0], atol=1e-5, rtol=1e-5)
    assert norms.head_norms[0, [1, 3]].max() == 0


def test_unsupported_family_is_refused_naming_the_supported_ones(tokenizer):
    bound = bind(tiny_model("llama"), tokenizer)
    with pytest.raises(ValueError, match=r"not available for Llama.*BERT.*GPT-2"):
        attention_norms(bound, TEXT)
