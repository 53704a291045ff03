"""The session's array traits: typed, shape- and dtype-checked, each with help text giving its shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from traitlets import HasTraits, TraitError

from bertology_widgets.core.pruning import expected_params_after
from bertology_widgets.session import ModelSession
from bertology_widgets.session.traits import array_trait
from bertology_widgets.testing import tiny_examples, tiny_model

ARRAY_TRAITS = ("mask", "token_type_ids", "attention", "attentions", "hidden_states", "scored_mask", "predictions",
                "baseline_predictions", "labels", "importance", "entropy", "head_means", "roles")


class Holder(HasTraits):
    grid = array_trait("layers", "heads", help="A grid")
    labels = array_trait("n", kinds="iu", help="Labels")


def test_array_trait_checks_dimensions_and_kind_and_names_them():
    holder = Holder()
    assert holder.grid is None
    holder.grid = [[1.0, 2.0]]
    assert isinstance(holder.grid, np.ndarray) and holder.grid.shape == (1, 2)
    with pytest.raises(TraitError, match=r"grid must be an array of shape \(layers, heads\); got shape \(3,\)"):
        holder.grid = np.ones(3)
    with pytest.raises(TraitError, match="labels must hold int or unsigned int values; got dtype float64"):
        holder.labels = np.ones(3)
    holder.grid = None
    assert holder.grid is None
    assert "shape (layers, heads)" in Holder.class_traits()["grid"].help


@pytest.fixture(scope="module")
def session(tokenizer):
    s = ModelSession(tiny_model("bert"), tokenizer, tiny_examples(8), task="sst2", live=False)
    yield s
    s.close()


def test_every_array_trait_is_typed_with_its_shape_in_help(session):
    for name in ARRAY_TRAITS:
        trait = session.traits()[name]
        assert type(trait).__name__ != "Any", name
        assert "shape (" in trait.help, name
    assert session.attention.shape == (len(session.tokens),) * 2
    assert session.hidden_states.ndim == 3 and session.labels.shape == (8,)


def test_mask_takes_tensors_and_lists_and_keeps_its_shape_error(session):
    session.mask = torch.ones(3, 4)
    assert session.mask.dtype == np.float32 and not session.mask.flags.writeable
    session.mask = [[1, 0, 1, 1]] + [[1] * 4] * 2
    assert session.mask[0, 1] == 0
    with pytest.raises(TraitError, match="shape"):
        session.mask = torch.ones(6, 8)
    session.reset_mask()


def test_a_misshapen_analysis_result_is_refused(session):
    with pytest.raises(TraitError, match=r"importance must be an array of shape \(layers, heads\)"):
        session.importance = np.ones(12)
    with pytest.raises(TraitError, match="roles must hold str or object values"):
        session.roles = np.ones((3, 4))
    assert session.importance is None


def test_the_session_answers_what_views_ask_of_the_model(session):
    assert not session.causal and session.layer_notes == ["", "", ""]
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1, :2] = 0
    now, after = session.pruned_params(mask)
    assert now == sum(p.numel() for p in session.model.parameters())
    assert after == expected_params_after(session.bound, mask) < now
    assert session.pruned_params() == (now, now)
