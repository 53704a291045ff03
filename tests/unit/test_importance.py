"""Head importance and attention entropy against references written here, independently.

The references gate heads with their own pre-hooks on the attention output
projection (found by transformers' module names, see ``conftest``), take the
loss from the model itself (``labels=``), and run one example (or one batch)
at a time, as run_bertology.py does.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch
from reference import HEAD_DIM, HEADS, LAYERS, count_pre_hooks, model_inputs, out_projection

from bertology_widgets.analyses.importance import format_head_table, head_importance, normalize_importance
from bertology_widgets.core.pruning import prune_heads
from bertology_widgets.glue import Example
from bertology_widgets.testing import tiny_bound, tiny_model

TEXTS = [
    "the movie was wonderful and moving",
    "a dull , lifeless mess",
    "i loved every minute of it , truly",
    "boring",
    "the plot makes no sense at all and it drags on",
]
EXAMPLES = [Example(text, None, i % 2, i) for i, text in enumerate(TEXTS)]
PAIRS = [Example(a, b, float(i) + 0.5, i) for i, (a, b) in enumerate(zip(TEXTS, reversed(TEXTS)))]


@pytest.fixture(scope="module")
def bert():
    return tiny_model("bert", seed=1, initializer_range=0.5)


@contextlib.contextmanager
def gated(model, arch, gate):
    """Multiply head ``h`` of layer ``l``'s output by ``gate[l, h]`` (written apart from the package)."""
    handles = []
    for layer in range(LAYERS):
        def hook(module, args, layer=layer):
            x = args[0]
            g = gate[layer].repeat_interleave(HEAD_DIM)
            return (x * g,) + tuple(args[1:])

        handles.append(out_projection(model, arch, layer).register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def encode(tokenizer, arch, examples):
    a = [ex.text_a for ex in examples]
    b = [ex.text_b for ex in examples] if examples[0].text_b is not None else None
    enc = tokenizer(a, b, padding=True, return_tensors="pt")
    labels = torch.tensor([ex.label for ex in examples])
    return model_inputs(arch, enc), labels


def min_max_layer_norm(raw):
    per_layer = raw / np.sqrt((raw ** 2).sum(-1, keepdims=True))
    return (per_layer - per_layer.min()) / (per_layer.max() - per_layer.min())


def reference_compat(model, tokenizer, arch, examples, batch_size=1, mask=None):
    """run_bertology.py's loop: one gate tensor whose .grad is never zeroed; abs of it summed per batch."""
    model = copy.deepcopy(model)
    head_mask = (torch.ones(LAYERS, HEADS) if mask is None else torch.tensor(mask, dtype=torch.float32))
    head_mask.requires_grad_(True)
    importance = torch.zeros(LAYERS, HEADS)
    tokens = 0.0
    with gated(model, arch, head_mask):
        for i in range(0, len(examples), batch_size):
            inputs, labels = encode(tokenizer, arch, examples[i:i + batch_size])
            model(**inputs, labels=labels).loss.backward()
            importance += head_mask.grad.abs().detach()
            tokens += inputs["attention_mask"].float().sum().item()
    return (importance / tokens).numpy()


def reference_per_example(model, tokenizer, arch, examples, mask=None):
    """Mean over examples of |dL(x)/dg|, one example at a time."""
    total = torch.zeros(LAYERS, HEADS)
    for ex in examples:
        gate = (torch.ones(LAYERS, HEADS) if mask is None else torch.tensor(mask, dtype=torch.float32))
        gate.requires_grad_(True)
        inputs, labels = encode(tokenizer, arch, [ex])
        with gated(model, arch, gate):
            loss = model(**inputs, labels=labels).loss
        total += torch.autograd.grad(loss, gate)[0].abs()
    return (total / len(examples)).numpy()


def reference_entropy(model, tokenizer, arch, examples):
    """Entropy per non-padding query token, from eager ``output_attentions`` one example at a time."""
    model = copy.deepcopy(model)
    model.set_attn_implementation("eager")
    total, tokens = torch.zeros(LAYERS, HEADS), 0
    with torch.no_grad():
        for ex in examples:
            inputs, _ = encode(tokenizer, arch, [ex])
            for layer, p in enumerate(model(**inputs, output_attentions=True).attentions):
                plogp = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))
                total[layer] += -plogp.sum(-1)[0].sum(-1)
            tokens += inputs["input_ids"].shape[1]
    return (total / tokens).numpy()


