"""One engine convention: nothing is left on the user's model, and the facts of a model are worked out once."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from reference import saved_tiny_model

import bertology_widgets.core.architectures as architectures
import bertology_widgets.core.bound as bound_module
from bertology_widgets.analyses.ablation import head_output_means
from bertology_widgets.analyses.attention_norms import attention_norms
from bertology_widgets.analyses.attribution import token_attributions
from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.faithfulness import attribution_agreement
from bertology_widgets.analyses.head_roles import head_roles
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.analyses.masking_curve import (
    keep_one_head_per_layer,
    masking_curve,
    prune_and_compare,
    random_masking_curve,
)
from bertology_widgets.analyses.patching import run_patching
from bertology_widgets.analyses.pipeline import pipeline_probe
from bertology_widgets.analyses.pipeline_states import encode_words, unit_states
from bertology_widgets.analyses.probe import layer_probe
from bertology_widgets.analyses.representations import pooled_states
from bertology_widgets.analyses.ud import load_ud
from bertology_widgets.cli import main
from bertology_widgets.core.bound import bind
from bertology_widgets.core.capturing import capture
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model

MASK = np.ones((3, 4), dtype=np.float32)
MASK[1, :2] = 0.0


def permuted_model():
    """A tiny SST-2 classifier whose classes are in the other order than the task's (a label mapping applies)."""
    model = tiny_model("bert", seed=4, initializer_range=1.0)
    model.config.id2label = {0: "positive", 1: "negative"}
    model.config.label2id = {"positive": 0, "negative": 1}
    model.config.bertology_task = "sst2"
    return model


def snapshot(model):
    return set(vars(model)), {k: v.clone() for k, v in model.state_dict().items()}, model.training


def assert_as_found(model, before, filters) -> None:
    keys, state, training = before
    assert set(vars(model)) == keys
    now = model.state_dict()
    assert set(now) == set(state) and all(torch.equal(now[k], state[k]) for k in state)
    assert model.training == training
    assert warnings.filters == filters


def test_every_engine_function_and_a_live_session_leave_the_model_as_found(tokenizer):
    model = permuted_model().train()  # in training mode: every forward must put it back
    examples = tiny_examples(16, seed=5)
    before, filters = snapshot(model), list(warnings.filters)
    bound = bind(model, tokenizer, "sst2")
    assert bound.label_order == [1, 0]
    eval_set = bound.encode(examples)
    means = head_output_means(bound, eval_set)
    bound.set_ablation("mean", means)
    text, other = examples[0].text_a, examples[1].text_a
    evaluate(bound, eval_set, mask=MASK)
    evaluate(model, tokenizer, examples, task="sst2")
    predict(bound, eval_set, reduce=False)
    importance = head_importance(bound, eval_set, mask=MASK).importance
    masking_curve(bound, eval_set, masking_amount=0.5, importance=importance)
    random_masking_curve(bound, eval_set, masking_amount=0.5, seeds=(0,))
    keep_one_head_per_layer(bound, eval_set, importance=importance)
    prune_and_compare(bound, eval_set, mask=MASK, repeats=1)
    capture(bound, None, text, mask=MASK)
    run_patching(bound, None, text, other, mask=MASK)
    head_roles(bound, eval_set)
    pooled_states(bound, eval_set, mask=MASK)
    unit_states(bound, None, encode_words(tokenizer, load_ud("dev")[:4], 64), MASK)
    pipeline_probe(bound, None, ("upos",), max_sentences=20, mask=MASK, max_iter=5)
    layer_probe(bound, None, examples, examples, MASK, max_train=16, progress=False)
    token_attributions(bound, text, method="grad_x_input", mask=MASK)
    attention_norms(bound, text, MASK)
    attribution_agreement(bound, examples[:2], ("grad_x_input",), mask=MASK, progress=False)
    session = ModelSession(model, tokenizer, examples, task="sst2", batch_size=8)
    try:
        assert session.wait(120)
        session.compute_head_means(background=False)
        session.ablation = "mean"
        session.toggle_head(0, 1)
        assert session.wait(120) and session.score_error == ""
        session.compute_importance(background=False)
        assert session.analysis_error == ""
    finally:
        session.close()
    assert_as_found(model, before, filters)


def count_derivations(monkeypatch) -> list:
    """Count every ``adapter_for`` call, through the binding and anywhere else."""
    calls = []
    original = architectures.adapter_for

    def counted(model):
        calls.append(type(model).__name__)
        return original(model)

    monkeypatch.setattr(architectures, "adapter_for", counted)
    monkeypatch.setattr(bound_module, "adapter_for", counted)
    return calls


def test_a_mask_run_works_out_the_model_once(tmp_path, tokenizer, monkeypatch):
    saved_tiny_model(tmp_path, tokenizer, seed=1)
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{ex.text_a}\t{ex.label}\n" for ex in tiny_examples(12, seed=6))
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    calls = count_derivations(monkeypatch)
    code = main(["mask", "--model", str(tmp_path / "model"), "--task", "sst2", "--glue-dir", str(tmp_path / "glue"),
                 "--out", str(tmp_path / "out"), "--masking-amount", "0.5", "--random-seeds", "0",
                 "--ablation", "mean"])
    assert code == 0 and (tmp_path / "out" / "head_mask.npy").exists()
    assert len(calls) == 1


def test_a_session_works_out_the_model_once(tokenizer, monkeypatch):
    model = tiny_model("bert", seed=2)
    calls = count_derivations(monkeypatch)
    session = ModelSession(model, tokenizer, tiny_examples(16, seed=7), task="sst2", batch_size=8)
    try:
        assert session.wait(120)
        session.toggle_head(1, 2)
        assert session.wait(120)
        session.compute_importance(background=False)
        session.compute_pipeline(("upos",), background=False, max_sentences=20, max_iter=5)
        assert session.analysis_error == "" and session.pipeline is not None
    finally:
        session.close()
    assert len(calls) == 1


def test_the_user_call_and_the_bound_call_agree(tokenizer):
    """``f(model, tokenizer, examples)`` is ``f(bind(...), bound.encode(examples))``, not a second implementation."""
    model = tiny_model("bert", seed=3)
    examples = tiny_examples(12, seed=8)
    bound = bind(model, tokenizer, "sst2")
    eval_set = bound.encode(examples)
    a = evaluate(model, tokenizer, examples, MASK, task="sst2")
    b = evaluate(bound, eval_set, mask=MASK)
    assert a["accuracy"] == b["accuracy"] and np.array_equal(a["predictions"], b["predictions"])
    with pytest.raises(TypeError, match="either an EvalSet"):
        evaluate(bound, eval_set, examples)
    twin = bound.copy()
    assert twin.adapter is bound.adapter and twin.model is not model
    assert all(torch.equal(p, q) for p, q in zip(twin.model.parameters(), copy.deepcopy(model).parameters()))
