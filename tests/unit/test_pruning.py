"""Head pruning: a pruned model computes what the masked model computes, with fewer parameters."""

from __future__ import annotations

import pytest
import torch
from reference import (
    ATTN_IMPLEMENTATIONS,
    HEADS,
    LAYERS,
    PRUNABLE,
    logits_of,
    make_model,
    masked_logits,
    num_params,
    params_removed,
    shared_model,
)

from bertology_widgets.core.pruning import expected_params_after, prune_heads
from bertology_widgets.testing import tiny_bound


def random_mask(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(LAYERS, HEADS, generator=generator) > 0.5).float()


def assert_pruning_matches_masking(arch, batch, masks, attn="sdpa"):
    """Prune ``masks`` one after the other; compare with masking a pristine model by their product."""
    model, reference = make_model(arch, attn), shared_model(arch, attn)
    original_params = num_params(model)
    combined = torch.ones(LAYERS, HEADS)
    for mask in masks:
        report = prune_heads(tiny_bound(model), mask)
        combined = combined * torch.as_tensor(mask, dtype=torch.float32)
        assert report.params_after == num_params(model)
        assert report.heads_after == int((combined != 0).sum())
    expected = masked_logits(reference, batch, combined)
    torch.testing.assert_close(logits_of(model, batch), expected, atol=1e-4, rtol=0)
    assert num_params(model) == original_params - params_removed(int((combined == 0).sum()))
    expected_kept = [[h for h in range(HEADS) if combined[layer, h] != 0] for layer in range(LAYERS)]
    assert tiny_bound(model).kept_heads() == expected_kept
    return model, combined


@pytest.mark.parametrize("arch", PRUNABLE)
@pytest.mark.parametrize("attn", ATTN_IMPLEMENTATIONS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pruning_random_masks_matches_masking(arch, attn, seed, batch_for):
    mask = random_mask(seed)
    assert 0 < mask.sum() < mask.numel(), "the seed should give a mixed mask"
    assert_pruning_matches_masking(arch, batch_for(arch), [mask], attn)


@pytest.mark.parametrize("arch", PRUNABLE)
@pytest.mark.parametrize("layer", range(LAYERS))
def test_pruning_a_whole_layer_matches_masking(arch, layer, batch_for):
    mask = torch.ones(LAYERS, HEADS)
    mask[layer] = 0
    mask[(layer + 1) % LAYERS, 2] = 0
    assert_pruning_matches_masking(arch, batch_for(arch), [mask])


@pytest.mark.parametrize("arch", PRUNABLE)
def test_pruning_every_head_matches_masking(arch, batch_for):
    model, _ = assert_pruning_matches_masking(arch, batch_for(arch), [torch.zeros(LAYERS, HEADS)])
    assert tiny_bound(model).kept_heads() == [[]] * LAYERS


@pytest.mark.parametrize("arch", PRUNABLE)
def test_fractional_gates_are_folded_into_the_pruned_model(arch, batch_for):
    mask = torch.tensor([[0.5, 0.0, 1.0, 0.25], [0.0, 0.0, 0.0, 0.0], [1.0, 0.75, 0.0, 0.1]])
    assert_pruning_matches_masking(arch, batch_for(arch), [mask])


@pytest.mark.parametrize("arch", PRUNABLE)
@pytest.mark.parametrize("first,second", [(0, 1), (2, 3)])
def test_pruning_twice_matches_masking_with_the_combined_mask(arch, first, second, batch_for):
    mask_a, mask_b = random_mask(first), random_mask(second)
    mask_a[1] = 0  # a whole layer gone in the first round; the second mask's layer 1 is then moot
    assert_pruning_matches_masking(arch, batch_for(arch), [mask_a, mask_b])


@pytest.mark.parametrize("arch", PRUNABLE)
def test_masking_a_pruned_model_uses_original_head_indices(arch, batch_for):
    batch = batch_for(arch)
    first, second = random_mask(4), random_mask(5)
    model, reference = make_model(arch), shared_model(arch)
    prune_heads(tiny_bound(model), first)
    torch.testing.assert_close(masked_logits(model, batch, second),
                               masked_logits(reference, batch, first * second), atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", PRUNABLE)
def test_expected_params_after_predicts_the_pruned_size(arch):
    model = make_model(arch)
    first, second = random_mask(0), random_mask(1)
    predicted = expected_params_after(tiny_bound(model), first)
    assert predicted == num_params(model) - params_removed(int((first == 0).sum()))
    assert prune_heads(tiny_bound(model), first).params_after == predicted
    predicted = expected_params_after(tiny_bound(model), second)  # heads already gone are not counted twice
    assert prune_heads(tiny_bound(model), second).params_after == predicted


def test_all_ones_mask_prunes_nothing(batch_for):
    model, batch = make_model("gpt2"), batch_for("gpt2")
    before = logits_of(model, batch)
    report = prune_heads(tiny_bound(model), torch.ones(LAYERS, HEADS))
    assert report.params_removed == 0 and report.heads_before == report.heads_after == LAYERS * HEADS
    assert torch.equal(logits_of(model, batch), before)


def test_pruned_model_still_trains(batch_for):
    model, batch = make_model("bert"), batch_for("bert")
    mask = torch.ones(LAYERS, HEADS)
    mask[0] = 0
    mask[1, 1] = 0
    prune_heads(tiny_bound(model), mask)
    model(**batch).logits.sum().backward()
    query = model.bert.encoder.layer[1].attention.self.query
    assert query.weight.grad is not None and query.weight.grad.abs().sum() > 0


def test_llama_pruning_raises_a_clear_error():
    model = make_model("llama")
    before = num_params(model)
    mask = torch.ones(LAYERS, HEADS)
    mask[0, 0] = 0
    with pytest.raises(ValueError) as info:
        prune_heads(tiny_bound(model), mask)
    message = str(info.value)
    assert "Llama" in message and "mask_heads" in message
    assert num_params(model) == before


@pytest.mark.parametrize("bad", [torch.ones(LAYERS, HEADS + 1), torch.full((LAYERS, HEADS), 2.0)])
def test_invalid_mask_leaves_the_model_untouched(bad, batch_for):
    model, batch = make_model("distilbert"), batch_for("distilbert")
    before = logits_of(model, batch)
    with pytest.raises(ValueError):
        prune_heads(tiny_bound(model), bad)
    assert torch.equal(logits_of(model, batch), before)
    assert tiny_bound(model).kept_heads() == [list(range(HEADS))] * LAYERS
