"""The widgets of a snapshot: every picture precomputed, every control linked in the browser.

Nothing here has a Python callback (a snapshot has no kernel). The layer and
head dropdowns pick a child of ``Stack`` widgets through ``jslink`` (one
attention map per layer and head); the mask slider picks the mask grid and the
readout of one masking step the same way. Figures share their scales and axes,
so each map adds only its heat map and its colours (float32) to the state.
"""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
from bqplot import Axis, ColorAxis, ColorScale, Figure, LinearScale, Lines

from ..widgets._grid import _GridHeatMap, _tick_labels, label_step
from ..widgets.attention_grid import ATTENTION_COLOURS, separator_lines
from ..widgets.head_mask_grid import MASK_COLOURS, VALUE_COLOURS
from .data import PRECOMPUTED_NOTE, SnapshotData

MAP_PX, GRID_PX = 460, 380
TICKS = {"font-size": "11px"}
CELL = "padding:2px 10px;text-align:right"


class _SharedAxes:
    """Row and column scales, axes and a colour bar that several figures of one kind share.

    ``row_labels``/``col_labels`` label the cell centres; ``size`` is the plot's
    ``(height, width)`` in pixels (to thin the labels).
    """

    def __init__(self, colours: dict, row_labels, col_labels, row_name: str, col_name: str, colour_name: str,
                 size: tuple[int, int], slant: bool = False):
        self.rows, self.cols = LinearScale(reverse=True, allow_padding=False), LinearScale(allow_padding=False)
        self.colours = ColorScale(**colours)
        x_ticks, x_labels = _tick_labels(col_labels, label_step(len(col_labels), size[1]))
        y_ticks, y_labels = _tick_labels(row_labels, label_step(len(row_labels), size[0]))
        x_style = {"tick_rotate": -50, "tick_style": {**TICKS, "text-anchor": "end"}, "label_offset": "64px"} \
            if slant else {"tick_style": TICKS}
        self.axes = [
            Axis(scale=self.cols, side="bottom", label=col_name, grid_lines="none", tick_values=x_ticks,
                 tick_labels=x_labels, **x_style),
            Axis(scale=self.rows, side="left", label=row_name, grid_lines="none", tick_values=y_ticks,
                 tick_labels=y_labels, tick_style=TICKS, label_offset="76px" if slant else None),
            ColorAxis(scale=self.colours, side="right", label=colour_name, num_ticks=5, tick_format=".2~f",
                      tick_style={"font-size": "10px"}),
        ]
        self.n = (len(row_labels), len(col_labels))

    def figure(self, color: np.ndarray, title: str, layout: dict, margin: dict, lines=()) -> Figure:
        """A figure of ``color`` (shape ``(rows, cols)``, stored as float32) with ``lines`` (``Lines`` marks)."""
        n_rows, n_cols = self.n
        heat = _GridHeatMap(color=np.asarray(color, dtype=np.float32), row=np.arange(n_rows + 1.0),
                            column=np.arange(n_cols + 1.0), stroke="white",
                            scales={"row": self.rows, "column": self.cols, "color": self.colours})
        return Figure(marks=[heat, *lines], axes=self.axes, title=title, padding_x=0, padding_y=0,
                      animation_duration=0, layout=layout, fig_margin=margin, display_toolbar=False,
                      title_style={"font-size": "13px"})

    def outline(self, cells, colour: str = "#111827") -> list:
        """A ``Lines`` mark framing each ``(row, col)`` of ``cells`` (none when empty)."""
        if not len(cells):
            return []
        x = np.array([[c, c + 1, c + 1, c, c] for _, c in cells], dtype=np.float32)
        y = np.array([[r, r, r + 1, r + 1, r] for r, _ in cells], dtype=np.float32)
        return [Lines(x=x, y=y, scales={"x": self.cols, "y": self.rows}, colors=[colour], stroke_width=2.5)]


