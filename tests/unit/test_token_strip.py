"""The token strip and the attention view's measure picker: set session traits, assert widget state."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_live_loop import recorder  # noqa: F401  (the comm-level recorder fixture)

from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import AttentionGrid, Dashboard, TokenStrip

TEXT = "a charming and affecting journey"


@pytest.fixture()
def session(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(32), task="sst2",
                     batch_size=16, live=False)
    s.text = TEXT
    yield s
    s.close()


def test_the_strip_colours_each_word_and_follows_the_mask(session):
    strip = TokenStrip(session)
    assert strip.strip.value == "" and not strip.explain.value
    strip.explain.value = True  # the button turns explanations on
    assert session.explain and session.wait_explained(60)
    first = strip.strip.value
    assert first.count('class="bw-token"') == 5 and "charming" in first and "title=" in first
    assert "rgba(" in first and "bw-colour-bar" in strip.colour_bar.value
    session.toggle_head(2, 1)
    assert session.wait_explained(60)
    assert strip.strip.value != first and "under the mask" in strip.strip.value
    strip.compare.value = True
    assert session.explain_unmasked and session.wait_explained(60)
    assert strip.unmasked_strip.value.count('class="bw-token"') == 5 and "change" in strip.strip.value
    strip.method.value = "occlusion"
    assert session.explain_method == "occlusion" and session.wait_explained(60)
    assert "replaced by [MASK]" in strip.status.value
    strip.method.value = "integrated_gradients"
    assert session.wait_explained(60) and "completeness gap" in strip.status.value
    strip.close()


def test_the_attention_view_draws_norms_and_rollout(session):
    grid = AttentionGrid(session)
    weights = np.array(grid.grid.heat.color)
    session.attention_measure = "norm"  # computes the explanation without the strip
    assert session.wait_explained(60)
    np.testing.assert_allclose(grid.grid._values, session.norms["head"][session.layer, session.head])
    assert "f(x)" in grid.grid.fig.title and grid.measure_picker.value == "norm"
    grid.measure_picker.value = "rollout"
    assert session.attention_measure == "rollout"
    session.layer = 2
    np.testing.assert_allclose(grid.grid._values, session.rollout[2])
    grid.measure_picker.value = "weight"
    np.testing.assert_allclose(grid.grid._values, session.attention)
    assert not np.array_equal(weights, grid.grid.heat.color) or session.layer == 0
    grid.close()


def test_a_live_dashboard_writes_token_scores_on_the_main_thread(recorder, tokenizer):  # noqa: F811
    s = ModelSession(tiny_model("bert", num_layers=4, initializer_range=1.0), tokenizer, tiny_examples(64),
                     task="sst2", batch_size=16, live=True)
    dashboard = Dashboard(s)
    try:
        assert s.wait(60)
        recorder.clear()
        dashboard.token_strip.explain.value = True
        rng = np.random.default_rng(3)
        for _ in range(10):
            dashboard.mask_grid.grid.click(int(rng.integers(4)), int(rng.integers(4)))
        assert s.wait_explained(120) and s.token_scores
        before = dashboard.token_strip.strip.value
        dashboard.mask_grid.grid.click(3, 0)
        assert s.wait_explained(120)
        assert dashboard.token_strip.strip.value != before
        names = {n[1] for n in recorder.notifications}
        assert {"token_scores", "rollout", "norms"} <= names
        assert recorder.updates_of(dashboard.token_strip.strip, "value")
        notes, messages = recorder.off_main()
        assert notes == [] and messages == [], "a worker assigned a trait or sent a widget message"
        assert all(n[-1] is threading.main_thread() for n in recorder.notifications if n[1] == "token_scores")
    finally:
        dashboard.close()
        s.close()
