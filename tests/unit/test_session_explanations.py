"""The session's explanation traits: token_scores, rollout and norms follow the shown input and the mask."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import traitlets

from bertology_widgets.analyses.attention_flow import attention_rollout
from bertology_widgets.analyses.attribution import token_attributions
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model

TEXT = "a charming and affecting journey"


@pytest.fixture(params=[False, True], ids=["inline", "live"])
def session(request, tokenizer):
    model = tiny_model("bert", initializer_range=1.0)
    s = ModelSession(model, tokenizer, tiny_examples(32), task="sst2", batch_size=16, live=request.param)
    yield s
    s.close()


def test_off_by_default_and_on_when_asked(session):
    assert session.explain is False and session.token_scores == {}
    session.text = TEXT
    session.explain = True
    assert session.wait_explained(60)
    scores = session.token_scores
    assert scores["words"] == TEXT.split() and scores["method"] == "grad_x_input" and not scores["masked"]
    assert session.rollout.shape == (3, 7, 7)
    np.testing.assert_allclose(session.rollout, attention_rollout(session.shown.current), atol=1e-6)
    assert session.norms["head"].shape == (3, 4, 7, 7) and session.explanation_error == ""


def test_token_scores_follow_the_mask_and_the_method(session):
    session.text = TEXT
    session.explain = True
    assert session.wait_explained(60)
    before = np.array(session.token_scores["scores"])
    session.toggle_head(2, 1)
    assert session.wait_explained(60)
    after = session.token_scores
    assert after["masked"] and not np.allclose(before, after["scores"])
    reference = token_attributions(session.explanation.bound(), TEXT, method="grad_x_input", mask=session.mask)
    np.testing.assert_allclose(after["scores"], reference.word_scores, atol=1e-5)
    session.explain_method = "ig"
    assert session.explain_method == "integrated_gradients"
    assert session.wait_explained(60)
    assert session.token_scores["method"] == "integrated_gradients"
    assert "completeness_gap" in session.token_scores  # (this deliberately rough model needs many more steps)
    session.explain_unmasked = True
    assert session.wait_explained(60)
    assert session.unmasked_token_scores["words"] == TEXT.split() and not session.unmasked_token_scores["masked"]
    assert session.unmasked_token_scores["target"] == session.token_scores["target"]
    with pytest.raises(traitlets.TraitError, match="unknown attribution method"):
        session.explain_method = "lime"


def test_an_empty_text_clears_the_explanation(session):
    session.explain = True
    assert session.wait_explained(60) and session.token_scores
    session.text = "  "
    assert session.token_scores == {} and session.rollout is None and not session.explanation_busy


def test_every_explanation_write_is_on_the_main_thread(tokenizer, monkeypatch):
    seen = []
    notify = traitlets.HasTraits._notify_observers

    def recording(self, event):
        seen.append((event.get("name"), threading.current_thread()))
        return notify(self, event)

    monkeypatch.setattr(traitlets.HasTraits, "_notify_observers", recording)
    s = ModelSession(tiny_model("bert", num_layers=4, initializer_range=1.0), tokenizer, tiny_examples(64),
                     task="sst2", batch_size=16, live=True)
    try:
        s.explain, s.explain_method = True, "integrated_gradients"
        rng = np.random.default_rng(0)
        for _ in range(20):
            s.toggle_head(int(rng.integers(4)), int(rng.integers(4)))
        assert s.wait_explained(120)
        assert s.token_scores["masked"] == bool((s.mask == 0).any())
        written = {name for name, _ in seen}
        assert {"token_scores", "rollout", "norms"} <= written
        assert [name for name, thread in seen if thread is not threading.main_thread()] == []
    finally:
        s.close()


def test_rollout_leaves_the_masked_heads_out(session):
    session.text = TEXT
    session.explain = True
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, :3] = 0
    session.mask = mask
    assert session.wait_explained(60)
    np.testing.assert_array_equal(session.shown.current.mask, mask)
    attention = session.shown.current.attentions[0, 3]
    first = 0.5 * attention + 0.5 * np.eye(len(session.tokens))
    np.testing.assert_allclose(session.rollout[0], first / first.sum(-1, keepdims=True), atol=1e-6)
