"""Head importance on the LM loss; ``compat=True`` against a hand-written loop of ``run_prune_gpt.py``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from reference import HEADS, LAYERS, SENTENCES, shared_lm

from bertology_widgets.analyses.lm_importance import lm_head_importance
from bertology_widgets.core.bound import bind
from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.lm_objective import lm_objective
from bertology_widgets.glue import Example

TEXTS = [Example(text_a=t, text_b=None, label=None, idx=i) for i, t in enumerate(
    SENTENCES + ["The old man the boats.", "Time flies like an arrow; fruit flies like a banana."])]


def eager_lm(arch):
    model = copy.deepcopy(shared_lm(arch))
    model.config._attn_implementation = "eager"
    return model


def run_prune_gpt_loop(model, tokenizer, texts):
    """``compute_heads_importance`` of run_prune_gpt.py, with a gate hook where it passed ``head_mask``."""
    def entropy(p, unlogit=False):
        if unlogit:
            p = torch.pow(p, 2)
        plogp = p * torch.log(p)
        plogp[p == 0] = 0
        return -plogp.sum(dim=-1)

    head_importance = torch.zeros(LAYERS, HEADS, dtype=torch.float64)
    attn_entropy = torch.zeros(LAYERS, HEADS, dtype=torch.float64)
    head_mask = torch.ones(LAYERS, HEADS).requires_grad_(True)
    tot_tokens = total_loss = 0.0
    for ex in texts:  # its sequential loader: file order
        input_ids = torch.tensor([tokenizer(ex.text_a)["input_ids"]])
        with mask_heads(bind(model, tokenizer), head_mask):
            outputs = model(input_ids, labels=input_ids, output_attentions=True)
        loss, all_attentions = outputs.loss, outputs.attentions
        loss.backward()
        total_loss += loss.detach().numpy()
        for layer, attn in enumerate(all_attentions):
            masked_entropy = entropy(attn.detach().double(), True)
            attn_entropy[layer] += masked_entropy.sum(-1).sum(0).sum(0).detach()
        head_importance += head_mask.grad.abs().detach().double()
        tot_tokens += torch.ones_like(input_ids).float().detach().sum().data
    return head_importance / tot_tokens, attn_entropy / tot_tokens, total_loss


@pytest.mark.parametrize("arch", ["gpt2", "openai-gpt"])
def test_compat_follows_run_prune_gpt(arch, tokenizer):
    model = eager_lm(arch)
    bound = bind(model, tokenizer)
    objective = lm_objective(model)
    result = lm_head_importance(bound, objective.encode(bound, TEXTS, 128), objective, compat=True,
                                normalize_by_layer=False, normalize_global=False)
    importance, entropy, loss = run_prune_gpt_loop(model, tokenizer, TEXTS)
    np.testing.assert_allclose(result.raw_importance, importance.numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(result.entropy, entropy.numpy(), rtol=1e-6)
    assert result.loss == pytest.approx(float(loss), rel=1e-6) and result.score == pytest.approx(1 / float(loss))
    assert (result.entropy == result.entropy[:, :1]).all()  # the script sums a layer's heads together


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_default_importance_is_the_mean_of_each_texts_gradient(arch, tokenizer):
    model = eager_lm(arch)
    bound = bind(model, tokenizer)
    objective = lm_objective(model)
    eval_set = objective.encode(bound, TEXTS, 128)
    result = lm_head_importance(bound, eval_set, objective, batch_size=3, compute_entropy=False)
    expected = torch.zeros(LAYERS, HEADS)
    from bertology_widgets.core.batching import collate

    for i in range(len(TEXTS)):
        gates = torch.ones(LAYERS, HEADS, requires_grad=True)
        batch = collate(eval_set.encoded, np.array([i]), bound.pad_id, with_token_types=bound.uses_token_types)
        with mask_heads(bind(model, tokenizer), gates):
            loss = objective.losses(model(**batch).logits, batch, eval_set, np.array([i]))[0]
        loss.backward()
        expected += gates.grad.abs() / len(TEXTS)
    np.testing.assert_allclose(result.raw_importance, expected.numpy(), rtol=1e-4, atol=1e-8)
    assert result.importance.max() == pytest.approx(1.0) and result.importance.min() == pytest.approx(0.0)
