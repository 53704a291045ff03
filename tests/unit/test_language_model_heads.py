"""GPT (``openai-gpt``) and the language-model head classes: gating, capture, importance, pruning.

Every reference here is written against transformers' own module names: a
head is removed by zeroing (or scaling) its slice of the input of the
attention output projection, which is the same as scaling the projection's
weight rows (GPT's and GPT-2's ``Conv1D``, weight ``(in, out)``) or columns
(``nn.Linear``, weight ``(out, in)``) for that head.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from reference import (
    HEAD_DIM,
    HEADS,
    HIDDEN,
    INIT_STD,
    LAYERS,
    LMS,
    PRUNABLE_LMS,
    SENTENCES,
    count_pre_hooks,
    last_layer_output,
)
from reference import lm_batch as batch_of
from reference import shared_lm as lm
from reference import zero_head_slices as slice_zeroing_reference

from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.core.architectures import adapter_for
from bertology_widgets.core.capturing import capture
from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.layerwise import LayerwiseRunner
from bertology_widgets.core.pruning import expected_params_after, prune_heads
from bertology_widgets.testing import tiny_bound, tiny_examples, tiny_model

MASK = torch.tensor([[0.0, 1.0, 0.5, 1.0], [1.0, 0.0, 1.0, 0.25], [1.0, 1.0, 1.0, 0.0]])
KINDS = {"openai-gpt": "OpenAIGPTLMHeadModel", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
         "llama-gqa": "LlamaForCausalLM", "bert": "BertForMaskedLM", "roberta": "RobertaForMaskedLM",
         "distilbert": "DistilBertForMaskedLM"}


@pytest.mark.parametrize("arch", LMS)
def test_language_models_resolve_with_their_query_heads(arch):
    model = lm(arch)
    adapter = adapter_for(model)
    assert type(model).__name__ == KINDS[arch]
    assert tiny_bound(model).shape == (LAYERS, HEADS) and adapter.head_dim(model) == HEAD_DIM
    assert not adapter.is_task_model(model)  # an LM head is not a classification head
    assert adapter.causal == (arch in ("openai-gpt", "gpt2", "llama", "llama-gqa"))


@pytest.mark.parametrize("arch", LMS)
def test_gating_equals_zeroing_the_heads_slice_at_the_output_projection(arch, tokenizer):
    model, batch = lm(arch), batch_of(tokenizer, arch)
    with torch.no_grad():
        plain = model(**batch).logits
        with mask_heads(tiny_bound(model), MASK):
            gated = model(**batch).logits
        expected = slice_zeroing_reference(model, arch, MASK)(**batch).logits
    assert count_pre_hooks(model) == 0
    torch.testing.assert_close(gated, expected, atol=1e-5, rtol=1e-4)
    assert (gated - plain).abs().max() > 1e-3


@pytest.mark.parametrize("arch", PRUNABLE_LMS)
def test_pruning_a_language_model_equals_masking_it(arch, tokenizer):
    model, batch = copy.deepcopy(lm(arch)), batch_of(tokenizer, arch)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0]])
    expected_params = expected_params_after(tiny_bound(model), mask)
    with torch.no_grad():
        expected = slice_zeroing_reference(lm(arch), arch, mask)(**batch).logits
        report = prune_heads(tiny_bound(model), mask)
        pruned = model(**batch).logits
    torch.testing.assert_close(pruned, expected, atol=1e-4, rtol=1e-4)
    assert report.params_after == expected_params == sum(p.numel() for p in model.parameters())
    assert tiny_bound(model).kept_heads() == [[1, 2], [], [0, 2, 3]]


@pytest.mark.parametrize("arch", ("llama", "llama-gqa"))
def test_llama_language_models_are_refused_for_pruning(arch):
    with pytest.raises(ValueError, match="pruning is not implemented for Llama .*grouped-query attention"):
        prune_heads(tiny_bound(copy.deepcopy(lm(arch))), MASK)


@pytest.mark.parametrize("arch", LMS)
def test_capture_of_a_language_model_gives_every_position_and_masks_heads(arch, tokenizer):
    model = lm(arch)
    mask = torch.ones(LAYERS, HEADS)
    mask[1, 2] = 0
    cap = capture(model, tokenizer, SENTENCES[1], mask=mask)
    pos = len(cap.tokens)
    assert cap.attentions.shape == (LAYERS, HEADS, pos, pos)
    np.testing.assert_allclose(cap.attentions.sum(-1), 1, atol=1e-5)
    if adapter_for(model).causal:
        assert np.abs(np.triu(cap.attentions, k=1)).max() < 1e-6
    assert cap.logits.shape == (pos, model.config.vocab_size)
    batch = batch_of(tokenizer, arch, [SENTENCES[1]])
    with torch.no_grad(), mask_heads(tiny_bound(model), mask):
        direct = model(**batch).logits[0].numpy()
    np.testing.assert_allclose(cap.logits, direct, atol=1e-5)
    unmasked = capture(model, tokenizer, SENTENCES[1])
    np.testing.assert_allclose(unmasked.hidden_states[:2], cap.hidden_states[:2], atol=1e-6)
    assert np.abs(unmasked.hidden_states[2] - cap.hidden_states[2]).max() > 1e-4


def test_gpt_capture_of_a_pruned_layer_keeps_the_layers_aligned(tokenizer):
    model = copy.deepcopy(lm("openai-gpt"))
    mask = torch.ones(LAYERS, HEADS)
    mask[1] = 0
    reference = capture(lm("openai-gpt"), tokenizer, SENTENCES[0], mask=mask)
    prune_heads(tiny_bound(model), mask)
    cap = capture(model, tokenizer, SENTENCES[0])
    assert (cap.attentions[1] == 0).all()
    np.testing.assert_allclose(cap.attentions[[0, 2]], reference.attentions[[0, 2]], atol=1e-5)
    np.testing.assert_allclose(cap.logits, reference.logits, atol=1e-4)


# -- GPT as a sequence classifier: the generic paths (classifier head, layer-by-layer, importance) ----------------
@functools.lru_cache(maxsize=None)
def gpt_classifier():
    return tiny_model("openai-gpt", num_layers=LAYERS, num_heads=HEADS, hidden=HIDDEN, initializer_range=INIT_STD)


def test_gpt_classifier_head_reproduces_the_models_logits(tokenizer):
    model, batch = gpt_classifier(), batch_of(tokenizer, "openai-gpt")
    adapter = adapter_for(model)
    assert adapter.name == "GPT" and adapter.is_task_model(model) and not adapter.sdpa
    hidden, expected = last_layer_output(model, adapter.layer_modules(model)[-1], batch)
    with torch.no_grad():
        logits = adapter.classifier_head(model, hidden, batch)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_gpt_layer_by_layer_equals_the_full_masked_forward(tokenizer):
    model, batch = gpt_classifier(), batch_of(tokenizer, "openai-gpt")
    runner = LayerwiseRunner(tiny_bound(model))
    cache = runner.prepare(batch)
    mask = torch.ones(LAYERS, HEADS)
    for layer, head in [(2, 1), (0, 3)]:
        mask[layer, head] = 0
        with torch.no_grad(), mask_heads(tiny_bound(model), mask):
            full = model(**batch).logits
        torch.testing.assert_close(runner.run(cache, mask), full, atol=1e-5, rtol=1e-4)


def test_gpt_importance_matches_finite_differences(tokenizer):
    model = gpt_classifier()
    examples = tiny_examples(12, seed=2)
    base = torch.full((LAYERS, HEADS), 0.9)
    result = head_importance(model, tokenizer, examples, base, per_example=False, batch_size=len(examples),
                             compute_entropy=False, normalize_by_layer=False, normalize_global=False, task="sst2")
    batch = batch_of(tokenizer, "openai-gpt", [ex.text_a for ex in examples])
    labels = torch.tensor([ex.label for ex in examples])
    exact = copy.deepcopy(model).double()  # GPT's post-norm blocks make one head's effect small: difference in fp64

    def loss(mask) -> float:
        with torch.no_grad(), mask_heads(tiny_bound(exact), mask):
            return float(torch.nn.functional.cross_entropy(exact(**batch).logits, labels))

    eps = 1e-2
    for layer, head in [(0, 1), (1, 3), (2, 0)]:
        up, down = base.clone(), base.clone()
        up[layer, head], down[layer, head] = 0.9 + eps, 0.9 - eps
        finite = abs(loss(up) - loss(down)) / (2 * eps)
        assert result.raw_importance[layer, head] == pytest.approx(finite, rel=0.03, abs=1e-6)
