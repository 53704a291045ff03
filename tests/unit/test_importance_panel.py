"""ImportancePanel without a browser: click buttons, move the slider, set session traits; assert traits."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets.importance_panel import ImportancePanel, fraction_masked

LAYERS, HEADS = 3, 4


@pytest.fixture()
def session(request, tokenizer):
    # A large initialiser makes single heads matter, so the curve really falls.
    model = tiny_model("bert", num_layers=LAYERS, num_heads=HEADS, initializer_range=1.0)
    live = getattr(request, "param", False)
    s = ModelSession(model, tokenizer, tiny_examples(24), task="sst2", batch_size=8, live=live)
    assert s.wait(60)  # a live session's baseline lands through the dispatcher
    yield s
    s.close()


def settle(session, timeout: float = 120.0) -> None:
    """Wait for the background analysis to finish."""
    session.wait(timeout, analysis=True)  # applies the worker's results on this (the main) thread
    assert not session.analysis_busy, "the analysis did not finish in time"


def test_importance_map_appears_in_the_panel_and_pruning_is_costed(session):
    panel = ImportancePanel(session)
    assert panel.importance_map.layout.display == "none" and "No head is masked" in panel.pruning.value
    session.importance = np.ones((session.num_layers, session.num_heads))
    assert panel.importance_map.layout.display is None and panel.importance_map.colour_by == "importance"
    session.toggle_head(0, 0)
    assert "Pruning the 1 masked heads would keep" in panel.pruning.value


def test_importance_button_fills_importance_and_enables_the_slider(session):
    panel = ImportancePanel(session, max_examples=16)
    assert panel.slider.disabled and panel.slider.max == LAYERS * HEADS
    panel.importance_button.click()
    assert panel.importance_button.disabled and panel.curve_button.disabled  # busy until the thread is done
    assert panel.progress.layout.display is None  # shown while busy, and takes no room otherwise
    settle(session)
    assert session.analysis_error == "" and session.importance.shape == (LAYERS, HEADS)
    assert not panel.slider.disabled and not panel.importance_button.disabled and not panel.curve_button.disabled
    assert panel.progress.layout.display == "none" and panel.progress.value == 1.0
    assert panel.status.value == session.analysis_status == "head importance: done"


def test_slider_masks_the_least_important_heads_and_follows_other_edits(session):
    panel = ImportancePanel(session)
    importance = np.random.default_rng(0).permutation(LAYERS * HEADS).reshape(LAYERS, HEADS).astype(float)
    session.importance = importance
    assert not panel.slider.disabled
    panel.slider.value = 3
    least = np.argsort(importance.reshape(-1))[:3]
    assert int((session.mask == 0).sum()) == 3 and (session.mask.reshape(-1)[least] == 0).all()
    assert panel.note.value == ""
    # An edit elsewhere moves the slider to the count but does not re-mask.
    kept = tuple(np.argwhere(session.mask == 1)[-1])
    edited = session.mask.copy()
    edited[kept] = 0
    session.set_head(*kept, 0.0)
    assert panel.slider.value == 4
    np.testing.assert_array_equal(session.mask, edited)
    assert "not the 4 least important" in panel.note.value
    panel.slider.value = 2
    assert int((session.mask == 0).sum()) == 2 and (session.mask.reshape(-1)[least[:2]] == 0).all()
    assert panel.note.value == ""
    session.reset_mask()
    assert panel.slider.value == 0 and session.error == ""


@pytest.mark.parametrize("session", [False, True], ids=["sync", "live"], indirect=True)
def test_current_point_follows_the_mask_and_score(session):
    panel = ImportancePanel(session)
    metric = panel.metric
    assert metric == session.metric_names[0]
    assert list(panel.current_point.x) == [0.0] and list(panel.current_point.y) == [session.score[metric]]
    for mask in (np.eye(LAYERS, HEADS) == 0, np.zeros((LAYERS, HEADS))):
        session.mask = mask.astype(np.float32)
        assert session.wait(30)
        assert panel.current_point.x[0] == pytest.approx(1 - session.mask.mean())
        assert panel.current_point.y[0] == pytest.approx(session.score[metric])
    assert fraction_masked(session.mask) == 1.0
    session.score_is_estimate = True
    assert panel.current_point.fill is False
    session.score_is_estimate = False
    assert panel.current_point.fill is True


def test_masking_curve_is_drawn_with_its_random_baseline_and_threshold(session):
    panel = ImportancePanel(session)
    assert not panel.curve_line.visible and not panel.random_band.visible and not panel.threshold_line.visible
    session.compute_masking_curve(background=False, masking_amount=0.25, masking_threshold=0.5, random_seeds=(0, 1))
    assert session.analysis_error == ""
    curve, metric = session.curve, session.curve["metric"]
    steps, baseline = curve["steps"], curve["random_baseline"]["steps"]
    assert panel.curve_line.visible and panel.random_line.visible and panel.random_band.visible
    np.testing.assert_allclose(panel.curve_line.x, [s["fraction_masked"] for s in steps])
    np.testing.assert_allclose(panel.curve_line.y, [s["score"][metric] for s in steps])
    np.testing.assert_allclose(panel.random_line.x, [s["fraction_masked"] for s in baseline])
    np.testing.assert_allclose(panel.random_line.y, [s["mean"] for s in baseline])
    np.testing.assert_allclose(panel.random_band.y, [[s["min"] for s in baseline], [s["max"] for s in baseline]])
    np.testing.assert_allclose(panel.threshold_line.y, [curve["threshold_score"]] * 2)
    assert panel.y_axis.label == metric and panel.threshold_line.visible
    assert panel.threshold_line.labels == ["50 % of baseline"]
    assert not panel.slider.disabled  # the curve leaves importance behind
    session.curve = {}
    assert not panel.curve_line.visible and not panel.random_line.visible and not panel.threshold_line.visible


def test_analysis_failures_land_in_session_error(session, monkeypatch):
    import bertology_widgets.analyses.importance as importance

    def broken(*args, **kwargs):
        raise RuntimeError("gradients exploded")

    monkeypatch.setattr(importance, "head_importance", broken)
    panel = ImportancePanel(session)
    panel.importance_button.click()
    settle(session)
    assert "gradients exploded" in session.analysis_error and session.importance is None
    assert panel.status.value == "head importance: failed" and panel.slider.disabled
    assert not panel.importance_button.disabled
    session.error, session.analysis_busy = "", True  # a click that slips past the disabled button
    panel.curve_button.click()
    assert "already running" in session.error
    session.analysis_busy = False


def test_closed_panel_no_longer_follows_the_session(session):
    panel = ImportancePanel(session)
    session.importance = np.ones((LAYERS, HEADS))
    panel.close()
    session.toggle_head(0, 0)
    assert panel.slider.value == 0 and session.error == ""