def test_compat_matches_run_bertology_loop(bert, tokenizer):
    result = head_importance(bert, tokenizer, EXAMPLES, compat=True, task="sst2")
    raw = reference_compat(bert, tokenizer, "bert", EXAMPLES)
    np.testing.assert_allclose(result.raw_importance, raw, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(result.importance, min_max_layer_norm(raw), rtol=1e-4, atol=1e-6)
    assert result.tokens == sum(len(tokenizer(ex.text_a)["input_ids"]) for ex in EXAMPLES)
    assert result.n_examples == len(EXAMPLES)


def test_compat_keeps_the_never_zeroed_gradient_quirk(bert, tokenizer):
    """|running sum of gradients| per step differs from the sum of per-step |gradients|."""
    result = head_importance(bert, tokenizer, EXAMPLES, compat=True, task="sst2")
    sane = reference_per_example(bert, tokenizer, "bert", EXAMPLES) * len(EXAMPLES) / result.tokens
    assert not np.allclose(result.raw_importance, sane, rtol=1e-3)


def test_compat_batches_in_file_order_with_the_batch_mean_loss(bert, tokenizer):
    result = head_importance(bert, tokenizer, EXAMPLES, compat=True, batch_size=2, task="sst2",
                             compute_entropy=False)
    np.testing.assert_allclose(result.raw_importance, reference_compat(bert, tokenizer, "bert", EXAMPLES, 2),
                               rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("by_layer, global_", [(False, False), (True, False), (False, True)])
def test_normalisations_switch_off(bert, tokenizer, by_layer, global_):
    result = head_importance(bert, tokenizer, EXAMPLES, compat=True, normalize_by_layer=by_layer,
                             normalize_global=global_, task="sst2", compute_entropy=False)
    raw = reference_compat(bert, tokenizer, "bert", EXAMPLES)
    expected = raw / np.sqrt((raw ** 2).sum(-1, keepdims=True)) if by_layer else raw
    if global_:
        expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(result.importance, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_per_example_is_the_mean_of_per_example_gradients(tokenizer, arch):
    model = tiny_model(arch, seed=1, initializer_range=0.5)
    result = head_importance(model, tokenizer, EXAMPLES, batch_size=3, task="sst2")
    raw = reference_per_example(model, tokenizer, arch, EXAMPLES)
    np.testing.assert_allclose(result.raw_importance, raw, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.importance, min_max_layer_norm(raw), rtol=1e-4, atol=1e-6)


def test_per_batch_takes_the_gradient_of_each_batch_mean(bert, tokenizer):
    one = head_importance(bert, tokenizer, EXAMPLES, per_example=False, batch_size=len(EXAMPLES), task="sst2",
                          compute_entropy=False)
    np.testing.assert_allclose(one.raw_importance,
                               reference_compat(bert, tokenizer, "bert", EXAMPLES, len(EXAMPLES)) * one.tokens,
                               rtol=1e-4, atol=1e-7)
    singles = head_importance(bert, tokenizer, EXAMPLES, per_example=False, batch_size=1, task="sst2",
                              compute_entropy=False)
    np.testing.assert_allclose(singles.raw_importance, reference_per_example(bert, tokenizer, "bert", EXAMPLES),
                               rtol=1e-4, atol=1e-7)


def test_per_example_under_a_mask(bert, tokenizer):
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[0, 1] = mask[2, 3] = 0.0
    result = head_importance(bert, tokenizer, EXAMPLES, mask=mask, task="sst2", compute_entropy=False)
    np.testing.assert_allclose(result.raw_importance, reference_per_example(bert, tokenizer, "bert", EXAMPLES, mask),
                               rtol=1e-4, atol=1e-7)


def test_regression_uses_squared_error(tokenizer):
    model = tiny_model("bert", seed=1, initializer_range=0.5, num_labels=1)
    result = head_importance(model, tokenizer, PAIRS, batch_size=2, task="stsb", compute_entropy=False)
    np.testing.assert_allclose(result.raw_importance, reference_per_example(model, tokenizer, "bert", PAIRS),
                               rtol=1e-4, atol=1e-7)


def test_entropy_matches_output_attentions(bert, tokenizer):
    expected = reference_entropy(bert, tokenizer, "bert", EXAMPLES)
    for compat in (False, True):
        result = head_importance(bert, tokenizer, EXAMPLES, compat=compat, batch_size=2, task="sst2")
        np.testing.assert_allclose(result.entropy, expected, rtol=1e-4, atol=1e-6)
    assert (expected > 0).all()


def test_compat_entropy_of_a_masked_head_is_zero_as_head_mask_left_it(bert, tokenizer):
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[1, 2] = 0.0
    compat = head_importance(bert, tokenizer, EXAMPLES, mask=mask, compat=True, task="sst2")
    paper = head_importance(bert, tokenizer, EXAMPLES, mask=mask, task="sst2")
    assert compat.entropy[1, 2] == 0.0 and paper.entropy[1, 2] > 0
    keep = mask == 1
    np.testing.assert_allclose(compat.entropy[keep], paper.entropy[keep], rtol=1e-5)


def test_leaves_the_model_as_it_was(bert, tokenizer):
    model = copy.deepcopy(bert).train()
    calls = []
    head_importance(model, tokenizer, EXAMPLES, task="sst2", batch_size=2,
                    on_progress=lambda d, t: calls.append((d, t)))
    assert model.training
    assert model.config._attn_implementation == "sdpa"
    assert count_pre_hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())
    assert calls[-1] == (len(EXAMPLES), len(EXAMPLES)) and len(calls) == 3


def test_normalize_importance_edge_cases():
    raw = np.array([[3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(normalize_importance(raw, True, False), [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    assert np.array_equal(normalize_importance(np.full((2, 3), 0.5)), np.zeros((2, 3)))


def test_ranks_and_table(bert, tokenizer):
    result = head_importance(bert, tokenizer, EXAMPLES[:2], task="sst2", compute_entropy=False)
    ranks = result.ranks
    assert sorted(ranks.reshape(-1).tolist()) == list(range(LAYERS * HEADS))
    assert ranks.reshape(-1)[result.importance.argmax()] == 0
    table = format_head_table(ranks).splitlines()
    assert table[0] == "layer, head (from 0) >\t0\t1\t2\t3" and table[1].startswith("layer 0:\t")
    assert len(table) == LAYERS + 1


def test_refuses_unlabelled_and_pruned(bert, tokenizer):
    unlabelled = [Example("no label here", None, None, 0)]
    with pytest.raises(ValueError, match="no labels"):
        head_importance(bert, tokenizer, unlabelled, task="sst2")
    pruned = copy.deepcopy(bert)
    prune_heads(tiny_bound(pruned), np.eye(LAYERS, HEADS) == 0)
    with pytest.raises(ValueError, match="unpruned"):
        head_importance(pruned, tokenizer, EXAMPLES, task="sst2")
