"""``AttentionGrid``: the selected head's attention as a query x key heat map."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
from bqplot import ColorScale
from traitlets import Bool, Enum

from ._grid import FigureView, GridFigure
from ._style import labelled
from .tokens import session_tokens

SEPARATOR_STYLE = {"colors": ["#e6550d"], "stroke_width": 2}
ATTENTION_COLOURS = {"scheme": "Blues", "min": 0, "max": 1}
# value -> label of the scale picker
SCALES = {"fixed": "0\u20131", "head": "per head", "row": "per row"}
# The colour bar's label (short: it sits above the bar); the ticks give the range.
SCALE_LABELS = {"fixed": "weight", "head": "weight", "row": "\u00f7 row max"}
SCALE_TOOLTIPS = {"fixed": "colour scale 0 to 1 for every head", "head": "each head's largest weight is full colour",
                  "row": "each query's row divided by its largest weight"}
SMALL_PX = 150  # one small map of the all-heads grid, frame included
SMALL_TITLE_PX = 22  # the small map's title line, above its square
# value -> label of the measure picker ("norm" and "rollout" come from session.norms / session.rollout)
MEASURES = {"weight": "weight", "norm": "\u2016\u03b1 f(x)\u2016", "rollout": "rollout"}
MEASURE_TOOLTIPS = {"weight": "the attention weights", "norm": "the norm of what each weight moves (Kobayashi et al.)",
                    "rollout": "attention rollout up to this layer (all heads, with the residual)"}


def scaled(attention, scale: str) -> tuple[np.ndarray, float, float]:
    """``(colour, low, high)``: what a map of ``attention`` (shape ``(query, key)``) colours, and its range.

    ``"fixed"``: the weights on ``[0, 1]``; ``"head"``: the weights on ``[0, max]``
    (the head's largest weight is full colour); ``"row"``: each query row divided by
    its largest weight, on ``[0, 1]``.
    """
    attention = np.asarray(attention, dtype=float)
    if scale == "row":
        top = attention.max(axis=-1, keepdims=True)
        return np.divide(attention, top, out=np.zeros_like(attention), where=top > 0), 0.0, 1.0
    if scale == "head":
        top = float(attention.max()) if attention.size else 1.0
        return attention, 0.0, top if top > 0 else 1.0
    return attention, 0.0, 1.0


def segment_boundaries(token_type_ids) -> list[int]:
    """Positions where a new segment starts (the token after each pair separator)."""
    if token_type_ids is None:
        return []
    ids = np.asarray(token_type_ids).reshape(-1)
    return (np.nonzero(ids[1:] != ids[:-1])[0] + 1).tolist()


def separator_lines(boundaries, n: int):
    """``(x, y)`` of a vertical and a horizontal line at each boundary of an ``n x n`` grid, or None."""
    if not boundaries:
        return None
    x, y = [], []
    for b in boundaries:
        x += [[b, b], [0, n]]
        y += [[0, n], [b, b]]
    return np.array(x, dtype=float), np.array(y, dtype=float)


class AttentionGrid(FigureView):
    """Attention weights of ``session.attention`` (query rows x key columns), tokens as tick labels.

    ``scale`` picks the colour scale: ``"head"`` (default) maps each head's
    largest weight to full colour, as bertviz does; ``"fixed"`` keeps ``[0, 1]``
    so heads compare at a glance; ``"row"`` scales each query's row by its
    largest weight. The colour bar states the range in use, the tooltip names
    the query and key tokens and the weight. A sentence pair shows its segment
    boundary as orange lines. With ``show_all_heads`` (or the "All heads"
    toggle) every head of the current layer is drawn as a small map, masked
    heads dimmed and outlined; clicking one selects that head.

    Traits
    ------
    show_all_heads : bool
        Show the small maps of all heads of the layer below the main map.
    scale : {"head", "fixed", "row"}
        The colour scale of the main and the small maps.

    Attributes
    ----------
    grid : GridFigure
        The main map (``grid.fig`` the ``Figure``, ``grid.heat`` its ``GridHeatMap``,
        ``grid.colour_axis`` its colour bar).
    scale_picker : ipywidgets.ToggleButtons
    small : list of GridFigure
        One small map per head, built the first time ``show_all_heads`` is set.
    """

    show_all_heads = Bool(False)
    scale = Enum(tuple(SCALES), default_value="head")
    export_name = "attention"

    def __init__(self, session, show_all_heads: bool = False, size: int = 460, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-attention-grid")
        self.size = size
        self.grid = GridFigure(ColorScale(**ATTENTION_COLOURS), overlays={"separators": SEPARATOR_STYLE},
                               tooltip=("query", "key", "weight"), row_label="query", col_label="key",
                               long_labels=True, colour_label=SCALE_LABELS["head"],
                               colour_labels=(*SCALE_LABELS.values(), *MEASURES.values()),
                               layout={"width": f"{size + 70}px", "height": f"{size + 40}px"},
                               fig_margin={"top": 40, "bottom": 90, "left": 100, "right": 80})
        self.scale_picker = w.ToggleButtons(options=[(label, value) for value, label in SCALES.items()],
                                            tooltips=[SCALE_TOOLTIPS[v] for v in SCALES],
                                            style={"button_width": "80px"})
        self.small: list = []
        per_row = max(1, (size + 70) // SMALL_PX)
        self._small_box = w.GridBox(layout={"grid_template_columns": f"repeat(auto-fill, {SMALL_PX}px)",
                                            "max_width": f"{per_row * SMALL_PX}px", "display": "none"})
        self._small_box.add_class("bw-all-heads")
        self._small_caption = w.HTML(layout={"max_width": f"{size + 70}px"})  # wraps, never widens the view
        self.toggle_all = w.ToggleButton(description="All heads", tooltip="Show every head of this layer",
                                         icon="th", layout={"width": "auto"})
        self._link((self, "show_all_heads"), (self.toggle_all, "value"))
        self._link((self, "scale"), (self.scale_picker, "value"))
        self.measure_picker = w.ToggleButtons(options=[(label, value) for value, label in MEASURES.items()],
                                              tooltips=[MEASURE_TOOLTIPS[v] for v in MEASURES],
                                              style={"button_width": "70px"})
        if session.has_trait("attention_measure"):
            self._link((session, "attention_measure"), (self.measure_picker, "value"))
        self.children = [self.grid.fig, w.HBox([labelled("colour scale", self.scale_picker), self.toggle_all],
                                               layout={"flex_flow": "row wrap", "align_items": "center"}),
                         labelled("show", self.measure_picker), self._small_caption, self._small_box]
        self._shown: tuple | None = None
        self._observe(self._redraw, ["attention", "token_type_ids", "head_masked"])
        if session.has_trait("attention_measure"):
            self._observe(self._redraw, ["attention_measure"], call_now=False)
            self._observe(self._redraw_if_measured, ["norms", "rollout", "layer", "head"], call_now=False)
        self._observe(self._redraw, ["scale"], owner=self, call_now=False)
        self._observe(self._redraw_small, ["attentions", "head", "mask"])
        self._observe(self._redraw_small, ["scale"], owner=self, call_now=False)
        self._observe(self._on_show_all, ["show_all_heads"], owner=self)
        self.show_all_heads = show_all_heads

    def title(self) -> str:
        s = self.session
        parts = [f"L{s.layer} head {s.head}"]
        if s.head_masked:
            parts.append("masked")
        note = s.layer_notes[s.layer]  # ModernBERT: "local ±64 tokens" (sliding window) or "global"
        if note:
            parts.append(note)
        if s.causal:
            parts.append("causal")
        return " · ".join(parts) + ": attention, query \u2192 key"

    def measured(self):
        """``(matrix (query, key) or None, what it is)``: what the main map draws for ``session.attention_measure``."""
        s = self.session
        measure = getattr(s, "attention_measure", "weight")
        if measure == "norm":
            norms = s.norms.get("head")
            return (None if norms is None or norms.shape[-1] != len(s.tokens) else norms[s.layer, s.head]), "norm"
        if measure == "rollout":
            rollout = s.rollout
            return (None if rollout is None or rollout.shape[-1] != len(s.tokens) else rollout[s.layer]), "rollout"
        return s.attention, "weight"

    def _redraw(self, _change) -> None:
        s = self.session
        matrix, measure = self.measured()
        if measure != "weight":
            self._redraw_measure(matrix, measure)
            return
        title = self.title()
        # The session assigns new arrays on every change: identity says whether anything is new.
        shown = (s.attention, s.token_type_ids, title, self.scale)
        if s.attention is None and self._shown is not None and self._shown[0] is not None:
            # No input (the text was refused): an empty map, not the last input's.
            self._shown = (None, None, title, self.scale)
            self.grid.show(np.zeros((1, 1)), [""], [""], title="no input to show")
            self.grid.draw("separators", None)
            return
        if s.attention is None:
            return
        same_data = (self._shown is not None and shown[0] is self._shown[0] and shown[1] is self._shown[1]
                     and shown[3] == self._shown[3])
        self._shown = shown
        if same_data:  # only the title (masked or not) changed: one small message
            if self.grid.fig.title != title:
                self.grid.fig.title = title
            return
        colour, low, high = scaled(s.attention, self.scale)
        colours = self.grid.heat.scales["color"]
        with colours.hold_sync(), self.grid.colour_axis.hold_sync():
            colours.min, colours.max = low, high
            self.grid.colour_axis.label = SCALE_LABELS[self.scale]
        tokens = session_tokens(s)
        self.grid.show(colour, tokens, tokens, title=title, values=s.attention)
        boundaries = segment_boundaries(s.token_type_ids) if s.text_pair is not None else []
        self.grid.draw("separators", separator_lines(boundaries, len(s.tokens)))

    def _redraw_if_measured(self, change) -> None:
        if getattr(self.session, "attention_measure", "weight") != "weight":
            self._redraw(change)

    def _redraw_measure(self, matrix, measure: str) -> None:
        """The selected head's ``||alpha f(x)||`` or the layer's rollout, on a colour bar of its own."""
        s = self.session
        self._shown = None  # back to the weights redraws them in full
        if matrix is None:
            waiting = "computing" if s.explanation_busy else "not available"
            note = s.norms.get("note", "") if measure == "norm" else ""
            self.grid.fig.title = f"{MEASURES[measure]}: {note or waiting}"
            return
        colour, low, high = scaled(matrix, self.scale)
        colours = self.grid.heat.scales["color"]
        with colours.hold_sync(), self.grid.colour_axis.hold_sync():
            colours.min, colours.max = low, high
            self.grid.colour_axis.label = MEASURES[measure] if self.scale != "row" else SCALE_LABELS["row"]
        tokens = session_tokens(s)
        what = (f"L{s.layer} head {s.head}: \u2016\u03b1 f(x)\u2016, what each weight moves"
                if measure == "norm" else f"Rollout through L{s.layer}: each key's share in each query")
        self.grid.show(colour, tokens, tokens, title=what, values=matrix)

    # -- all heads of the layer --------------------------------------------------------------
    def _on_show_all(self, _change) -> None:
        # Shown before the figures are built: a figure first drawn inside a hidden box
        # measures zero size and may not recover.
        self._small_box.layout.display = None if self.show_all_heads else "none"
        self._small_caption.layout.display = None if self.show_all_heads else "none"
        if self.show_all_heads and not self.small:
            self._build_small()
        self._redraw_small(None)

    def _build_small(self) -> None:
        for head in range(self.session.num_heads):
            # A square map under a title line of its own: the title never touches the map.
            side = SMALL_PX - 6
            small = GridFigure(ColorScale(**ATTENTION_COLOURS), title=f"head {head}", axes=False,
                               tooltip=("query", "key", "weight"),
                               layout={"width": f"{side}px", "height": f"{side - 6 + SMALL_TITLE_PX}px"},
                               fig_margin={"top": SMALL_TITLE_PX, "bottom": 6, "left": 6, "right": 6})
            small.on_cell_click(self._guarded(lambda _row, _col, head=head: self.select_head(head)))
            self.small.append(small)
        self._small_box.children = [small.fig for small in self.small]

    def _redraw_small(self, _change) -> None:
        s = self.session
        if not self.show_all_heads or s.attentions is None:
            return
        masked = np.asarray(s.mask)[s.layer] == 0
        self._small_caption.value = (
            f"<b>All heads of L{s.layer}</b> &middot; {html.escape(SCALE_TOOLTIPS[self.scale])} "
            "(white is 0) &middot; click a map to select its head; masked heads are dimmed, with a dashed outline")
        tokens = session_tokens(s)
        for head, small in enumerate(self.small):
            colour, low, high = scaled(s.attentions[head], self.scale)
            colours = small.heat.scales["color"]
            with colours.hold_sync():
                colours.min, colours.max = low, high
            small.show(colour, tokens, tokens, title=f"head {head}" + (" · masked" if masked[head] else ""),
                       values=s.attentions[head])
            small.heat.opacity = 0.35 if masked[head] else 1.0
            border = ("3px solid #e6550d" if head == s.head else
                      "3px dashed #111827" if masked[head] else "3px solid transparent")
            small.fig.layout.border = border

    def select_head(self, head: int) -> None:
        """What clicking head ``head``'s small map does: make it the selected head."""
        if self.session.head != head:
            self.session.head = head

    def close(self) -> None:
        super().close()
        for small in self.small:
            small.close()
