"""The prediction table, the logit lens panel and the induction colouring of the role map (set traits, assert
traits). The views run over a small facade that mirrors a real prediction part, as the session does."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from traitlets import Any, Bool, HasTraits, Int, Unicode

from bertology_widgets.core.bound import bind
from bertology_widgets.glue import Example
from bertology_widgets.session import ModelSession
from bertology_widgets.session.explanation_part import ShownForExplanation
from bertology_widgets.session.part import Forwarding, mirror, part_traits
from bertology_widgets.session.prediction_part import PredictionPart
from bertology_widgets.testing import tiny_lm, tiny_model
from bertology_widgets.widgets import HeadMaskGrid
from bertology_widgets.widgets.logit_lens_panel import LogitLensPanel
from bertology_widgets.widgets.prediction_table import PredictionTable, is_language_model

LAYERS, HEADS = 3, 4
TEXT = "the film was a charming mess of music and"


class LMSession(HasTraits):
    """What the views read of a language model's session: its mask and the prediction part's mirrors."""

    mask = Any()
    num_layers = Int(LAYERS)
    num_heads = Int(HEADS)
    error = Unicode("")
    causal = Bool(True)
    lm_predictions = mirror(PredictionPart, "lm_predictions")
    lm_predictions_unmasked = mirror(PredictionPart, "lm_predictions_unmasked")
    logit_lens = mirror(PredictionPart, "logit_lens")
    lens_measure = mirror(PredictionPart, "lens_measure")
    show_lens = mirror(PredictionPart, "show_lens")
    prediction_busy = mirror(PredictionPart, "prediction_busy")
    prediction_error = mirror(PredictionPart, "prediction_error")

    def __init__(self, model, tokenizer, text=TEXT):
        super().__init__(mask=np.ones((LAYERS, HEADS), dtype=np.float32))
        self.tokenizer, self.text = tokenizer, text
        bound = bind(model, tokenizer)
        self.prediction = PredictionPart(
            bound=lambda: bound, model_lock=threading.RLock(), post=lambda fn, *args: fn(*args),
            shown=lambda: ShownForExplanation(self.text, None, self.mask, object(), True),
            ablation=lambda: bound.ablation, max_length=64, live=False)
        self._forwarding = Forwarding(self.prediction, self, part_traits(PredictionPart))
        self.observe(lambda _change: self.prediction.refresh(), "mask")
        self.prediction.refresh()

    def toggle_head(self, layer, head):
        mask = np.array(self.mask)
        mask[layer, head] = 1 - mask[layer, head]
        self.mask = mask


def lm(arch="gpt2"):
    return tiny_lm(arch, num_layers=LAYERS, num_heads=HEADS, initializer_range=0.2)


def test_the_table_shows_masked_and_unmasked_and_a_click_changes_only_the_masked_column(tokenizer):
    session = LMSession(lm(), tokenizer)
    assert is_language_model(session)
    table = PredictionTable(session)
    first = table.table.value
    slot = session.lm_predictions["slots"][0]
    assert "next token" in first and f"{slot['probs'][0]:.3f}" in first
    assert first.count("<tr>") == 6  # a header and the top 5
    spans = table.strip.value.count('class="bw-token"')
    assert spans == len(session.lm_predictions["tokens"]) - 1 and "surprisal" in table.colour_bar.value
    unmasked = session.lm_predictions_unmasked
    session.toggle_head(0, 1)
    assert table.table.value != first and session.lm_predictions_unmasked is unmasked
    assert "unmasked +" in table.strip.value and "change" in table.strip.value
    table.close()


def test_a_masked_lm_table_shows_fills_or_says_how_to_add_a_mask_token(tokenizer):
    session = LMSession(lm("bert"), tokenizer, "the film was [MASK] and [MASK]")
    table = PredictionTable(session)
    assert table.table.value.count("fill of [MASK]") == 2 and table.strip.value == ""
    session.text = TEXT
    session.prediction.refresh()
    assert table.table.value == "" and "type [MASK]" in table.status.value
    table.close()


def test_the_lens_panel_asks_for_the_lens_draws_it_and_follows_the_mask(tokenizer):
    session = LMSession(lm("llama"), tokenizer)
    assert not session.show_lens
    panel = LogitLensPanel(session)
    assert session.show_lens  # a shown panel asks for it
    lens = session.logit_lens
    pos = len(lens["tokens"])
    np.testing.assert_allclose(panel.grid.heat.color, np.log10(np.array(lens["final_rank"], dtype=float)))
    assert panel.grid.heat.color.shape == (LAYERS + 1, pos) and panel.grid.colour_axis.label.startswith("log")
    assert (panel.grid.heat.color[-1] == 0).all()  # the last row is the model's own prediction: rank 1
    assert panel.grid.axes[1].tick_labels["0.5"] == "emb" and "is the top token" in panel.caption.value
    panel.grid.hover(1, pos - 1)
    assert "L0" in panel.grid.tooltip.value and "top:" in panel.grid.tooltip.value
    panel.measure.value = "probability"
    assert session.lens_measure == "probability" and panel.grid.colour_axis.label == "probability"
    np.testing.assert_allclose(panel.grid.heat.color, np.array(lens["final_probs"]))
    before = panel.grid.heat.color.copy()
    session.toggle_head(1, 2)
    assert not np.array_equal(panel.grid.heat.color, before)
    assert session.logit_lens["top_tokens"][:2] == lens["top_tokens"][:2]  # below the masked head's layer
    panel.set_active(False)  # folded: it stops asking
    assert not session.show_lens and session.logit_lens == {}
    panel.close()


@pytest.fixture()
def gpt2_session(tokenizer):
    examples = [Example("a charming film", None, 1, 0), Example("a boring film", None, 0, 1)]
    s = ModelSession(tiny_model("gpt2"), tokenizer, examples, task="sst2", live=False)
    yield s
    s.close()


def test_the_role_map_colours_by_induction_on_causal_models_only(gpt2_session, tokenizer):
    grid = HeadMaskGrid(gpt2_session)
    assert "induction" in [value for _label, value in grid.colour_selector.options]
    scores = np.random.default_rng(0).random((gpt2_session.num_layers, gpt2_session.num_heads))
    gpt2_session.role_measures = {"induction": scores}
    grid.colour_by = "induction"
    np.testing.assert_allclose(grid.grid.heat.color, scores)
    assert grid.grid.colour_axis.label == "induction" and grid.grid.fig.title == "Induction heads"
    grid.close()
    gpt2_session.compute_roles(background=False)  # a causal model's roles carry its induction scores
    assert gpt2_session.role_measures["induction"].shape == (gpt2_session.num_layers, gpt2_session.num_heads)
    assert not is_language_model(gpt2_session)  # a classifier: no predictions, no lens
    bert = ModelSession(tiny_model("bert"), tokenizer, [Example("a film", None, 1, 0)], task="sst2", live=False)
    assert "induction" not in [value for _label, value in HeadMaskGrid(bert).colour_selector.options]
    bert.close()


def test_the_lens_caption_follows_the_last_position_or_the_mask_token():
    from bertology_widgets.widgets.logit_lens_panel import caption

    lens = {"kind": "masked", "tokens": ["[CLS]", "a", "[MASK]", "[SEP]"], "final_rank": [[9, 9, 5, 9], [1, 1, 1, 1]],
            "top_tokens": [[["x"]] * 4, [["y"], ["a"], ["film"], ["."]]]}
    assert "fill of [MASK] at position 2, <b>'film'</b>, is the top token first at L0" in caption(lens, "[MASK]")
    assert "top token" not in caption({**lens, "tokens": ["[CLS]", "a", "b", "[SEP]"]}, "[MASK]")
    assert "next token after the text, <b>'.'</b>" in caption({**lens, "kind": "causal"}, None)
