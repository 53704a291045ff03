"""The bound model: resolved once, the examples tokenized once, the user's model left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets import ModelSession, bind
from bertology_widgets.testing import tiny_examples, tiny_model


def test_a_session_tokenizes_its_examples_once_for_baseline_lengths_and_importance(tokenizer, tokenizer_calls):
    examples = tiny_examples(20, seed=9)
    session = ModelSession(tiny_model("bert", seed=4), tokenizer, examples, task="sst2", live=False)
    try:
        session.compute_importance(background=False)
        assert session.importance is not None
    finally:
        session.close()
    shown = examples[0].text_a  # the shown example is also tokenized alone, for its capture
    for ex in examples:
        assert tokenizer_calls[(ex.text_a, True)] == (2 if ex.text_a == shown else 1), ex.text_a


def test_bind_resolves_once_and_reads_the_device_where_it_is(tokenizer):
    model = tiny_model("bert", seed=1)
    bound = bind(model, tokenizer, "sst2")
    assert bound.shape == (3, 4) and bound.head_dim == 8 and bound.task.name == "sst2"
    assert bound.pad_id == tokenizer.pad_token_id and bound.uses_token_types and not bound.is_causal
    model.to(torch.float64)
    assert bound.dtype == torch.float64  # read from the model, not kept from bind time
    assert bind(bound) is bound


def test_the_label_order_goes_to_the_logits_not_the_weights(tokenizer):
    model = tiny_model("bert", seed=2)
    model.config.id2label = {0: "POSITIVE", 1: "NEGATIVE"}
    weights = model.classifier.weight.detach().clone()
    bound = bind(model, tokenizer, "sst2")
    logits = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    torch.testing.assert_close(bound.task_logits(logits), logits[:, [1, 0]])
    assert bound.label_order == [1, 0]
    assert torch.equal(model.classifier.weight, weights) and model.config.id2label[0] == "POSITIVE"


def test_encode_needs_examples_and_an_unlabelled_set_cannot_be_scored(tokenizer):
    from bertology_widgets.analyses.evaluation import evaluate
    from bertology_widgets.glue import Example

    bound = bind(tiny_model("bert"), tokenizer, "sst2")
    with pytest.raises(ValueError, match="empty"):
        bound.encode([])
    unlabelled = bound.encode([Example("a fine film", None, None, 0)])
    with pytest.raises(ValueError, match="no labels"):
        evaluate(bound, unlabelled)


def test_pruned_works_on_a_copy(tokenizer):
    model = tiny_model("bert", seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, :2] = 0
    pruned = bind(model, tokenizer, "sst2").pruned(mask)
    assert pruned.kept_heads()[0] == [2, 3] and pruned.prune_report.heads_after == 10
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
