"""A session and a dashboard on a language model: perplexity live under the mask.

The settled live score after toggles equals :func:`evaluate_lm` on the saved mask, bit for bit
(both run the same layer-by-layer forward on the same batches), on tiny random GPT, GPT-2, Llama
with grouped-query attention and BERT's masked LM.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import shared_lm

from bertology_widgets import ModelSession
from bertology_widgets.analyses.lm_evaluation import LIVE_LM_BATCH_SIZE, evaluate_lm
from bertology_widgets.analyses.lm_texts import load_lm_texts
from bertology_widgets.models.loading import NoClassificationHeadError

TEXTS = load_lm_texts(max_examples=8)


def open_session(arch, tokenizer, **options):
    options = {"task": "lm", "batch_size": 3, **options}
    return ModelSession(shared_lm(arch), tokenizer, TEXTS, **options)


@pytest.mark.parametrize("arch", ["openai-gpt", "gpt2", "llama-gqa", "bert"])
def test_the_settled_score_after_toggles_equals_evaluate_lm_on_the_saved_mask(arch, tokenizer, tmp_path):
    session = open_session(arch, tokenizer)
    try:
        assert session.wait(60)
        baseline = dict(session.baseline_score)
        for layer, head in [(2, 1), (0, 3), (1, 0), (0, 3)]:  # a burst; the last toggle keeps (0, 3) again
            session.toggle_head(layer, head)
        assert session.wait(60)
        session.save_state(tmp_path / "state.json")
        mask = np.asarray(json.loads((tmp_path / "state.json").read_text())["mask"], dtype=np.float32)
        assert (mask == 0).sum() == 2 and mask[2, 1] == 0 and mask[1, 0] == 0
        reference = evaluate_lm(shared_lm(arch), tokenizer, TEXTS, task="lm", mask=mask, batch_size=3)
        assert session.score == {"perplexity": reference["perplexity"], "token_accuracy": reference["token_accuracy"]}
        unmasked = evaluate_lm(shared_lm(arch), tokenizer, TEXTS, task="lm", batch_size=3)
        assert baseline == {"perplexity": unmasked["perplexity"], "token_accuracy": unmasked["token_accuracy"]}
        assert session.score["perplexity"] != baseline["perplexity"]  # the mask changed something
        assert session.evaluate()["perplexity"] == reference["perplexity"]
    finally:
        session.close()


def test_a_language_model_session_has_no_classes_and_says_what_it_scores(tokenizer):
    session = open_session("gpt2", tokenizer, live=False)
    try:
        assert session.task == "causal_lm"
        assert ModelSession(shared_lm("gpt2"), tokenizer, TEXTS, live=False).batch_size == LIVE_LM_BATCH_SIZE
        assert session.metric_names == ["perplexity", "token_accuracy"]
        assert session.label_names == [] and session.labels is None
        assert set(session.baseline_score) == {"perplexity", "token_accuracy"}
        session.toggle_head(1, 1)
        assert session.predictions is None and session.baseline_predictions is None and session.flipped == []
        assert session.example_prediction is None and session.example_label is None
        assert session.precision == "fp32"
        assert session.tokens  # the shown text's attention is captured as for a classifier
        assert session.heads_note == ""
    finally:
        session.close()
    masked = open_session("bert", tokenizer, live=False, task=None)  # a masked LM with no task: its own objective
    try:
        assert masked.task == "masked_lm"
    finally:
        masked.close()


def test_the_live_score_is_estimated_first_then_exact(tokenizer):
    session = open_session("gpt2", tokenizer, batch_size=2)  # 4 batches: the first one gives an estimate
    try:
        assert session.wait(60)
        seen = []
        session.observe(lambda change: seen.append((session.score_is_estimate, dict(session.score))), "score")
        session.toggle_head(2, 2)
        assert session.wait(60)
        estimates = [score for is_estimate, score in seen if is_estimate]
        assert estimates and set(estimates[0]) == {"perplexity", "token_accuracy"}
        assert seen[-1][0] is False and not session.score_is_estimate
        assert session.score == {k: v for k, v in evaluate_lm(shared_lm("gpt2"), tokenizer, TEXTS, mask=session.mask,
                                                              batch_size=2).items() if k in session.score}
    finally:
        session.close()


def test_grouped_query_attention_is_named_in_the_mask_grid_title(tokenizer):
    from bertology_widgets.widgets.head_mask_grid import HeadMaskGrid

    session = open_session("llama-gqa", tokenizer, live=False)
    try:
        assert "query heads" in session.heads_note and "key/value heads" in session.heads_note
        grid = HeadMaskGrid(session)
        assert "query heads" in grid.grid.fig.title
    finally:
        session.close()


def test_the_dashboard_builds_on_a_language_model_and_colours_perplexity_the_right_way(tokenizer):
    from bertology_widgets import Dashboard

    session = open_session("gpt2", tokenizer, live=False)
    try:
        dashboard = Dashboard(session)
        html = dashboard.readout.html.value
        assert "perplexity" in html and "token_accuracy" in html
        objective = session.bound.objective
        assert objective.improvement(2.0, 1.0, "perplexity") < 0 < objective.improvement(2.0, 1.0, "token_accuracy")
        session.mask = np.zeros((session.num_layers, session.num_heads))
        html = dashboard.readout.html.value
        worse = session.score["perplexity"] > session.baseline_score["perplexity"]
        row = html.split("perplexity", 1)[1].split("</tr>", 1)[0]
        assert ("#b91c1c" if worse else "#15803d") in row  # red where perplexity went up
    finally:
        session.close()


def test_a_language_model_opened_for_a_glue_task_raises_the_clear_error(tokenizer, tmp_path):
    with pytest.raises(NoClassificationHeadError, match='task="lm"'):
        ModelSession(shared_lm("gpt2"), tokenizer, TEXTS, task="sst2", live=False)
    folder = tmp_path / "gpt2-lm"
    shared_lm("gpt2").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(NoClassificationHeadError, match="bertology finetune"):
        ModelSession.from_pretrained(str(folder), task="sst2", live=False)
    session = ModelSession.from_pretrained(str(folder), task="causal_lm", max_examples=4, live=False)
    try:
        assert session.task == "causal_lm" and len(session.examples) == 4
        assert "UD English-EWT" in session.data_source
    finally:
        session.close()


def test_bf16_is_refused_for_a_live_language_model_with_the_way_to_get_it(tokenizer):
    with pytest.raises(ValueError, match="evaluate --task lm --precision bf16"):
        open_session("gpt2", tokenizer, live=False, precision="bf16")


def test_the_settled_score_equals_bertology_evaluate_on_the_saved_mask(tokenizer, tmp_path, capsys):
    from bertology_widgets.cli import main

    folder = tmp_path / "llama-lm"
    shared_lm("llama-gqa").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    session = open_session("llama-gqa", tokenizer)
    try:
        session.toggle_head(1, 2)
        session.toggle_head(2, 0)
        assert session.wait(60)
        np.save(tmp_path / "mask.npy", session.mask)
    finally:
        session.close()
    assert main(["evaluate", "--model", str(folder), "--task", "lm", "--max-examples", str(len(TEXTS)),
                 "--batch-size", str(session.batch_size), "--mask", str(tmp_path / "mask.npy"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["perplexity"], result["token_accuracy"]) == (session.score["perplexity"],
                                                                session.score["token_accuracy"])


def test_a_second_session_takes_the_language_models_baseline_from_the_shared_cache(tokenizer):
    first = open_session("bert", tokenizer)
    try:
        assert first.wait(60) and not first.live.baseline_from_cache
        baseline = dict(first.baseline_score)
    finally:
        first.close()
    second = open_session("bert", tokenizer)
    try:
        assert second.wait(60) and second.live.baseline_from_cache
        assert second.baseline_score == baseline
        second.toggle_head(0, 0)
        assert second.wait(60) and second.score["perplexity"] != baseline["perplexity"]
    finally:
        second.close()
