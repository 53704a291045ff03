"""The look every figure shares: layer names, title size, margins, colour bars, legends, empty panels.

One place, so that a panel never sets its own title size or guesses a margin:

* layers are named as the probe names them: ``"emb"`` for the embeddings, then
  ``"L0"``, ``"L1"``, ... for the layers' outputs (and for the layers whose heads
  a grid shows); :func:`state_names`, :func:`layer_names`, :func:`state_at`;
* :func:`figure` builds a bqplot ``Figure`` with the shared title size, no
  toolbar, and a width that shrinks with a narrow notebook (``max_width``);
* :func:`colour_bar_margin` is the right margin a vertical colour bar needs for
  its label and ticks: bqplot centres the label over the bar, so a narrow margin
  pushes a long label over the data;
* :func:`legend_html` draws a legend under a figure, outside its data;
* :func:`empty_html` is what a panel shows before it has computed: what to press.
"""

from __future__ import annotations

import html

import numpy as np

TITLE_STYLE = {"font-size": "14px", "font-weight": "600"}
TICK_STYLE = {"font-size": "11px"}
LABEL_CHAR_PX = 8  # the width of one character of an axis label, generously
COLOUR_BAR_PX = 84  # the least right margin of a figure with a vertical colour bar (bar + ticks)
# Margins (px) of a chart with axes: room for tick labels and the axis label outside the data.
CHART_MARGIN = {"top": 40, "bottom": 50, "left": 64, "right": 24}

# What every view's widgets share: a selected toggle reads as selected; bqplot's tooltip never takes a click.
CSS = """<style>
.bw-view .widget-toggle-button.mod-active, .bw-view .jupyter-button.widget-toggle-button.mod-active {
  background: #1f4e79; color: #fff; }
.bqplot_tooltip_div { pointer-events: none; }
.bw-legend { font-size: 12px; line-height: 1.6; }
.bw-legend .bw-key { display: inline-block; margin-right: 14px; white-space: nowrap; }
</style>"""


def state_names(num_layers: int) -> list[str]:
    """Names of the ``num_layers + 1`` hidden states: ``"emb"``, then ``"L0"`` .. ``"L{num_layers - 1}"``."""
    return ["emb"] + layer_names(num_layers)


def layer_names(num_layers: int) -> list[str]:
    """Names of the layers themselves (rows of a head grid): ``"L0"`` .. ``"L{num_layers - 1}"``."""
    return [f"L{i}" for i in range(num_layers)]


def state_at(position: float) -> str:
    """A position along the hidden states (0 the embeddings, ``l + 1`` layer ``l``'s output), named.

    ``0`` -> ``"emb"``, ``3`` -> ``"L2"``, ``2.4`` -> ``"L1.40"``, ``0.5`` -> ``"emb+0.50"``.
    """
    position = float(position)
    if position != position or position in (float("inf"), float("-inf")):
        return "-"
    if position == int(position):
        return "emb" if position == 0 else f"L{int(position) - 1}"
    return f"emb+{position:.2f}" if position < 1 else f"L{position - 1:.2f}"


def colour_bar_margin(*labels: str) -> int:
    """The right margin (px) that fits a colour bar, its ticks and the longest of ``labels`` centred above it."""
    longest = max((len(label) for label in labels), default=0)
    return max(COLOUR_BAR_PX, LABEL_CHAR_PX * longest + 24)


def axis(scale, label: str, side: str = "bottom", margin=None, **kwargs):
    """A bqplot ``Axis`` whose label sits at the outer edge of the figure's margin, clear of the tick labels."""
    from bqplot import Axis

    room = dict(margin or CHART_MARGIN)["bottom" if side in ("bottom", "top") else "left"]
    return Axis(scale=scale, label=label, side=side, label_offset=f"{room - (8 if side == 'bottom' else 12)}px",
                tick_style=TICK_STYLE, **kwargs)


def narrowing(width: float, height) -> dict:
    """A figure's layout: ``width`` px where there is room, the column's width where not (no side margins, which
    would push a full-width figure past the column)."""
    height = height if isinstance(height, str) else f"{height}px"
    return {"width": f"{width:.0f}px", "max_width": "100%", "height": height, "margin": "2px 0"}


def figure(marks, axes, *, title: str = "", width: int, height: int, margin=None, **kwargs):
    """A bqplot ``Figure`` with the shared title size and no toolbar; ``width`` shrinks in a narrow notebook."""
    from bqplot import Figure

    layout = narrowing(width, height)
    return Figure(marks=marks, axes=axes, title=title, title_style=TITLE_STYLE, display_toolbar=False,
                  animation_duration=0, layout=layout, fig_margin=dict(margin or CHART_MARGIN), **kwargs)


# key kind -> CSS of its swatch
_KEYS = {
    "line": "display:inline-block;width:22px;height:0;border-top:2px solid {c};vertical-align:middle",
    "dashed": "display:inline-block;width:22px;height:0;border-top:2px dashed {c};vertical-align:middle",
    "dotted": "display:inline-block;width:22px;height:0;border-top:3px dotted {c};vertical-align:middle",
    "band": "display:inline-block;width:22px;height:10px;background:{c};opacity:0.3;vertical-align:middle",
    "dot": "display:inline-block;width:10px;height:10px;border-radius:50%;background:{c};border:1px solid #111827;"
           "vertical-align:middle",
    "ring": "display:inline-block;width:10px;height:10px;border-radius:50%;border:2px solid {c};"
            "vertical-align:middle",
    "swatch": "display:inline-block;width:12px;height:12px;background:{c};border:1px solid #6b7280;"
              "vertical-align:middle",
}


def legend_html(items) -> str:
    """A legend under a figure: ``items`` are ``(text, colour, kind)`` with kind one of ``line``, ``dashed``,
    ``dotted``, ``band``, ``dot``, ``ring``, ``swatch``, or ``(text, symbol)`` for a marker character."""
    keys = []
    for item in items:
        if len(item) == 2:
            key = f'<span style="font-size:13px">{html.escape(item[1])}</span>'
        else:
            key = f'<span style="{_KEYS[item[2]].format(c=item[1])}"></span>'
        keys.append(f'<span class="bw-key">{key} {html.escape(item[0])}</span>')
    return f'<div class="bw-legend">{"".join(keys)}</div>' if keys else ""


def labelled(text: str, control, width: str = "90px"):
    """``control`` (a picker) with its label on the same line, never alone above it."""
    import ipywidgets as w

    return w.HBox([w.Label(text, layout={"width": width}), control],
                  layout={"flex_flow": "row wrap", "align_items": "center"})


def empty_html(press: str, what: str) -> str:
    """The words an empty panel shows instead of a figure: ``Press <b>press</b> to what.``"""
    return (f'<div class="bw-empty" style="padding:16px 12px;margin:6px 0;color:#374151;background:#f9fafb;'
            f'border:1px dashed #9ca3af;border-radius:4px">Press <b>{html.escape(press)}</b> to '
            f"{html.escape(what)}.</div>")


def symmetric_range(values) -> tuple[float, float]:
    """``(-m, m)`` with ``m`` the largest magnitude in ``values``: a diverging scale centred on 0, so that
    equal colours mean equal sizes on both sides (as patching figures in the literature draw them)."""
    values = np.asarray(values, dtype=float)
    top = float(np.nanmax(np.abs(values))) if values.size else 0.0
    top = top if top > 0 else 1.0
    return -top, top
