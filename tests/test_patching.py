"""Activation patching against a brute-force loop of single patched runs written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.patching import logit_difference, normalised_logit_difference, patch_heads, run_patching
from bertology_widgets.testing import tiny_tokenizer

from bertology_widgets.testing_reference import HEAD_DIM, HEADS, LAYERS, model_inputs, out_projection, shared_model

CLEAN, CORRUPTED = "a charming and affecting journey", "a dull and boring journey"


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def brute_force(model, arch, tokenizer, clean, corrupted, per_position: bool):
    """One forward per (layer, head[, position]), replacing the slice by hand."""
    clean_in = model_inputs(arch, tokenizer(clean, return_tensors="pt"))
    corrupt_in = model_inputs(arch, tokenizer(corrupted, return_tensors="pt"))
    store = {}
    handles = [out_projection(model, arch, layer).register_forward_pre_hook(
        lambda module, args, layer=layer: store.__setitem__(layer, args[0].clone())) for layer in range(LAYERS)]
    with torch.no_grad():
        clean_logits = model(**clean_in).logits[0].numpy()
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        corrupted_logits = model(**corrupt_in).logits[0].numpy()
    target = int(np.argmax(clean_logits))

    def ld(z):
        others = [z[j] for j in range(len(z)) if j != target]
        return z[target] - max(others)

    positions = range(corrupt_in["input_ids"].shape[1]) if per_position else [None]
    grid = np.zeros((LAYERS, HEADS, len(positions)))
    for layer in range(LAYERS):
        for head in range(HEADS):
            for i, p in enumerate(positions):
                def hook(module, args, layer=layer, head=head, p=p):
                    x = args[0].clone()
                    cols = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
                    rows = slice(None) if p is None else slice(p, p + 1)
                    x[:, rows, cols] = store[layer][:, rows, cols]
                    return (x,)
                handle = out_projection(model, arch, layer).register_forward_pre_hook(hook)
                with torch.no_grad():
                    z = model(**corrupt_in).logits[0].numpy()
                handle.remove()
                grid[layer, head, i] = (ld(z) - ld(corrupted_logits)) / (ld(clean_logits) - ld(corrupted_logits))
    return grid if per_position else grid[..., 0]


@pytest.mark.parametrize("arch", ["bert", "gpt2", "distilbert"])
def test_patching_every_head_matches_the_brute_force_loop(arch, tokenizer):
    model = shared_model(arch)
    got = patch_heads(model, tokenizer, CLEAN, CORRUPTED, batch_size=5)
    assert got.shape == (LAYERS, HEADS)
    np.testing.assert_allclose(got, brute_force(model, arch, tokenizer, CLEAN, CORRUPTED, False), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_patching_by_position_matches_the_brute_force_loop(arch, tokenizer):
    model = shared_model(arch)
    got = patch_heads(model, tokenizer, CLEAN, CORRUPTED, per_position=True)
    n = len(tokenizer(CORRUPTED)["input_ids"])
    assert got.shape == (LAYERS, HEADS, n)
    np.testing.assert_allclose(got, brute_force(model, arch, tokenizer, CLEAN, CORRUPTED, True), rtol=1e-3, atol=1e-4)


def test_the_result_carries_both_predictions_and_tokens(tokenizer):
    result = run_patching(shared_model("bert"), tokenizer, CLEAN, CORRUPTED)
    assert result.clean_tokens[0] == "[CLS]" and "dull" in result.corrupted_tokens
    assert result.clean_prediction == int(np.argmax(result.clean_logits))
    payload = result.to_dict()
    assert np.array(payload["grid"], dtype=float).shape == (LAYERS, HEADS)


def test_metric_conventions():
    clean, corrupted = np.array([2.0, 0.0, 1.0]), np.array([0.0, 1.0, 3.0])
    assert logit_difference(clean, 0) == pytest.approx(1.0)  # minus the largest other logit
    assert logit_difference(corrupted, 0) == pytest.approx(-3.0)
    values = normalised_logit_difference(np.stack([clean, corrupted]), clean, corrupted)
    np.testing.assert_allclose(values, [1.0, 0.0])
    with pytest.raises(ValueError, match="same logit difference"):
        normalised_logit_difference(clean[None], clean, clean)


def test_per_position_needs_equal_lengths(tokenizer):
    with pytest.raises(ValueError, match="same token length"):
        patch_heads(shared_model("bert"), tokenizer, CLEAN, "a dull journey", per_position=True)
    grid = patch_heads(shared_model("bert"), tokenizer, CLEAN, "a dull journey")  # prefix-aligned all-position mode
    assert grid.shape == (LAYERS, HEADS) and np.isfinite(grid).all()
