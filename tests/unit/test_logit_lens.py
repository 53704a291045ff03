"""The logit lens against a final norm and unembedding applied by hand, on tiny GPT-2, GPT, Llama and BERT-MLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bertology_widgets.analyses.logit_lens import logit_lens
from bertology_widgets.core.bound import bind
from bertology_widgets.core.unembedding import has_lm_head, unembedding_for
from bertology_widgets.testing import tiny_lm, tiny_model

LAYERS, HEADS = 3, 4
TEXT = "the film was a charming mess of music and scenes"
LM_ARCHS = ("gpt2", "openai-gpt", "llama", "bert", "roberta", "distilbert")
K = 8


def lm(arch: str, seed: int = 0):
    return tiny_lm(arch, seed=seed, num_layers=LAYERS, num_heads=HEADS, initializer_range=0.2)


@pytest.fixture(scope="module", params=LM_ARCHS)
def arch_model(request):
    return request.param, lm(request.param)


def hand_unembedding(model, arch: str, hidden: torch.Tensor) -> torch.Tensor:
    """The final norm and head written out from the weights: ``(pos, hidden) -> (pos, vocab)``."""
    if arch == "gpt2":
        ln = model.transformer.ln_f
        normed = F.layer_norm(hidden, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
        return normed @ model.transformer.wte.weight.T  # the tied head
    if arch == "openai-gpt":
        return hidden @ model.transformer.tokens_embed.weight.T  # post-norm blocks: no final norm
    if arch == "llama":
        norm = model.model.norm
        normed = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon) * norm.weight
        return normed @ model.lm_head.weight.T
    if arch == "bert":
        head = model.cls.predictions
        dense, ln = head.transform.dense, head.transform.LayerNorm
        x = F.layer_norm(F.gelu(hidden @ dense.weight.T + dense.bias), ln.normalized_shape, ln.weight, ln.bias,
                         ln.eps)
        return x @ head.decoder.weight.T + head.decoder.bias
    if arch == "roberta":
        head = model.lm_head
        x = F.layer_norm(F.gelu(head.dense(hidden)), head.layer_norm.normalized_shape, head.layer_norm.weight,
                         head.layer_norm.bias, head.layer_norm.eps)
        return x @ head.decoder.weight.T + head.decoder.bias
    x = model.vocab_layer_norm(F.gelu(model.vocab_transform(hidden)))  # distilbert
    return model.vocab_projector(x)


@torch.no_grad()
def reference_rows(model, arch: str, ids: torch.Tensor) -> torch.Tensor:
    """``(layers + 1, pos, vocab)``: transformers' hidden states through the hand-written head; the last row is
    the model's own logits (GPT-2's and Llama's last hidden state already has the final norm in it)."""
    out = model(input_ids=ids, output_hidden_states=True)
    rows = [hand_unembedding(model, arch, h[0]) for h in out.hidden_states[:-1]]
    return torch.stack(rows + [out.logits[0]])


def test_every_row_equals_the_hand_applied_final_norm_and_head(arch_model, tokenizer):
    arch, model = arch_model
    result = logit_lens(bind(model, tokenizer), TEXT, k=K)
    ids = torch.as_tensor(result.input_ids)[None]
    probs = reference_rows(model, arch, ids).softmax(-1)
    top_probs, top_ids = probs.topk(K, dim=-1)
    assert result.top_ids.shape == (LAYERS + 1, ids.shape[1], K)
    np.testing.assert_allclose(result.top_probs, top_probs.numpy(), atol=1e-5)
    np.testing.assert_array_equal(result.top_ids, top_ids.numpy())
    final = probs[-1].argmax(-1)
    target = probs.gather(-1, final[None, :, None].expand(LAYERS + 1, -1, 1))
    ranks = ((probs > target).sum(-1) + 1).numpy()  # deep in the tail, rounding may move a rank by one
    np.testing.assert_allclose(result.final_rank, ranks, rtol=1e-3)
    np.testing.assert_array_equal(result.final_rank <= K, ranks <= K)
    np.testing.assert_allclose(result.final_probs, target[..., 0].numpy(), atol=1e-6)


