"""Induction scores and the in-context copying loss, with a head made by hand to be an induction head."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bertology_widgets.analyses.head_roles import HeadRoles, head_roles
from bertology_widgets.analyses.induction import (
    INDUCTION_TOKEN_RANGE,
    in_context_loss,
    induction_scores,
    repeated_tokens,
    top_heads,
)
from bertology_widgets.core.bound import bind
from bertology_widgets.testing import tiny_examples, tiny_lm, tiny_model

LAYERS, HEADS = 3, 4
INDUCTION_HEAD = (1, 2)
PROBE = dict(length=12, count=3)


@pytest.fixture(scope="module")
def model():
    """A tiny GPT-2 LM (eager attention); tests add hooks for a block and leave its weights alone."""
    return tiny_lm("gpt2", num_layers=LAYERS, num_heads=HEADS, attn_implementation="eager")


def induction_pattern(ids: torch.Tensor) -> torch.Tensor:
    """``(batch, pos, pos)``: each query attends to the token after its token's earliest earlier occurrence
    (to itself when the token is new), worked out from the token ids alone."""
    batch, pos = ids.shape
    pattern = torch.zeros(batch, pos, pos)
    for b in range(batch):
        for q in range(pos):
            earlier = (ids[b, :q] == ids[b, q]).nonzero().flatten()
            pattern[b, q, int(earlier[0]) + 1 if len(earlier) else q] = 1.0
    return pattern


@contextlib.contextmanager
def induction_head(model, layer: int, head: int):
    """Make ``model``'s head ``(layer, head)`` an induction head: its attention weights become
    :func:`induction_pattern` of the input (the weights the model reports with ``output_attentions``)."""
    seen = {}

    def remember_ids(module, args, kwargs):
        seen["ids"] = kwargs["input_ids"]

    def patch(module, args, output):
        weights = output[1]
        weights[:, head] = induction_pattern(seen["ids"]).to(weights.dtype)

    handles = [model.register_forward_pre_hook(remember_ids, with_kwargs=True),
               model.transformer.h[layer].attn.register_forward_hook(patch)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def test_the_head_built_to_copy_scores_highest_and_near_one(model, tokenizer):
    with induction_head(model, *INDUCTION_HEAD):
        scores = induction_scores(bind(model, tokenizer), **PROBE)
    assert scores.induction.shape == (LAYERS, HEADS)
    assert scores.top_heads(1)[0][:2] == INDUCTION_HEAD
    assert scores.induction[INDUCTION_HEAD] > 0.99
    others = np.delete(scores.induction.ravel(), INDUCTION_HEAD[0] * HEADS + INDUCTION_HEAD[1])
    assert others.max() < 0.5


def test_the_probe_is_random_tokens_repeated_twice_with_distinct_ordinary_tokens(tokenizer):
    probe = repeated_tokens(tokenizer, 30522, length=20, count=4, seed=3)
    ids = probe.input_ids
    assert ids.shape == (4, 40) and probe.offset == 0
    assert torch.equal(ids[:, :20], ids[:, 20:])
    assert all(len(set(row[:20].tolist())) == 20 for row in ids)
    low, high = INDUCTION_TOKEN_RANGE
    assert ((ids >= low) & (ids < high)).all()
    assert not set(ids.flatten().tolist()) & set(tokenizer.all_special_ids)
    assert torch.equal(ids, repeated_tokens(tokenizer, 30522, length=20, count=4, seed=3).input_ids)
    assert not torch.equal(ids, repeated_tokens(tokenizer, 30522, length=20, count=4, seed=4).input_ids)
    with_bos = repeated_tokens(SimpleNamespace(bos_token_id=7, all_special_ids=[7]), 30522, length=5, count=2)
    assert with_bos.offset == 1 and (with_bos.input_ids[:, 0] == 7).all()
    assert with_bos.second_half.tolist() == [6, 7, 8, 9, 10]
    with pytest.raises(ValueError, match="distinct tokens"):
        repeated_tokens(tokenizer, 30522, length=20, token_range=(1000, 1010))


def test_in_context_loss_is_the_mean_loss_on_the_repeated_half_under_the_mask(model, tokenizer):
    bound = bind(model, tokenizer)
    probe = repeated_tokens(tokenizer, 30522, **PROBE)
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[0, 1] = 0
    with torch.no_grad(), bound.masked(mask):
        logits = model(input_ids=probe.input_ids).logits
    length = PROBE["length"]
    predicted = logits[:, length:2 * length - 1]  # predicts second-half tokens 1 .. L-1
    expected = F.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), probe.input_ids[:, length + 1:].reshape(-1))
    assert in_context_loss(bound, mask, **PROBE) == pytest.approx(float(expected), rel=1e-6)
    assert in_context_loss(bound, None, **PROBE) != pytest.approx(float(expected), rel=1e-6)
    assert induction_scores(bound, **PROBE).in_context_loss == pytest.approx(in_context_loss(bound, **PROBE), rel=1e-6)


def test_models_the_scores_do_not_fit_are_refused_or_get_no_loss(tokenizer):
    with pytest.raises(ValueError, match="causal"):
        induction_scores(bind(tiny_lm("bert"), tokenizer), **PROBE)
    with pytest.raises(ValueError, match="masked LM"):
        in_context_loss(bind(tiny_lm("bert"), tokenizer), **PROBE)
    classifier = induction_scores(bind(tiny_model("gpt2"), tokenizer), **PROBE)
    assert classifier.in_context_loss is None and classifier.induction.shape == (3, 4)


def test_a_probe_longer_than_the_model_takes_is_refused(model, tokenizer):
    with pytest.raises(ValueError, match="takes at most 128: give length=64 or less"):
        induction_scores(bind(model, tokenizer), length=70, count=1)


def test_top_heads_orders_by_score_and_puts_pruned_heads_last():
    scores = np.array([[0.1, np.nan], [0.9, 0.5]])
    assert top_heads(scores, 4) == [(1, 0, 0.9), (1, 1, 0.5), (0, 0, 0.1), (0, 1, -np.inf)]


def test_head_roles_of_a_causal_lm_hold_induction_and_the_loss_and_save_them(model, tokenizer, tmp_path):
    roles = head_roles(model, tokenizer, tiny_examples(4))
    assert roles.induction is not None and roles.induction.shape == (LAYERS, HEADS)
    assert roles.in_context_loss == pytest.approx(in_context_loss(bind(model, tokenizer)), rel=1e-6)
    _, js = roles.save(tmp_path)
    data = json.loads(js.read_text())
    assert np.array(data["induction"]).shape == (LAYERS, HEADS)
    assert data["in_context_loss"] == pytest.approx(roles.in_context_loss)
    loaded = HeadRoles.load(tmp_path)
    np.testing.assert_allclose(loaded.induction, roles.induction)
    assert np.load(tmp_path / "head_roles.npz")["induction"].shape == (LAYERS, HEADS)


def test_head_roles_of_an_encoder_have_no_induction(tokenizer):
    encoder = head_roles(tiny_model("bert"), tokenizer, tiny_examples(4))
    assert encoder.induction is None and "induction" not in encoder.to_dict()
