"""A language model's session holds the shown input's predictions and logit lens as traits, live under the mask;
its dashboard has the prediction table and the Logit lens fold, a classifier's has neither."""

from __future__ import annotations

import pytest
from reference import shared_lm

from bertology_widgets import Dashboard, ModelSession
from bertology_widgets.analyses.lm_texts import load_lm_texts
from bertology_widgets.analyses.logit_lens import logit_lens
from bertology_widgets.analyses.predictions import text_predictions
from bertology_widgets.widgets.dashboard import PANELS

TEXTS = load_lm_texts(max_examples=4)
TEXT = "the film was a charming mess of music and"


@pytest.mark.parametrize("live", [True, False])
def test_toggling_a_head_updates_the_masked_predictions_and_leaves_the_unmasked_ones(live, tokenizer):
    session = ModelSession(shared_lm("gpt2"), tokenizer, TEXTS, task="lm", batch_size=2, live=live)
    try:
        session.text = TEXT
        assert session.wait(60)
        expected = text_predictions(session.bound, TEXT, max_length=session.max_length).to_dict()
        assert session.lm_predictions == expected and session.lm_predictions_unmasked == expected
        unmasked = session.lm_predictions_unmasked
        seen = []
        session.observe(lambda change: seen.append(change["name"]), ["lm_predictions", "lm_predictions_unmasked"])
        session.toggle_head(1, 2)
        assert session.wait(60)
        masked = text_predictions(session.bound, TEXT, mask=session.mask, max_length=session.max_length).to_dict()
        assert session.lm_predictions == masked != expected
        assert "lm_predictions_unmasked" not in seen and session.lm_predictions_unmasked is unmasked
        session.show_lens = True
        assert session.wait(60)
        lens = logit_lens(session.bound, TEXT, mask=session.mask).to_dict()
        assert session.logit_lens == lens
    finally:
        session.close()


def test_the_dashboard_of_a_language_model_has_the_table_and_the_lens_fold(tokenizer):
    session = ModelSession(shared_lm("llama"), tokenizer, TEXTS, task="lm", batch_size=2, live=False)
    try:
        dashboard = Dashboard(session)
        assert dashboard.example.predictions is not None and dashboard.example.predictions.table.value
        titles = [dashboard.panels.get_title(i) for i in range(len(dashboard.panel_specs))]
        assert len(titles) == len(PANELS) + 1 and titles[-1].startswith("Logit lens")
        assert not session.show_lens  # folded: not computed
        dashboard.panels.selected_index = len(PANELS)
        assert session.show_lens and dashboard.logit_lens.grid.heat.color.shape[0] == session.num_layers + 1
        dashboard.panels.selected_index = None
        assert not session.show_lens
        dashboard.close()
    finally:
        session.close()