def attention_maps(data: SnapshotData) -> tuple[w.Dropdown, w.Dropdown, w.Stack]:
    """``(layer dropdown, head dropdown, maps)``: a ``Stack`` of layers, each a ``Stack`` of heads, jslinked."""
    layers, heads = data.shape
    shared = _SharedAxes(ATTENTION_COLOURS, data.tokens, data.tokens, "query", "key", "\u00f7 max",
                         (MAP_PX - 130, MAP_PX - 180), slant=True)
    layout = {"width": f"{MAP_PX + 70}px", "height": f"{MAP_PX + 40}px"}
    margin = {"top": 40, "bottom": 90, "left": 100, "right": 80}
    separators = separator_lines(data.boundaries, len(data.tokens))
    layer_pick = w.Dropdown(options=[(str(i), i) for i in range(layers)], value=data.layer, description="layer",
                            layout={"width": "160px"})
    head_pick = w.Dropdown(options=[(str(i), i) for i in range(heads)], value=data.head, description="head",
                           layout={"width": "160px"})
    per_layer = []
    for layer in range(layers):
        figures = []
        for head in range(heads):
            weights = data.attentions[layer, head]
            top = float(weights.max()) if weights.size else 0.0
            lines = [] if separators is None else [
                Lines(x=separators[0].astype(np.float32), y=separators[1].astype(np.float32),
                      scales={"x": shared.cols, "y": shared.rows}, colors=["#e6550d"], stroke_width=2)]
            masked = " \u00b7 masked" if data.mask[layer, head] == 0 else ""
            figures.append(shared.figure(weights / top if top > 0 else weights,
                                         f"Layer {layer}, head {head}{masked}: attention of each query to each key",
                                         layout, margin, lines))
        stack = w.Stack(figures, selected_index=data.head)
        w.jslink((head_pick, "index"), (stack, "selected_index"))
        per_layer.append(stack)
    maps = w.Stack(per_layer, selected_index=data.layer)
    maps.add_class("bw-snapshot-maps")
    layer_pick.add_class("bw-snapshot-layer")
    head_pick.add_class("bw-snapshot-head")
    w.jslink((layer_pick, "index"), (maps, "selected_index"))
    return layer_pick, head_pick, maps


def readout_html(data: SnapshotData, state) -> str:
    """The readout of one slider position: metric x (masked, baseline, delta), heads masked, flipped examples."""
    rows = [f'<tr><th style="{CELL};text-align:left">metric</th><th style="{CELL}">masked</th>'
            f'<th style="{CELL}">baseline</th><th style="{CELL}">&Delta;</th></tr>']
    for metric in data.metric_names:
        value, base = state.score.get(metric), data.baseline.get(metric)
        if value is None or base is None:
            continue
        diff = value - base
        colour = "#b91c1c" if diff < -1e-9 else "#15803d" if diff > 1e-9 else "inherit"
        rows.append(f'<tr><td style="{CELL};text-align:left">{html.escape(metric)}</td>'
                    f'<td style="{CELL}" class="bw-snapshot-score">{value:.4f}</td><td style="{CELL}">{base:.4f}</td>'
                    f'<td style="{CELL};color:{colour}">{diff:+.4f}</td></tr>')
    return (f"<div><b>{html.escape(state.label)}</b></div>"
            f'<table class="bw-score-table" style="border-collapse:collapse;font-variant-numeric:tabular-nums">'
            f'{"".join(rows)}</table><div>{state.flipped} of {data.n_examples} examples flipped '
            f"(their prediction differs from the unmasked model's) &middot; precomputed</div>")


