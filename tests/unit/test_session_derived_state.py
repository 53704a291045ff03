"""Derived state lives in one place: ``head_masked`` and ``masked_count`` follow ``mask``, ``layer`` and ``head``;
views read the session's traits (``masked_count``, ``model_name``) instead of computing them; views start no
work from a redraw."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import Dashboard, HeadMaskGrid, ScoreReadout


@pytest.fixture(scope="module")
def session(tokenizer):
    s = ModelSession(tiny_model("bert"), tokenizer, tiny_examples(8), task="sst2", live=False)
    yield s
    s.close()


def test_masked_count_and_head_masked_follow_the_mask_and_the_selection(session):
    session.reset_mask()
    assert session.masked_count == 0 and not session.head_masked
    session.layer, session.head = 1, 2
    session.toggle_head(1, 2)
    session.toggle_head(0, 0)
    assert session.masked_count == 2 and session.head_masked
    session.head = 3
    assert not session.head_masked and session.masked_count == 2
    session.toggle_head(session.layer, session.head)  # head_masked is derived: toggle_head changes it
    assert session.mask[1, 3] == 0 and session.masked_count == 3
    session.reset_mask()
    assert session.masked_count == 0 and not session.head_masked


def test_the_readout_shows_the_sessions_masked_count(session):
    session.reset_mask()
    readout = ScoreReadout(session)
    session.toggle_head(2, 1)
    assert "1 of 12 heads masked" in readout.html.value
    readout.close()
    session.reset_mask()


def test_the_dashboard_header_names_the_model_from_the_session(session):
    assert session.model_name  # a tiny random model still has a name (its type)
    board = Dashboard(session)
    assert session.model_name in board.children[0].value
    board.close()


def test_a_redraw_of_the_mask_grid_starts_no_analysis(session):
    grid = HeadMaskGrid(session)
    started = []
    original = session.compute_roles
    session.compute_roles = lambda *a, **k: started.append(1)  # instance attribute: only this session
    try:
        grid.colour_by = "role"
        assert started == [1]  # choosing the colouring asks once
        session.toggle_head(0, 1)  # a redraw while the roles are missing asks nothing
        session.toggle_head(0, 1)
        assert started == [1]
    finally:
        session.compute_roles = original
        grid.close()
        session.reset_mask()


def test_load_state_round_trips(session, tmp_path):
    session.toggle_head(1, 1)
    session.layer, session.head, session.example_index = 2, 3, 4
    session.save_state(tmp_path / "state.json")
    session.reset_mask()
    session.layer, session.head, session.example_index = 0, 0, 0
    session.load_state(tmp_path / "state.json")
    assert (session.layer, session.head, session.example_index, session.masked_count) == (2, 3, 4, 1)
    assert np.array_equal(session.scored_mask, session.mask)
    session.reset_mask()
