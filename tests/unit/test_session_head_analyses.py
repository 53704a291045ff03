"""ModelSession: the ablation mode, head roles and patching traits (set traits, assert traits)."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.analyses.ablation import head_output_means
from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.analyses.head_roles import ROLES, head_roles
from bertology_widgets.analyses.patching import patch_heads
from bertology_widgets.core.bound import bind
from bertology_widgets.glue import Example
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture()
def session(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(), task="sst2",
                     batch_size=16)
    yield s
    s.close()


def finish(session, thread):
    """Wait for an analysis started with ``background=True``; its result is applied on this (the main) thread."""
    assert thread is not None
    assert session.wait(60, analysis=True) and not session.analysis_busy


def test_mean_ablation_is_computed_once_and_the_live_score_follows_it(session):
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1] = 0.0
    session.mask = mask
    assert session.wait()
    zero_score = dict(session.score)
    finish(session, session.compute_head_means(background=True))
    means = session.head_means
    np.testing.assert_allclose(means, head_output_means(session.model, session.tokenizer, session.examples,
                                                        batch_size=16), rtol=1e-5, atol=1e-6)
    session.ablation = "mean"
    # the ablation lives on the session's bound model, not on the user's model
    assert session.bound.ablation[0] == "mean" and "_bertology_ablation" not in vars(session.model)
    assert session.wait()
    bound = bind(session.model, session.tokenizer, "sst2")
    bound.set_ablation("mean", means)
    expected = evaluate(bound, session.examples, mask=mask, batch_size=16)
    assert session.score["accuracy"] == expected["accuracy"]
    assert session.head_means is means  # not recomputed
    session.ablation = "zero"
    assert session.bound.ablation[0] == "zero" and session.wait()
    assert session.score == zero_score


def test_switching_to_mean_without_means_computes_them_in_the_background(session):
    session.ablation = "mean"
    assert session.wait(60, analysis=True)
    assert session.head_means is not None and session.bound.ablation[0] == "mean"
    assert session.analysis_error == ""


def test_roles_are_computed_like_the_engine(session):
    session.compute_roles(background=False)
    expected = head_roles(session.model, session.tokenizer, session.examples)
    assert session.roles.shape == (3, 4) and set(session.roles.ravel()) <= set(ROLES)
    assert session.roles.tolist() == expected.roles.tolist()
    np.testing.assert_allclose(session.role_measures["cls"], expected.measures["cls"])


def test_a_corrupted_partner_is_suggested_and_patching_fills_the_trait(session, tokenizer):
    examples = [Example("a charming film", None, 1, 0), Example("the plot is long and dull", None, 1, 1),
                Example("a boring film", None, 0, 2), Example("great", None, 0, 3)]
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, examples, task="sst2", live=False)
    try:
        assert s.corrupted_text == "a boring film"  # same token length, the other label
        s.example_index = 1
        assert s.corrupted_text == "the plot is long and charming"  # no partner: a sentiment word swapped
        s.text = "no opinion here"
        assert s.corrupted_text == ""
        s.example_index = 0
        s.compute_patching(background=False)
        np.testing.assert_allclose(s.patching["grid"], patch_heads(s.model, tokenizer, s.text, s.corrupted_text))
        assert s.patching["clean"] == "a charming film" and s.patching["corrupted"] == "a boring film"
        with pytest.raises(ValueError, match="corrupted input"):
            s.compute_patching(corrupted="  ", background=False)
    finally:
        s.close()
