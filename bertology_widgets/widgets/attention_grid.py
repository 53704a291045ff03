"""``AttentionGrid``: the selected head's attention as a query x key heat map."""

from __future__ import annotations

import functools

import ipywidgets as w
import numpy as np
from bqplot import ColorScale
from traitlets import Bool

from ..architectures import adapter_for, layer_attention_note
from ._grid import FigureView, GridFigure

SEPARATOR_STYLE = {"colors": ["#e6550d"], "stroke_width": 2}
ATTENTION_COLOURS = {"scheme": "Blues", "min": 0, "max": 1}


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

    The colour scale is fixed to ``[0, 1]``, so heads and inputs compare at a
    glance; a sentence pair shows its segment boundary as orange lines. With
    ``show_all_heads`` (or the "All heads" toggle) every head of the current
    layer is drawn as a small map; clicking one selects that head.

    Traits
    ------
    show_all_heads : bool
        Show the small maps of all heads of the layer below the main map.

    Attributes
    ----------
    grid : GridFigure
        The main map (``grid.fig`` the ``Figure``, ``grid.heat`` its ``GridHeatMap``).
    small : list of GridFigure
        One small map per head, built the first time ``show_all_heads`` is set.
    """

    show_all_heads = Bool(False)
    export_name = "attention"

    def __init__(self, session, show_all_heads: bool = False, size: int = 460, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-attention-grid")
        try:
            self.causal = bool(adapter_for(session.model).causal)
            self._layer_note = functools.partial(layer_attention_note, session.model)
        except Exception:  # an unknown architecture still gets its attention drawn
            self.causal, self._layer_note = False, lambda layer: ""
        self.grid = GridFigure(ColorScale(**ATTENTION_COLOURS), overlays={"separators": SEPARATOR_STYLE},
                               tooltip=("query", "key", "weight"), row_label="query", col_label="key",
                               long_labels=True, layout={"width": f"{size}px", "height": f"{size}px"},
                               fig_margin={"top": 40, "bottom": 90, "left": 100, "right": 10})
        self.small = []
        per_row = max(1, size // 136)
        self._small_box = w.GridBox(layout={"grid_template_columns": f"repeat({per_row}, 134px)", "display": "none"})
        self._small_box.add_class("bw-all-heads")
        self.toggle_all = w.ToggleButton(description="All heads", tooltip="Show every head of this layer",
                                         icon="th", layout={"width": "120px"})
        self._link((self, "show_all_heads"), (self.toggle_all, "value"))
        self.children = [self.grid.fig, self.toggle_all, self._small_box]
        self._shown = None
        self._observe(self._redraw, ["attention", "token_type_ids", "head_masked"])
        self._observe(self._redraw_small, ["attentions", "head"])
        self._observe(self._on_show_all, ["show_all_heads"], owner=self)
        self.show_all_heads = show_all_heads

    def title(self) -> str:
        s = self.session
        parts = [f"Layer {s.layer}, head {s.head}"]
        if s.head_masked:
            parts.append("masked")
        note = self._layer_note(s.layer)  # ModernBERT: "local ±64 tokens" (sliding window) or "global"
        if note:
            parts.append(note)
        if self.causal:
            parts.append("causal")
        return " · ".join(parts)

    def _redraw(self, _change) -> None:
        s = self.session
        title = self.title()
        # The session assigns new arrays on every change: identity says whether anything is new.
        shown = (s.attention, s.token_type_ids, title)
        if s.attention is None and self._shown is not None and self._shown[0] is not None:
            # No input (the text was refused): an empty map, not the last input's.
            self._shown = (None, None, title)
            self.grid.show(np.zeros((1, 1)), [""], [""], title="no input to show")
            self.grid.draw("separators", None)
            return
        if s.attention is None:
            return
        same_data = self._shown is not None and shown[0] is self._shown[0] and shown[1] is self._shown[1]
        self._shown = shown
        if same_data:  # only the title (masked or not) changed: one small message
            if self.grid.fig.title != title:
                self.grid.fig.title = title
            return
        self.grid.show(s.attention, s.tokens, s.tokens, title=title)
        boundaries = segment_boundaries(s.token_type_ids) if s.text_pair is not None else []
        self.grid.draw("separators", separator_lines(boundaries, len(s.tokens)))

    # -- all heads of the layer --------------------------------------------------------------
    def _on_show_all(self, _change) -> None:
        # Shown before the figures are built: a figure first drawn inside a hidden box
        # measures zero size and may not recover.
        self._small_box.layout.display = None if self.show_all_heads else "none"
        if self.show_all_heads and not self.small:
            self._build_small()
        self._redraw_small(None)

    def _build_small(self) -> None:
        colours = ColorScale(**ATTENTION_COLOURS)
        for head in range(self.session.num_heads):
            small = GridFigure(colours, title=f"H{head}", axes=False,
                               layout={"width": "130px", "height": "130px"},
                               fig_margin={"top": 22, "bottom": 4, "left": 4, "right": 4})
            small.on_cell_click(self._guarded(lambda _row, _col, head=head: self.select_head(head)))
            self.small.append(small)
        self._small_box.children = [small.fig for small in self.small]

    def _redraw_small(self, _change) -> None:
        s = self.session
        if not self.show_all_heads or s.attentions is None:
            return
        for head, small in enumerate(self.small):
            small.show(s.attentions[head])
            small.fig.layout.border = "2px solid #e6550d" if head == s.head else "2px solid transparent"

    def select_head(self, head: int) -> None:
        """What clicking head ``head``'s small map does: make it the selected head."""
        if self.session.head != head:
            self.session.head = head

    def close(self) -> None:
        super().close()
        for small in self.small:
            small.close()