def test_the_last_row_is_the_model_s_own_prediction(arch_model, tokenizer):
    arch, model = arch_model
    result = logit_lens(bind(model, tokenizer), TEXT, k=3)
    with torch.no_grad():
        probs = model(input_ids=torch.as_tensor(result.input_ids)[None]).logits[0].softmax(-1)
    np.testing.assert_array_equal(result.final_ids, probs.argmax(-1).numpy())
    np.testing.assert_array_equal(result.top_ids[-1], probs.topk(3).indices.numpy())
    np.testing.assert_allclose(result.top_probs[-1], probs.topk(3).values.numpy(), atol=1e-6)
    assert (result.final_rank[-1] == 1).all()
    assert result.kind == ("masked" if arch in ("bert", "roberta", "distilbert") else "causal")


@pytest.mark.parametrize("arch", ["gpt2", "openai-gpt", "llama", "bert"])
def test_a_masked_head_changes_only_the_rows_above_its_layer(arch, tokenizer):
    bound = bind(lm(arch), tokenizer)
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[1, 2] = 0
    plain, masked = logit_lens(bound, TEXT, k=K), logit_lens(bound, TEXT, k=K, mask=mask)
    np.testing.assert_array_equal(masked.top_probs[:2], plain.top_probs[:2])  # embeddings, after layer 0
    for row in (2, 3):  # after layer 1 (the masked head's), after layer 2
        assert (np.abs(masked.top_probs[row] - plain.top_probs[row]) / plain.top_probs[row]).max() > 1e-3
    np.testing.assert_array_equal(masked.mask, mask)


def test_mean_ablation_of_the_bound_model_applies(tokenizer):
    bound = bind(lm("gpt2"), tokenizer)
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[0] = 0
    zero = logit_lens(bound, TEXT, mask=mask)
    bound.set_ablation("mean", torch.randn(LAYERS, HEADS, 32 // HEADS, generator=torch.Generator().manual_seed(0)))
    mean = logit_lens(bound, TEXT, mask=mask)
    np.testing.assert_array_equal(mean.top_probs[0], zero.top_probs[0])
    assert (np.abs(mean.top_probs[1:] - zero.top_probs[1:]) / zero.top_probs[1:]).max() > 1e-3


def test_the_model_is_left_as_it_was(tokenizer):
    model = lm("llama")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logit_lens(bind(model, tokenizer), TEXT, mask=np.zeros((LAYERS, HEADS)))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_first_top_layer_finds_the_first_row_whose_top_token_is_it(tokenizer):
    result = logit_lens(bind(lm("gpt2"), tokenizer), TEXT)
    last = result.final_ids[-1]
    first = result.first_top_layer(int(last))
    assert first is not None and result.top_ids[first, -1, 0] == last
    assert (result.top_ids[:first, -1, 0] != last).all()
    absent = next(i for i in range(result.top_ids.max() + 2) if i not in result.top_ids[:, -1, 0])
    assert result.first_top_layer(absent) is None


def test_to_dict_has_the_json_shapes(tokenizer):
    result = logit_lens(bind(lm("bert"), tokenizer), "a [MASK] film", k=2)
    out = result.to_dict()
    pos = len(out["tokens"])
    assert np.array(out["top_tokens"]).shape == (LAYERS + 1, pos, 2)
    assert np.array(out["final_rank"]).shape == (LAYERS + 1, pos)
    assert out["tokens"][2] == "[MASK]"


def test_bad_input_is_refused_with_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="no language-model head"):
        logit_lens(bind(tiny_model("gpt2"), tokenizer), TEXT)
    bound = bind(lm("gpt2"), tokenizer)
    with pytest.raises(ValueError, match="empty"):
        logit_lens(bound, "   ")
    with pytest.raises(ValueError, match="takes at most 128"):
        logit_lens(bound, "good " * 200)
    with pytest.raises(ValueError, match="k must be"):
        logit_lens(bound, TEXT, k=0)


def test_unembedding_knows_each_lm_family_and_refuses_the_rest():
    assert unembedding_for(lm("gpt2")).final_norm is not None
    assert unembedding_for(lm("openai-gpt")).final_norm is None
    assert not has_lm_head(tiny_model("bert"))
    assert has_lm_head(lm("distilbert"))
