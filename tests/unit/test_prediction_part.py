"""The prediction part on its own, without a session: the shown input's LM predictions and logit lens."""

from __future__ import annotations

import threading

import numpy as np

from bertology_widgets.analyses.predictions import text_predictions
from bertology_widgets.core.bound import bind
from bertology_widgets.session.dispatcher import Dispatcher
from bertology_widgets.session.explanation_part import ShownForExplanation
from bertology_widgets.session.prediction_part import PredictionPart
from bertology_widgets.testing import tiny_lm, tiny_model

LAYERS, HEADS = 3, 4
TEXT = "the film was a charming mess of music and"


class Shown:
    """What the part is told to show; a test changes it as the session would."""

    def __init__(self, text=TEXT):
        self.text, self.mask, self.ready = text, np.ones((LAYERS, HEADS), dtype=np.float32), True

    def __call__(self) -> ShownForExplanation:
        return ShownForExplanation(self.text, None, self.mask, object() if self.text.strip() else None, self.ready)


def part_for(model, tokenizer, shown, live=False, post=lambda fn, *args: fn(*args)) -> PredictionPart:
    bound = bind(model, tokenizer)
    return PredictionPart(bound=lambda: bound, model_lock=threading.RLock(), post=post, shown=shown,
                          ablation=lambda: bound.ablation, max_length=64, live=live)


def lm(arch="gpt2"):
    return tiny_lm(arch, num_layers=LAYERS, num_heads=HEADS, initializer_range=0.2)


def test_toggling_a_head_updates_the_masked_column_and_leaves_the_unmasked_one(tokenizer):
    shown = Shown()
    part = part_for(lm(), tokenizer, shown)
    part.refresh()
    expected = text_predictions(bind(part._bound().model, tokenizer), TEXT).to_dict()
    assert part.lm_predictions == expected and part.lm_predictions_unmasked == expected
    unmasked = part.lm_predictions_unmasked
    seen = []
    part.observe(lambda change: seen.append(change["name"]), ["lm_predictions", "lm_predictions_unmasked"])
    shown.mask = shown.mask.copy()
    shown.mask[0, 1] = 0
    part.refresh()
    assert seen == ["lm_predictions"] and part.lm_predictions_unmasked is unmasked
    assert part.lm_predictions["slots"][0]["probs"] != unmasked["slots"][0]["probs"]
    assert not part.prediction_busy and part.prediction_error == "" and part.logit_lens == {}
    part.close()


def test_the_lens_is_computed_while_asked_for_under_the_mask(tokenizer):
    shown = Shown()
    shown.mask[1, 2] = 0
    part = part_for(lm("llama"), tokenizer, shown)
    part.refresh()
    assert part.logit_lens == {}
    part.show_lens = True  # its own setting: computed at once (not live)
    lens = part.logit_lens
    assert np.array(lens["final_rank"]).shape == (LAYERS + 1, len(lens["tokens"]))
    assert part.lens_measure == "rank"
    shown.mask[1, 2] = 1
    part.refresh()
    assert part.logit_lens != lens and part.logit_lens["top_tokens"][:2] == lens["top_tokens"][:2]
    part.show_lens = False
    assert part.logit_lens == {}
    part.close()


def test_a_masked_lm_text_without_a_mask_token_gets_the_hint_and_an_empty_text_nothing(tokenizer):
    shown = Shown("the film was [MASK]")
    part = part_for(lm("bert"), tokenizer, shown)
    part.refresh()
    assert len(part.lm_predictions["slots"]) == 1 and part.lm_predictions["note"] == ""
    shown.text = TEXT
    part.refresh()
    assert part.lm_predictions["slots"] == [] and "type [MASK]" in part.lm_predictions["note"]
    shown.text = " "
    part.refresh()
    assert part.lm_predictions == {} and part.lm_predictions_unmasked == {}
    part.close()


def test_a_classifier_gets_no_predictions(tokenizer):
    part = part_for(tiny_model("bert", num_layers=LAYERS, num_heads=HEADS), tokenizer, Shown())
    part.refresh()
    assert not part.enabled and part.lm_predictions == {} and not part.prediction_busy
    part.close()


def test_live_results_come_through_the_dispatcher_and_stale_ones_are_dropped(tokenizer):
    dispatcher = Dispatcher()
    shown = Shown()
    part = part_for(lm(), tokenizer, shown, live=True, post=dispatcher.post)
    part.refresh()
    shown.mask = shown.mask.copy()
    shown.mask[2, 0] = 0
    part.refresh()  # the first result, if it lands after this, is for another mask: dropped
    assert dispatcher.wait(lambda: not part.pending(), 60)
    expected = text_predictions(bind(part._bound().model, tokenizer), TEXT, mask=shown.mask).to_dict()
    assert part.lm_predictions == expected
    part.close()
