"""The "Pipeline: what each layer knows" panel: set traits, assert marks (unit, no browser)."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.analyses.pipeline import PipelineResult
from bertology_widgets.widgets import Dashboard
from bertology_widgets.widgets.pipeline_panel import Y_FLOOR, Y_LOW, PipelinePanel

QUICK = dict(max_sentences=12, max_iter=5)


@pytest.fixture()
def session(tiny_session):
    return tiny_session


def test_the_panel_draws_lines_tooltips_markers_and_the_mix_heat_map(session):
    panel = PipelinePanel(session, ("upos", "deprel"), background=False, **QUICK)
    result = panel.run()
    assert panel.lines.y.shape == (2, 3) and list(panel.lines.labels) == ["upos", "deprel"]
    np.testing.assert_allclose(panel.lines.y, result.normalised_accuracy)
    assert panel.points.names[0] == f"upos emb: {result.accuracy[0, 0]:.3f} (majority {result.majority[0]:.3f})"
    np.testing.assert_allclose(panel.mix.heat.color, result.mix_weights)
    assert panel.mix.colour_axis.visible and panel.mix.colour_axis in panel.mix.fig.axes  # the colour bar
    assert panel.markers_expected.visible and len(panel.markers_expected.x) == 2
    np.testing.assert_allclose(panel.markers_expected.x, result.expected_layer)
    assert "upos" in panel.status.value and "changed since" not in panel.status.value
    assert not panel.unmasked_lines.visible


def test_a_mask_change_is_flagged_and_a_recompute_can_overlay_the_unmasked_result(session):
    panel = PipelinePanel(session, ("upos",), background=False, **QUICK)
    panel.run()
    mask = np.ones((2, 4), dtype=np.float32)
    mask[1] = 0
    session.mask = mask
    assert "The mask has changed since" in panel.status.value
    panel.button.click()  # background=False: computed and applied at once
    assert panel.result.heads_masked == 4 and "changed since" not in panel.status.value
    panel.overlay_toggle.value = True
    assert panel.overlay and panel.unmasked_lines.visible
    np.testing.assert_allclose(np.ravel(panel.unmasked_lines.y), panel.unmasked.normalised_accuracy[0])


def test_the_dashboard_has_the_panel_folded_and_computes_nothing(session):
    dashboard = Dashboard(session)
    pipeline = dashboard.pipeline
    index = [fold.children for fold in dashboard.panels.children].index((pipeline,))
    assert dashboard.panels.get_title(index) == "Pipeline: what each layer knows"
    assert dashboard.panels.selected_index is None and session.pipeline is None and not session.analysis_busy
    assert pipeline.plots.children == ()  # a figure drawn folded has no size: it joins the page when opened
    dashboard.panels.selected_index = index
    assert pipeline.plots.children == () and "Press <b>Compute</b>" in pipeline.empty.value  # nothing to draw yet
    pipeline.tasks, pipeline.options = ("upos",), dict(QUICK)
    pipeline.run()
    assert pipeline.plots.children == (pipeline.fig, pipeline.legend, pipeline.mix.fig)
    assert pipeline.empty.layout.display == "none"
    dashboard.panels.selected_index = None
    assert pipeline.plots.children == (pipeline.fig, pipeline.legend, pipeline.mix.fig)
    dashboard.close()


def test_a_panel_shown_on_its_own_has_its_figures(session):
    panel = PipelinePanel(session, ("upos",), background=False, **QUICK)
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()
    panel.run()
    assert panel.plots.children == (panel.fig, panel.legend, panel.mix.fig)
    panel.close()


def made_up_result(accuracy) -> PipelineResult:
    """A two-task result over 2 layers with these accuracies ``(2, 3)`` and majority baselines of 0.5."""
    accuracy = np.asarray(accuracy, dtype=float)
    return PipelineResult(tasks=("upos", "deprel"), accuracy=accuracy, majority=np.array([0.5, 0.5]),
                          mix_weights=np.full((2, 3), 1 / 3), mix_gamma=np.ones(2), mix_accuracy=accuracy.max(1),
                          cumulative=np.maximum.accumulate(accuracy, axis=1), n_train=np.array([10, 10]),
                          n_test=np.array([5, 5]))


def test_probes_below_their_majority_baseline_are_drawn_inside_the_plot(session):
    panel = PipelinePanel(session, ("upos", "deprel"), background=False, **QUICK)
    panel.result = made_up_result([[0.45, 0.6, 0.7],  # upos: layer 0 a little below its baseline (-0.25)
                                   [0.0, 0.52, 0.55]])  # deprel: layer 0 ten times further below than the best is above
    low = panel.y_scale.min
    assert Y_FLOOR - 0.1 < low < -0.25  # the axis went down to show them, with its ticks
    assert list(panel.fig.axes[1].tick_values) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    np.testing.assert_allclose(panel.lines.y, [[-0.25, 0.5, 1.0], [Y_FLOOR, 0.4, 1.0]])  # the far one on the floor
    assert panel.points.y.min() >= low and panel.lines.y.min() >= low
    assert panel.points.names[3] == "deprel emb: 0.000 (majority 0.500)"  # the tooltip keeps the raw accuracy
    panel.result = made_up_result([[0.5, 0.6, 0.7], [0.5, 0.52, 0.55]])
    assert panel.y_scale.min == Y_LOW  # none below: the axis goes back up
    panel.close()
