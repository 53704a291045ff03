"""Role colours on the head-mask grid, the ablation toggle and the Patching panel (set traits, assert traits)."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.glue import Example
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_model
from bertology_widgets.widgets import Dashboard, HeadMaskGrid, PatchingPanel
from bertology_widgets.widgets.role_colours import ROLE_NAMES, ROLE_PALETTE

EXAMPLES = [Example("a charming film", None, 1, 0), Example("a boring film", None, 0, 1),
            Example("the plot is long and dull", None, 0, 2), Example("great fun", None, 1, 3)]


@pytest.fixture()
def session(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, EXAMPLES, task="sst2", live=False)
    yield s
    s.close()


def roles_of(session):
    roles = np.full((session.num_layers, session.num_heads), "mixed", dtype=object)
    roles[0, 0], roles[1, 2] = "sep", "prev"
    return roles.astype(str)


def test_role_colouring_legend_and_tooltip(session):
    grid = HeadMaskGrid(session)
    session.roles = roles_of(session)
    grid.colour_selector.value = "role"
    assert grid.colour_by == "role"
    color = grid.grid.heat.color
    assert color[0, 0] == ROLE_NAMES.index("sep") and color[1, 2] == ROLE_NAMES.index("prev")
    assert grid.colours.colors == [ROLE_PALETTE[name] for name in ROLE_NAMES]
    assert grid.colours.min == 0 and grid.colours.max == len(ROLE_NAMES) - 1
    assert "sep (1)" in grid.legend.value and "prev (1)" in grid.legend.value and "mixed (10)" in grid.legend.value
    assert grid.grid.heat.tooltip is grid.role_tooltip
    grid.grid.heat._handle_custom_msgs(None, {"event": "hover", "data": {"row": 1, "column": 2}})
    assert "layer L1, head 2" in grid.role_tooltip.value and "<b>prev</b>" in grid.role_tooltip.value
    grid.colour_by = "mask"
    assert "masked (gate 0)" in grid.legend.value and grid.grid.heat.tooltip is not grid.role_tooltip
    assert not grid.grid.colour_axis.visible  # two gates, two swatches: no colour bar
    grid.close()


def test_picking_role_before_roles_exist_computes_them(session):
    grid = HeadMaskGrid(session)
    grid.colour_by = "role"
    assert session.wait(60, analysis=True)  # the roles are applied on this (the main) thread
    assert session.roles is not None and session.roles.shape == (session.num_layers, session.num_heads)
    assert grid.grid.heat.color.max() <= len(ROLE_NAMES) - 1 and grid.legend.value
    grid.close()


def test_ablation_toggle_follows_the_session(session):
    grid = HeadMaskGrid(session)
    session.compute_head_means(background=False)
    grid.ablation_selector.value = "mean"
    assert session.ablation == "mean"
    session.ablation = "zero"
    assert grid.ablation_selector.value == "zero"
    grid.close()


def test_patching_panel_runs_shows_and_selects(session):
    panel = PatchingPanel(session)
    assert "a charming film" in panel.clean.value and panel.corrupted.value == "a boring film"
    panel.corrupted.value = "a dull film"
    assert session.corrupted_text == "a dull film"
    assert panel.compute() is not None and session.wait(60, analysis=True)  # applied on this (the main) thread
    np.testing.assert_allclose(panel.grid.heat.color, np.nan_to_num(session.patching["grid"]))
    assert session.patching["corrupted"] == "a dull film"
    assert "clean &rarr;" in panel.predictions.value and "best head" in panel.predictions.value
    panel.grid.click(2, 1)
    assert (session.layer, session.head) == (2, 1)
    session.example_index = 1
    assert panel.corrupted.value == "a charming film"  # a new suggestion for the new clean input
    panel.close()


def test_dashboard_has_the_patching_panel(session):
    dashboard = Dashboard(session)
    dashboard.panels.selected_index = 3
    assert dashboard.panels.children[3].children == (dashboard.patching,)
    assert dashboard.panels.get_title(3).startswith("Patching")
    dashboard.close()
