"""``TokenStrip``: the shown input's words, coloured by how much each drives the prediction."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from ..analyses.attribution import METHOD_LABELS
from ._base import SessionView

#: The methods the picker offers, in order.
PICKER_METHODS = ("grad_x_input", "integrated_gradients", "occlusion", "rollout")
POSITIVE, NEGATIVE = (178, 24, 43), (33, 102, 172)  # the ends of ColorBrewer's RdBu


def score_colour(score: float, scale: float) -> str:
    """A diverging colour: red for scores that raise the target's logit, blue for those that lower it."""
    strength = 0.0 if scale <= 0 else min(abs(float(score)) / scale, 1.0)
    r, g, b = POSITIVE if score >= 0 else NEGATIVE
    return f"rgba({r},{g},{b},{0.85 * strength:.3f})"


def strip_html(words, scores, scale: float, other=None, css_class: str = "bw-token") -> str:
    """One ``<span>`` per word, coloured by its score, the value (and the other strip's) in its tooltip."""
    spans = []
    for index, (word, score) in enumerate(zip(words, scores)):
        tip = f"{word}: {score:+.4f}"
        if other is not None and index < len(other):
            tip += f" (unmasked {other[index]:+.4f}, change {score - other[index]:+.4f})"
        text_colour = "#fff" if scale > 0 and abs(score) / scale > 0.6 else "#111827"
        spans.append(f'<span class="{css_class}" title="{html.escape(tip)}" style="background:'
                     f'{score_colour(score, scale)};color:{text_colour};padding:2px 4px;margin:1px;'
                     f'border-radius:3px;display:inline-block">{html.escape(word)}</span>')
    return "".join(spans)


def strip_caption(text: str) -> str:
    """The caption in front of a strip, in a box of fixed width (both strips' words then line up)."""
    return (f'<span class="bw-strip-caption" style="display:inline-block;width:104px;font-size:12px;'
            f'color:#4b5563">{html.escape(text)}</span>')


def colour_bar_html(scale: float, label: str, signed: bool = True) -> str:
    """A horizontal colour bar: diverging from ``-scale`` to ``+scale``, or (``signed=False``, scores that are
    never negative, such as rollout) from 0 to ``scale``."""
    left, right = score_colour(-1, 1), score_colour(1, 1)
    low, stops = (f"{-scale:+.3g}", f"{left},rgba(255,255,255,0),{right}") if signed else \
        ("0", f"rgba(255,255,255,0),{right}")
    return (f'<div class="bw-colour-bar" style="display:flex;align-items:center;gap:6px;font-size:11px">'
            f'<span>{low}</span><span style="display:inline-block;width:160px;height:10px;'
            f'background:linear-gradient(to right,{stops});'
            f'border:1px solid #d1d5db"></span><span>{scale:+.3g}</span>'
            f'<span style="color:#6b7280">{html.escape(label)}</span></div>')


class TokenStrip(SessionView):
    """Each word of the shown input coloured by its attribution (``session.token_scores``).

    Red words raise the target class's logit, blue ones lower it, on a scale
    symmetric around 0 (the colour bar gives it); a word's tooltip gives its
    score. With a head masked and "compare unmasked" on, a second strip
    shows the same method with no head masked, and each tooltip the change.

    Attributes
    ----------
    explain : ipywidgets.ToggleButton
        Linked to ``session.explain`` (explanations cost up to a second per change).
    method : ipywidgets.ToggleButtons
        Linked to ``session.explain_method``.
    compare : ipywidgets.Checkbox
        Linked to ``session.explain_unmasked``.
    strip, unmasked_strip, colour_bar, status : ipywidgets.HTML
    """

    def __init__(self, session, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-token-strip")
        self.explain = w.ToggleButton(description="Why this prediction?", icon="lightbulb-o",
                                      tooltip="colour each word by how much it drives the prediction",
                                      layout={"width": "auto"})
        self.method = w.ToggleButtons(options=[(METHOD_LABELS[m], m) for m in PICKER_METHODS],
                                      style={"button_width": "auto"})
        self.compare = w.Checkbox(description="compare unmasked", indent=False, layout={"width": "auto"})
        self.strip = w.HTML()
        self.strip.add_class("bw-token-strip-masked")
        self.unmasked_strip = w.HTML()
        self.unmasked_strip.add_class("bw-token-strip-unmasked")
        self.colour_bar = w.HTML()
        self.status = w.HTML()
        self.error = self._message_box("explanation_error", "#b91c1c", "#fef2f2")
        self._link((session, "explain"), (self.explain, "value"))
        self._link((session, "explain_method"), (self.method, "value"),
                   (lambda m: m if m in PICKER_METHODS else None, lambda m: m or session.explain_method))
        self._link((session, "explain_unmasked"), (self.compare, "value"))
        self._dlink((session, "explain"), (self.method.layout, "display"), lambda on: None if on else "none")
        self._dlink((session, "explain"), (self.compare.layout, "display"), lambda on: None if on else "none")
        self._observe(self._redraw, ["token_scores", "unmasked_token_scores", "explanation_busy", "explain"])
        self.children = [w.HBox([self.explain, self.method, self.compare], layout={"flex_flow": "row wrap"}),
                         self.strip, self.unmasked_strip, self.colour_bar, self.status, self.error]

    def _redraw(self, _change) -> None:
        s = self.session
        shown, unmasked = s.token_scores, s.unmasked_token_scores
        if not s.explain or not shown:
            self.strip.value = self.unmasked_strip.value = self.colour_bar.value = ""
            self.status.value = "<small>computing&hellip;</small>" if s.explain and s.explanation_busy else ""
            return
        scores = np.asarray(shown["scores"], dtype=float)
        other = np.asarray(unmasked["scores"], dtype=float) if unmasked else None
        both = scores if other is None else np.concatenate([scores, other])
        scale = float(np.abs(both).max()) if both.size else 0.0
        # Both strips start after a caption of one width, so that their words line up one above the other.
        prefix = strip_caption("under the mask") if shown.get("masked") else ""
        self.strip.value = prefix + strip_html(shown["words"], scores, scale, other)
        self.unmasked_strip.value = ("" if other is None else
                                     strip_caption("unmasked") + strip_html(unmasked["words"], other, scale))
        self.colour_bar.value = colour_bar_html(scale, f"{shown.get('method_label', shown['method'])} "
                                                       f"for the logit of {shown.get('label', '')}",
                                                signed=bool((both < 0).any()))
        extra = ""
        if shown.get("completeness_gap") is not None:
            extra = f" &middot; completeness gap {100 * shown['completeness_gap']:.1f}%"
        if shown.get("replacement"):
            extra += f" &middot; each word replaced by {html.escape(shown['replacement'])}"
        busy = " &middot; updating&hellip;" if s.explanation_busy else ""
        self.status.value = (f"<small>target <b>{html.escape(str(shown.get('label', shown['target'])))}</b> "
                             f"(logit {shown['logit']:.3f}){extra}{busy}</small>")
