"""Mean ablation, checked against hooks written here by transformers' module names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import (
    HEAD_DIM,
    HEADS,
    LAYERS,
    count_pre_hooks,
    model_inputs,
    out_projection,
    shared_model,
)

from bertology_widgets.analyses.ablation import head_output_means
from bertology_widgets.analyses.evaluation import predict
from bertology_widgets.core.bound import bind
from bertology_widgets.core.gating import mask_heads
from bertology_widgets.testing import tiny_examples, tiny_tokenizer

ARCHS = ("bert", "distilbert", "gpt2")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def examples():
    return tiny_examples(12, seed=3)


def reference_means(model, arch, tokenizer, examples) -> np.ndarray:
    """Mean of each head's slice of the out-projection input, one unpadded example at a time."""
    sums, count = np.zeros((LAYERS, HEADS, HEAD_DIM)), 0
    store = {}
    handles = [out_projection(model, arch, layer).register_forward_pre_hook(
        lambda module, args, layer=layer: store.__setitem__(layer, args[0][0].detach().numpy()))
        for layer in range(LAYERS)]
    try:
        for ex in examples:
            batch = model_inputs(arch, tokenizer(ex.text_a, return_tensors="pt"))
            with torch.no_grad():
                model(**batch)
            for layer in range(LAYERS):
                sums[layer] += store[layer].reshape(-1, HEADS, HEAD_DIM).sum(0)
            count += batch["input_ids"].shape[1]
    finally:
        for handle in handles:
            handle.remove()
    return sums / count


def replaced_by_hand(model, arch, batch, gates, means):
    """Logits with each head's slice set to ``g * x + (1 - g) * mean``, by a hook written here."""
    def make(layer):
        def hook(module, args):
            x = args[0].clone().view(*args[0].shape[:-1], HEADS, HEAD_DIM)
            for head in range(HEADS):
                g = float(gates[layer, head])
                x[..., head, :] = g * x[..., head, :] + (1 - g) * torch.as_tensor(means[layer, head])
            return (x.view(args[0].shape),)
        return hook

    handles = [out_projection(model, arch, layer).register_forward_pre_hook(make(layer)) for layer in range(LAYERS)]
    try:
        with torch.no_grad():
            return model(**batch).logits
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("arch", ARCHS)
def test_head_output_means_match_a_per_example_average(arch, tokenizer, examples):
    model = shared_model(arch)
    means = head_output_means(model, tokenizer, examples, batch_size=5)
    assert means.shape == (LAYERS, HEADS, HEAD_DIM)
    np.testing.assert_allclose(means, reference_means(model, arch, tokenizer, examples), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fraction", [0.0, 0.3])
def test_mean_ablation_matches_replacing_the_slice_by_hand(arch, fraction, tokenizer, examples):
    model = shared_model(arch)
    means = head_output_means(model, tokenizer, examples)
    gates = np.ones((LAYERS, HEADS), dtype=np.float32)
    gates[1] = fraction
    gates[2, 3] = 0.0
    batch = model_inputs(arch, tokenizer("a charming film with a dull ending", return_tensors="pt"))
    bound = bind(model, tokenizer)
    with torch.no_grad(), mask_heads(bound, gates, ablation="mean", means=means):
        got = model(**batch).logits
    expected = replaced_by_hand(model, arch, batch, gates, means)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad(), mask_heads(bound, gates):
        zeroed = model(**batch).logits
    assert not torch.allclose(got, zeroed, atol=1e-4)


def test_mean_ablation_gradient_is_the_output_minus_the_mean(tokenizer, examples):
    """d(output)/d(gate) flows under mean ablation (importance follows the ablation)."""
    model = shared_model("bert")
    means = head_output_means(model, tokenizer, examples)
    batch = model_inputs("bert", tokenizer("a good film", return_tensors="pt"))
    gates = torch.ones(LAYERS, HEADS, requires_grad=True)
    with mask_heads(bind(model, tokenizer), gates, ablation="mean", means=means):
        model(**batch).logits.sum().backward()
    assert gates.grad is not None and gates.grad.abs().sum() > 0


def test_the_bound_default_ablation_reaches_evaluation(tokenizer, examples):
    """``bound.set_ablation`` switches every mask_heads on that bound model, here the layerwise evaluation path;
    another binding of the same model, and the model itself, keep zero ablation."""
    model = shared_model("bert")
    means = head_output_means(model, tokenizer, examples)
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[0] = 0.0
    zero = predict(model, tokenizer, examples, mask=mask, reduce=False)
    bound = bind(model, tokenizer)
    before = set(vars(model))
    bound.set_ablation("mean", means)
    assert bound.ablation[0] == "mean" and set(vars(model)) == before
    mean = predict(bound, examples, mask=mask, reduce=False)
    unmasked = predict(bound, examples, reduce=False)
    assert bind(model, tokenizer).ablation[0] == "zero"
    assert count_pre_hooks(model) == 0
    np.testing.assert_allclose(unmasked, predict(model, tokenizer, examples, reduce=False), atol=1e-6)
    np.testing.assert_allclose(zero, predict(model, tokenizer, examples, mask=mask, reduce=False), atol=1e-6)
    assert np.abs(mean - zero).max() > 1e-3


def test_bad_ablation_arguments_say_what_was_expected(tokenizer, examples):
    model = shared_model("bert")
    bound = bind(model, tokenizer)
    with pytest.raises(ValueError, match="ablation must be one of"):
        with mask_heads(bound, None, ablation="max"):
            pass
    with pytest.raises(ValueError, match="needs means="):
        with mask_heads(bound, None, ablation="mean"):
            pass
    with pytest.raises(ValueError, match=r"means has shape \(3, 4\); this model needs \(3, 4, 8\)"):
        bound.set_ablation("mean", np.zeros((LAYERS, HEADS)))
    assert bound.ablation[0] == "zero"
    with pytest.raises(ValueError, match="no examples"):
        head_output_means(model, tokenizer, [])


def test_importance_follows_the_default_ablation(tokenizer, examples):
    """Per-example and shared gates give the same importance under mean ablation, and it differs from zero's."""
    from bertology_widgets.analyses.importance import head_importance

    model = shared_model("bert")
    means = head_output_means(model, tokenizer, examples)
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[1, :2] = 0.0
    zero = head_importance(model, tokenizer, examples, mask, task="sst2", normalize_by_layer=False,
                           normalize_global=False).raw_importance
    bound = bind(model, tokenizer, "sst2")
    bound.set_ablation("mean", means)
    per_example = head_importance(bound, examples, mask=mask, normalize_by_layer=False,
                                  normalize_global=False).raw_importance
    shared = head_importance(bound, examples, mask=mask, normalize_by_layer=False,
                             normalize_global=False, batch_size=1, per_example=False).raw_importance
    np.testing.assert_allclose(per_example, shared, rtol=1e-4, atol=1e-7)
    assert not np.allclose(per_example, zero, rtol=1e-3)
