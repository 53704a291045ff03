"""The shared figure style: one layer naming, colour-bar margins, symmetric scales, empty panels, curve progress."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.widgets._style import colour_bar_margin, legend_html, state_at, state_names, symmetric_range
from bertology_widgets.widgets.importance_panel import ImportancePanel, curve_forecast, curve_progress, curve_steps
from bertology_widgets.widgets.layer_probe import LayerProbe
from bertology_widgets.widgets.patching_panel import PatchingPanel
from bertology_widgets.widgets.pipeline_panel import PipelinePanel


@pytest.fixture
def session(tiny_session):
    return tiny_session


def test_one_layer_naming():
    assert state_names(3) == ["emb", "L0", "L1", "L2"]
    assert [state_at(p) for p in (0, 1, 3, 2.4, 0.5, float("nan"))] == ["emb", "L0", "L2", "L1.40", "emb+0.50", "-"]


def test_a_colour_bar_margin_fits_its_longest_label():
    assert colour_bar_margin("s_l") == colour_bar_margin() == 84
    assert colour_bar_margin("importance", "nats") > colour_bar_margin("nats")


def test_a_diverging_range_is_symmetric_around_zero():
    assert symmetric_range([-0.02, 0.52, 0.1]) == (-0.52, 0.52)
    assert symmetric_range([0.0, 0.0]) == (-1.0, 1.0)


def test_a_legend_names_each_key():
    text = legend_html([("importance order", "#1f77b4", "line"), ("expected layer", "\u25bc")])
    assert "importance order" in text and "\u25bc" in text and "border-top:2px solid #1f77b4" in text
    assert legend_html([]) == ""


def test_the_masking_curve_says_its_step_and_the_time_left():
    assert curve_steps(72) == 10  # 7 heads a step, at most 71 masked
    assert curve_progress(0.0, 9, 0.0).startswith("masking curve: step 1 of 9")
    line = curve_progress(0.25, 9, 60.0)
    assert "step" in line and "of 9" in line and "about 3 min left" in line
    assert "random-order baseline" in curve_progress(0.75, 9, 300.0)
    assert "9 steps over 872 examples" in curve_forecast(9, 872, None)
    assert "likely about" in curve_forecast(9, 872, 10.0)


def test_empty_panels_draw_nothing_and_say_what_to_press(session):
    importance, patching = ImportancePanel(session), PatchingPanel(session)
    pipeline, probe = PipelinePanel(session), LayerProbe(session)
    for view, press in ((importance, "Compute importance"), (patching, "Patch"), (pipeline, "Compute"),
                        (probe, "Train probes")):
        assert view.empty.layout.display is None and f"Press <b>{press}</b>" in view.empty.value
    assert importance.chart.layout.display == "none" and importance.importance_map.layout.display == "none"
    assert patching.figure.layout.display == "none"
    assert pipeline.plots.children == () and probe.chart.layout.display == "none"
    assert importance.progress.layout.display == "none"  # a hidden bar takes no room
    assert "steps over" in importance.forecast.value
    session.importance = np.ones((session.num_layers, session.num_heads))
    assert importance.empty.layout.display == "none" and importance.importance_map.layout.display is None
    for view in (importance, patching, pipeline, probe):
        view.close()


def test_patching_colours_on_a_symmetric_scale(session):
    panel = PatchingPanel(session)
    grid = np.full((session.num_layers, session.num_heads), 0.1)
    grid[0, 0], grid[1, 1] = -0.02, 0.52
    session.patching = {"grid": grid, "clean_prediction": 0, "corrupted_prediction": 1}
    assert (panel.colours.min, panel.colours.max, panel.colours.mid) == (-0.52, 0.52, 0.0)
    assert panel.figure.layout.display is None and panel.empty.layout.display == "none"
    panel.close()
