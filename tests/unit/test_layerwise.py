"""The layer-by-layer runner computes what the model's own forward computes."""

from __future__ import annotations

import pytest
import torch

from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.layerwise import LayerwiseRunner
from bertology_widgets.testing import TINY_ARCHITECTURES, tiny_bound, tiny_model

TEXTS = ["good film", "a long and rather boring movie , with a fine ending", "fun"]


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_runner_matches_the_model_forward_under_masks(arch, tokenizer):
    model = tiny_model(arch, initializer_range=0.5)
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    if arch in ("roberta", "distilbert", "gpt2", "llama"):
        batch.pop("token_type_ids")
    runner = LayerwiseRunner(tiny_bound(model))
    cache = runner.prepare(batch)
    for mask in (torch.ones(3, 4), torch.tensor([[1, 0, 1, 1], [0.5, 1, 1, 0], [1, 1, 0, 1.0]])):
        with torch.no_grad(), mask_heads(tiny_bound(model), mask):
            expected = model(**batch).logits
        torch.testing.assert_close(runner.run(cache, mask), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(runner.logits(batch, mask), expected, rtol=1e-5, atol=1e-5)


def test_bert_family_keeps_only_the_pooled_row_of_the_last_layer(tokenizer):
    model = tiny_model("bert")
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    runner = LayerwiseRunner(tiny_bound(model))
    cache = runner.prepare(batch)
    runner.run(cache, torch.ones(3, 4))
    width = batch["input_ids"].shape[1]
    assert [h.shape[1] for h in cache.hidden] == [width, width, width, 1]
    assert not any(len(m._forward_pre_hooks) for m in model.modules())  # the slicing hook is gone


def test_runner_refuses_a_model_without_a_classifier():
    from transformers import BertModel

    model = BertModel(tiny_model("bert").config)
    with pytest.raises(ValueError, match="sequence-classification head"):
        LayerwiseRunner(tiny_bound(model))


@pytest.mark.parametrize("keep_every", [2, 3])
def test_a_sparser_cache_keeps_fewer_states_and_gives_the_same_logits(keep_every, tokenizer):
    model = tiny_model("bert", num_layers=4, initializer_range=0.5)
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    full, sparse = LayerwiseRunner(tiny_bound(model)), LayerwiseRunner(tiny_bound(model), keep_every=keep_every)
    dense_cache, sparse_cache = full.prepare(batch), sparse.prepare(batch)
    masks = [torch.ones(4, 4)] + [torch.ones(4, 4) for _ in range(4)]
    for layer in range(4):  # one change per layer, from the top down and each on top of the last
        masks[layer + 1] = masks[layer].clone()
        masks[layer + 1][3 - layer, layer] = 0.0
    for mask in masks:
        torch.testing.assert_close(sparse.run(sparse_cache, mask), full.run(dense_cache, mask), rtol=0, atol=0)
    kept = [i for i, h in enumerate(sparse_cache.hidden) if h is not None]
    assert kept == sorted({4} | set(range(keep_every, 5, keep_every)))  # the embeddings are computed again
    assert sparse_cache.nbytes() < dense_cache.nbytes()
    with pytest.raises(ValueError, match="keep_every"):
        LayerwiseRunner(tiny_bound(model), keep_every=0)


def test_a_change_in_layer_0_embeds_again_when_the_embeddings_are_not_kept(tokenizer):
    model = tiny_model("bert", num_layers=3, initializer_range=0.5)
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    full, sparse = LayerwiseRunner(tiny_bound(model)), LayerwiseRunner(tiny_bound(model), keep_every=3)
    dense_cache, sparse_cache = full.prepare(batch), sparse.prepare(batch)
    mask = torch.ones(3, 4)
    for layer, head in [(2, 1), (0, 0), (1, 3), (0, 0)]:
        mask = mask.clone()
        mask[layer, head] = 1.0 - mask[layer, head]
        torch.testing.assert_close(sparse.run(sparse_cache, mask), full.run(dense_cache, mask), rtol=0, atol=0)
        assert sparse_cache.hidden[0] is None and sparse_cache.hidden[1] is None
