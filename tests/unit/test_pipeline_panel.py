"""The "Pipeline: what each layer knows" panel: set traits, assert marks (unit, no browser)."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.widgets import Dashboard
from bertology_widgets.widgets.pipeline_panel import PipelinePanel

QUICK = dict(max_sentences=12, max_iter=5)


@pytest.fixture()
def session(tiny_session):
    return tiny_session


def test_the_panel_draws_lines_tooltips_markers_and_the_mix_heat_map(session):
    panel = PipelinePanel(session, ("upos", "deprel"), background=False, **QUICK)
    result = panel.run()
    assert panel.lines.y.shape == (2, 3) and list(panel.lines.labels) == ["upos", "deprel"]
    np.testing.assert_allclose(panel.lines.y, result.normalised_accuracy)
    assert panel.points.names[0] == f"upos L0: {result.accuracy[0, 0]:.3f} (majority {result.majority[0]:.3f})"
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
    dashboard.close()