def mask_steps(data: SnapshotData) -> tuple[w.IntSlider, w.Stack, w.Stack]:
    """``(slider, readouts, grids)``: one readout and one mask grid per slider position, jslinked."""
    layers, heads = data.shape
    shared = _SharedAxes(MASK_COLOURS, range(layers), range(heads), "layer", "head", "gate",
                         (GRID_PX * 3 // 4 - 80, GRID_PX - 126))
    layout = {"width": f"{GRID_PX}px", "height": f"{max(400, GRID_PX * 3 // 4)}px"}
    margin = {"top": 40, "bottom": 40, "left": 50, "right": 76}
    grids, readouts = [], []
    for state in data.states:
        cells = np.argwhere(state.mask == 0).tolist()
        grids.append(shared.figure(state.mask, "Head mask: red is masked (gate 0), pale is kept (1)", layout,
                                   margin, shared.outline(cells)))
        readouts.append(w.HTML(readout_html(data, state)))
    slider = w.IntSlider(value=0, min=0, max=max(0, len(data.states) - 1), description="mask step",
                         continuous_update=True, layout={"width": f"{GRID_PX}px"})
    readout_stack, grid_stack = w.Stack(readouts, selected_index=0), w.Stack(grids, selected_index=0)
    slider.add_class("bw-snapshot-slider")
    readout_stack.add_class("bw-snapshot-readout")
    grid_stack.add_class("bw-snapshot-masks")
    w.jslink((slider, "value"), (readout_stack, "selected_index"))
    w.jslink((slider, "value"), (grid_stack, "selected_index"))
    return slider, readout_stack, grid_stack


def extras(data: SnapshotData) -> list:
    """The importance map and the masking curve's plot, when the session had them."""
    layers, heads = data.shape
    out: list = []
    if data.importance is not None:
        shared = _SharedAxes(VALUE_COLOURS, range(layers), range(heads), "layer", "head", "",
                             (320, GRID_PX - 126))
        out.append(shared.figure(data.importance, "Head importance (higher: more important)",
                                 {"width": f"{GRID_PX}px", "height": "400px"},
                                 {"top": 40, "bottom": 40, "left": 50, "right": 76}))
    steps = (data.curve or {}).get("steps") or []
    metric = (data.curve or {}).get("metric")
    if steps and metric:
        count = (data.curve or {}).get("n_examples")
        on = f" (masks chosen on {count} examples)" if count else ""
        x, y = LinearScale(min=0.0, max=1.0), LinearScale()
        fraction = np.array([s["fraction_masked"] for s in steps], dtype=np.float32)
        score = np.array([s["score"][metric] for s in steps], dtype=np.float32)
        marks = [Lines(x=fraction, y=score, scales={"x": x, "y": y}, colors=["#1f77b4"], marker="circle")]
        threshold = data.curve.get("threshold_score") if data.curve else None
        if threshold is not None:
            marks.append(Lines(x=np.array([0, 1], dtype=np.float32), y=np.array([threshold] * 2, dtype=np.float32),
                               scales={"x": x, "y": y}, colors=["#6b7280"], line_style="dashed"))
        out.append(Figure(marks=marks, axes=[Axis(scale=x, label="fraction of heads masked", tick_format=".0%"),
                                             Axis(scale=y, side="left", label=metric)],
                          title=f"Masking curve{on}; dashed: the threshold", animation_duration=0,
                          display_toolbar=False, layout={"width": "520px", "height": "400px"},
                          title_style={"font-size": "13px"}))
    return out


def header_html(data: SnapshotData) -> str:
    """The header: model, task, example, date, package version, and that the values are precomputed."""
    text = html.escape(data.text) + ("" if data.text_pair is None else f" <b>||</b> {html.escape(data.text_pair)}")
    cut = " <i>(cut to the model's length)</i>" if data.truncated else ""
    return (f'<div class="bw-snapshot-header"><h3 style="margin:4px 0">{html.escape(data.model_name)} &middot; '
            f"{html.escape(data.task)} &middot; {html.escape(data.example)}</h3>"
            f'<div class="bw-snapshot-text">{text}{cut}</div>'
            f"<div><small>written {html.escape(data.created)} by bertology-widgets {html.escape(data.version)} "
            f"&middot; scores over {data.n_examples} examples &middot; {html.escape(PRECOMPUTED_NOTE)} "
            "The attention maps are under the session's mask; the slider changes the mask grid and the scores."
            "</small></div></div>")


def snapshot_view(data: SnapshotData) -> w.VBox:
    """The snapshot's root widget (its children and ``jslink`` models are all the page's state)."""
    layer_pick, head_pick, maps = attention_maps(data)
    slider, readouts, grids = mask_steps(data)
    side = w.VBox([slider, readouts, grids], layout={"margin": "0 0 0 12px", "width": f"{GRID_PX + 20}px"})
    main = w.HBox([w.VBox([w.HBox([layer_pick, head_pick]), maps]), side], layout={"flex_flow": "row wrap"})
    root = w.VBox([w.HTML(header_html(data)), main])
    more = extras(data)
    if more:
        root.children = (*root.children, w.HBox(more, layout={"flex_flow": "row wrap"}))
    root.add_class("bw-snapshot")
    return root
