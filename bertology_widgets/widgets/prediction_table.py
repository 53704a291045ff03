"""``PredictionTable``: what a language model predicts for the shown input, under the mask and without it."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from ._base import SessionView
from .token_strip import colour_bar_html, strip_caption, strip_html
from .tokens import display_tokens, is_byte_level

VISIBLE = str.maketrans({" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"})  # a decoded token's blanks, made visible


def shown_token(token: str) -> str:
    """A decoded token as the table writes it: a space as ``␣``, a newline as ``↵``, escaped for HTML."""
    return html.escape(token.translate(VISIBLE)) or "&nbsp;"


def slot_title(prediction: dict, slot: dict) -> str:
    """What a slot predicts: the next token after the text, or the fill of the mask token at its position."""
    if prediction.get("kind") == "causal":
        return "next token"
    return f"fill of {html.escape(prediction['tokens'][slot['position']])} at position {slot['position']}"


def table_html(masked: dict, unmasked: dict, changed: bool) -> str:
    """One table per slot: rank, the top tokens with their probabilities under the mask, and unmasked."""
    tables = []
    other_slots = {s["position"]: s for s in unmasked.get("slots", [])}
    cell = "padding:2px 10px;text-align:left;font-family:monospace;font-size:14px"
    for slot in masked.get("slots", []):
        other = other_slots.get(slot["position"])
        rows = []
        for rank, (token, prob) in enumerate(zip(slot["tokens"], slot["probs"]), start=1):
            right = ("" if other is None or rank > len(other["tokens"]) else
                     f"<b>{shown_token(other['tokens'][rank - 1])}</b> {other['probs'][rank - 1]:.3f}")
            moved = changed and other is not None and token not in other["tokens"]
            style = cell + (";background:#fef3c7" if moved else "")
            rows.append(f'<tr><td style="{cell}">{rank}</td><td style="{style}"><b>{shown_token(token)}</b> '
                        f'{prob:.3f}</td><td style="{cell}">{right}</td></tr>')
        head = (f'<tr><th style="{cell}">#</th><th style="{cell}">under the mask</th>'
                f'<th style="{cell}">unmasked</th></tr>')
        tables.append(f'<div style="display:inline-block;vertical-align:top;margin:0 18px 6px 0">'
                      f'<div style="font-size:13px;color:#374151">{slot_title(masked, slot)}</div>'
                      f'<table class="bw-prediction-table">{head}{"".join(rows)}</table></div>')
    return "".join(tables)


def is_language_model(session) -> bool:
    """Whether ``session``'s model has a language-model head (its dashboard shows predictions and the lens)."""
    part = getattr(session, "prediction", None)
    return bool(part is not None and part.enabled)


class PredictionTable(SessionView):
    """The top 5 predictions of a language model for the shown input, masked and unmasked side by side.

    Causal LMs: the next token after the text, and a strip of the text's tokens coloured by their
    surprisal under the mask (``-log p`` in nats; the tooltip gives the unmasked value and the change).
    Masked LMs: the fills of each mask token typed in the text (a text without one gets a line that says
    how to add it). A token that the mask brought into the top 5 is shaded. It shows
    ``session.lm_predictions`` and ``session.lm_predictions_unmasked``.

    Attributes
    ----------
    table, strip, colour_bar, status : ipywidgets.HTML
    """

    def __init__(self, session, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-predictions")
        self.table = w.HTML()
        self.strip = w.HTML()
        self.strip.add_class("bw-surprisal-strip")
        self.colour_bar = w.HTML()
        self.status = w.HTML()
        self.error = self._message_box("prediction_error", "#b91c1c", "#fef2f2")
        self._observe(self._redraw, ["lm_predictions", "lm_predictions_unmasked", "prediction_busy"])
        self.children = [self.table, self.strip, self.colour_bar, self.status, self.error]

    def _redraw(self, _change) -> None:
        s = self.session
        masked, unmasked = s.lm_predictions, s.lm_predictions_unmasked or {}
        busy = " &middot; updating&hellip;" if s.prediction_busy else ""
        if not masked:
            self.table.value = self.strip.value = self.colour_bar.value = ""
            self.status.value = "<small>computing&hellip;</small>" if s.prediction_busy else ""
            return
        changed = bool((np.asarray(s.mask) != 1).any())
        self.table.value = table_html(masked, unmasked, changed)
        self._draw_strip(masked, unmasked)
        note = f"{html.escape(masked['note'])}" if masked.get("note") else ""
        self.status.value = f"<small>{note}{busy}</small>" if note or busy else ""

    def _draw_strip(self, masked: dict, unmasked: dict) -> None:
        if masked.get("surprisal") is None:
            self.strip.value = self.colour_bar.value = ""
            return
        # nothing predicts the first token: the strip starts at the second
        words = display_tokens(masked["tokens"], is_byte_level(self.session.tokenizer))[1:]
        scores = np.array([np.nan if v is None else v for v in masked["surprisal"][1:]], dtype=float)
        other = unmasked.get("surprisal")
        others = None if other is None or len(other) != len(masked["surprisal"]) else np.array(
            [np.nan if v is None else v for v in other[1:]], dtype=float)
        scale = float(np.nanmax(scores)) if scores.size else 0.0
        self.strip.value = strip_caption("surprisal") + strip_html(words, scores, scale, others)
        self.colour_bar.value = colour_bar_html(scale, "surprisal under the mask (nats): -log p of each token "
                                                       "given the ones before it", signed=False)


__all__ = ["PredictionTable", "is_language_model", "table_html"]
