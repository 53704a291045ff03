"""Head gating (``mask_heads``): exactness, effect, reference equivalence, gradients, hooks, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import (
    ARCHS,
    ATTN_IMPLEMENTATIONS,
    HEADS,
    LAYERS,
    count_pre_hooks,
    logits_of,
    make_model,
    masked_logits,
    one_head_mask,
    out_projection,
    reference_for_mask,
    shared_model,
)

from bertology_widgets.core.gating import (
    as_head_mask,
    mask_heads,
    validate_layer_head,
)
from bertology_widgets.testing import tiny_bound

REFERENCE_MASKS = [
    *(pytest.param(one_head_mask(layer, head), id=f"layer{layer}-head{head}")
      for layer, head in [(0, 0), (1, 2), (2, 3)]),
    pytest.param(torch.tensor([[0.5, 1.0, 0.0, 0.25], [1.0, 0.75, 1.0, 1.0], [0.1, 1.0, 1.0, 0.9]]), id="fractional"),
]


def assert_no_hooks(model, arch):
    assert count_pre_hooks(model) == 0
    for proj in (out_projection(model, arch, layer) for layer in range(LAYERS)):
        assert len(proj._forward_pre_hooks) == 0


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("ones", [
    pytest.param(lambda: np.ones((LAYERS, HEADS)), id="numpy"),
    pytest.param(lambda: [[1] * HEADS] * LAYERS, id="list-int"),
    pytest.param(lambda: torch.ones(LAYERS, HEADS, dtype=torch.bool), id="bool"),
    pytest.param(lambda: torch.ones(LAYERS, HEADS, requires_grad=True), id="tensor-grad"),
])
def test_all_ones_mask_is_exactly_the_unmodified_model(arch, ones, batch_for):
    model, batch = shared_model(arch), batch_for(arch)
    assert torch.equal(masked_logits(model, batch, ones()), logits_of(model, batch))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("attn", ATTN_IMPLEMENTATIONS)
def test_masking_any_single_head_changes_the_logits(arch, attn, batch_for):
    model, batch = shared_model(arch, attn), batch_for(arch)
    assert model.config._attn_implementation == attn
    base = logits_of(model, batch)
    for layer in range(LAYERS):
        for head in range(HEADS):
            diff = (masked_logits(model, batch, one_head_mask(layer, head)) - base).abs().max()
            assert diff > 1e-4, f"masking layer {layer} head {head} changed the logits by only {diff:g}"
    assert torch.equal(logits_of(model, batch), base), "the mask outlived its with block"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("attn", ATTN_IMPLEMENTATIONS)
@pytest.mark.parametrize("mask", REFERENCE_MASKS)
def test_masked_output_equals_scaled_value_projection(arch, attn, mask, batch_for):
    """Gate g on a head == that head's V rows and bias times g (0: zeroed), in an independent copy."""
    model, batch = shared_model(arch, attn), batch_for(arch)
    expected = logits_of(reference_for_mask(model, arch, mask), batch)
    torch.testing.assert_close(masked_logits(model, batch, mask), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_masking_the_base_model_matches_masking_the_classifier(arch, batch_for):
    model, batch = shared_model(arch), batch_for(arch)
    base = getattr(model, model.base_model_prefix)
    mask = one_head_mask(1, 1)
    with torch.no_grad():
        with mask_heads(tiny_bound(base), mask):
            from_base = base(**batch).last_hidden_state
        with mask_heads(tiny_bound(model), mask):
            from_model = base(**batch).last_hidden_state
        unmasked = base(**batch).last_hidden_state
    assert (from_base - unmasked).abs().max() > 1e-4
    assert torch.equal(from_base, from_model)


@pytest.mark.parametrize("arch", ARCHS)
def test_gate_gradient_is_nonzero_and_matches_finite_differences(arch, batch_for):
    model, batch = make_model(arch).double(), batch_for(arch)
    mask = torch.ones(LAYERS, HEADS, dtype=torch.float64, requires_grad=True)
    with mask_heads(tiny_bound(model), mask) as gates:
        assert gates is mask  # same storage: gradients reach the caller's tensor
        model(**batch).logits.sum().backward()
    assert mask.grad is not None and mask.grad.shape == (LAYERS, HEADS)
    assert torch.isfinite(mask.grad).all()
    assert (mask.grad != 0).all(), mask.grad

    eps, (layer, head) = 1e-3, (1, 2)
    with torch.no_grad():
        up = masked_logits(model, batch, one_head_mask(layer, head, 1.0).double()).sum()
        down = masked_logits(model, batch, one_head_mask(layer, head, 1.0 - 2 * eps).double()).sum()
    numeric = (up - down) / (2 * eps)
    torch.testing.assert_close(mask.grad[layer, head], numeric, rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_hooks_live_only_inside_the_with_block(arch, batch_for):
    model, batch = make_model(arch), batch_for(arch)
    mask = torch.ones(LAYERS, HEADS)
    mask[0, 1] = mask[2, 3] = 0
    with mask_heads(tiny_bound(model), mask):
        assert count_pre_hooks(model) == 2  # one per layer whose gates are not all 1
        model(**batch)
    assert_no_hooks(model, arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_hooks_are_removed_when_the_forward_raises(arch, batch_for):
    model = make_model(arch)
    bad_ids = torch.full((1, 4), 10**7)  # far outside the vocabulary
    with pytest.raises(IndexError):
        with mask_heads(tiny_bound(model), torch.zeros(LAYERS, HEADS)):
            assert count_pre_hooks(model) == LAYERS
            model(input_ids=bad_ids)
    assert_no_hooks(model, arch)
    batch = batch_for(arch)
    assert torch.equal(logits_of(model, batch), logits_of(shared_model(arch), batch))


def test_user_hooks_on_the_projection_survive(batch_for):
    model = make_model("bert")
    calls = []
    proj = out_projection(model, "bert", 0)
    handle = proj.register_forward_pre_hook(lambda module, args: calls.append(1))
    with mask_heads(tiny_bound(model), torch.zeros(LAYERS, HEADS)):
        model(**batch_for("bert"))
    assert list(proj._forward_pre_hooks.values()) and count_pre_hooks(model) == 1
    handle.remove()
    assert calls == [1]


def test_kept_heads_and_shape_of_an_unpruned_model():
    model = shared_model("bert")
    assert tiny_bound(model).shape == (LAYERS, HEADS)
    assert tiny_bound(model).kept_heads() == [list(range(HEADS))] * LAYERS


# -- validation -----------------------------------------------------------------------------

BAD_MASKS = [
    pytest.param(np.ones((LAYERS, HEADS + 1)), "expected (3, 4)", id="wrong-shape"),
    pytest.param(np.ones(LAYERS * HEADS), "expected (3, 4)", id="flat"),
    pytest.param(torch.ones(HEADS, LAYERS), "expected (3, 4)", id="transposed-tensor"),
    pytest.param([[1, 1, 1, 1], [1, 1], [1, 1, 1, 1]], "expected (3, 4)", id="ragged"),
    pytest.param(np.full((LAYERS, HEADS), 1.5), "[0, 1]", id="above-one"),
    pytest.param(torch.full((LAYERS, HEADS), -0.5), "[0, 1]", id="negative"),
    pytest.param(np.full((LAYERS, HEADS), np.nan), "non-finite", id="nan"),
    pytest.param(torch.full((LAYERS, HEADS), float("inf")), "non-finite", id="inf"),
    pytest.param([["a"] * HEADS] * LAYERS, "expected numbers", id="strings"),
    pytest.param(np.array([[None] * HEADS] * LAYERS), "expected numbers", id="objects"),
    pytest.param(np.ones((LAYERS, HEADS), dtype=complex), "expected real numbers", id="complex"),
    pytest.param(torch.ones(LAYERS, HEADS, dtype=torch.complex64), "expected real numbers", id="complex-tensor"),
]


@pytest.mark.parametrize("mask,message", BAD_MASKS)
def test_bad_masks_are_rejected_with_what_was_expected(mask, message):
    with pytest.raises(ValueError) as info:
        as_head_mask(mask, LAYERS, HEADS)
    assert message in str(info.value)


@pytest.mark.parametrize("mask,message", BAD_MASKS[:1] + BAD_MASKS[4:5] + BAD_MASKS[6:7])
def test_mask_heads_rejects_bad_masks_before_hooking(mask, message):
    model = shared_model("gpt2")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        with mask_heads(tiny_bound(model), mask):
            pytest.fail("the with block must not run")
    assert_no_hooks(model, "gpt2")


def test_non_finite_message_names_the_position():
    mask = np.ones((LAYERS, HEADS))
    mask[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"layer 2, head 1"):
        as_head_mask(mask, LAYERS, HEADS)


def test_valid_masks_are_converted_to_float():
    out = as_head_mask([[1, 0, 1, 0]] * LAYERS, LAYERS, HEADS)
    assert out.dtype == torch.float32 and out.shape == (LAYERS, HEADS)
    assert out.tolist() == [[1.0, 0.0, 1.0, 0.0]] * LAYERS
    assert torch.equal(as_head_mask(None, LAYERS, HEADS), torch.ones(LAYERS, HEADS))


@pytest.mark.parametrize("layer,head,message", [
    (LAYERS, None, "layers 0..2"),
    (-1, None, "layers 0..2"),
    (0, HEADS, "heads 0..3"),
    (1, -1, "heads 0..3"),
    (1.5, None, "integer"),
    ("0", 1, "integer"),
])
def test_validate_layer_head_rejects_out_of_range(layer, head, message):
    for shape in ((LAYERS, HEADS), tiny_bound(shared_model("distilbert")).shape):
        with pytest.raises(ValueError) as info:
            validate_layer_head(shape, layer, head)
        assert message in str(info.value)


def test_validate_layer_head_accepts_valid_indices():
    validate_layer_head((LAYERS, HEADS), 0, 0)
    validate_layer_head((LAYERS, HEADS), LAYERS - 1, HEADS - 1)
    validate_layer_head(tiny_bound(shared_model("llama")).shape, np.int64(2))


def test_one_mask_heads_block_serves_several_backward_passes(tokenizer):
    """As run_bertology.py does: one gate tensor, a backward after every batch, grads accumulating."""
    import torch

    from bertology_widgets.core.gating import mask_heads
    from bertology_widgets.testing import tiny_model

    model = tiny_model("bert", initializer_range=0.1)
    gates = torch.ones(3, 4, requires_grad=True)
    grads = []
    with mask_heads(tiny_bound(model), gates):
        for text in ("good film", "a dull movie"):
            model(**tokenizer(text, return_tensors="pt"), labels=torch.tensor([1])).loss.backward()
            grads.append(gates.grad.clone())
    assert (grads[0] != 0).any() and not torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("arch", ARCHS)
def test_a_batch_of_masks_gates_each_example_as_its_own_mask_would(arch, batch_for):
    model, batch = shared_model(arch), batch_for(arch)
    masks = torch.stack([one_head_mask(0, 0), one_head_mask(1, 2),
                         torch.tensor([[0.5, 1.0, 0.0, 0.25]] * LAYERS)])  # (batch, layers, heads)
    together = masked_logits(model, batch, masks)
    for b, mask in enumerate(masks):
        torch.testing.assert_close(together[b], masked_logits(model, batch, mask)[b], atol=1e-5, rtol=1e-4)
    assert_no_hooks(model, arch)


def test_a_batch_of_masks_is_validated_per_example():
    masks = torch.ones(2, LAYERS, HEADS)
    masks[1, 2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"example 1, layer 2, head 1"):
        as_head_mask(masks, LAYERS, HEADS, batched=True)
    with pytest.raises(ValueError, match=r"expected \(3, 4\)$"):
        as_head_mask(torch.ones(2, LAYERS, HEADS), LAYERS, HEADS)  # one mask expected
