"""``PatchingPanel``: which heads carry the decision for this input? (activation patching)."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
from bqplot import ColorScale

from ._grid import FigureView, GridFigure, frame
from ._style import empty_html, layer_names, symmetric_range

# Hurts, nothing, restores: ColorBrewer's RdBu on a range symmetric around 0 (symmetric_range), so that a
# head at -0.02 is as pale as one at +0.02, as activation-patching figures draw it.
PATCH_COLOURS = {"colors": ["#b2182b", "#f7f7f7", "#2166ac"], "mid": 0.0, "min": -1.0, "max": 1.0}


class PatchingPanel(FigureView):
    """Patch each head of the current input (clean) into a corrupted input; a layer x head heat map.

    The clean input is the session's current input (``session.text``); the
    corrupted one is ``session.corrupted_text``, suggested by the session
    (a dev example of the same token length with the other label, or the
    sentence with a sentiment word swapped) and editable here. "Patch" runs
    :meth:`ModelSession.compute_patching` in the background; the map shows
    ``session.patching["grid"]``: the normalised logit difference, 1 where
    the head alone restores the clean prediction, 0 where it changes nothing,
    on a diverging scale symmetric around 0. Before the first run the panel
    draws no map and says to press Patch. Clicking a cell selects that head.

    Attributes
    ----------
    clean : ipywidgets.HTML
    corrupted : ipywidgets.Text
        Linked to ``session.corrupted_text``.
    patch_button : ipywidgets.Button
    predictions : ipywidgets.HTML
        The clean and corrupted predictions of the last run.
    grid : GridFigure
    """

    export_name = "patching"

    def __init__(self, session, size: int = 380, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-patching-panel")
        self.colours = ColorScale(**PATCH_COLOURS)
        self.grid = GridFigure(self.colours, title="Activation patching (normalised logit difference)",
                               overlays={"selected": {"colors": ["#e6550d"], "stroke_width": 3}},
                               tooltip=("layer", "head", "restored"), row_label="layer", col_label="head",
                               colour_label="restored",
                               layout={"width": f"{size}px", "height": f"{max(400, size * 3 // 4)}px"},
                               fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 76})
        self.grid.on_cell_click(self._guarded(self._on_cell_click))
        self.clean = w.HTML()
        self.corrupted = w.Text(description="corrupted", placeholder="the input with one word changed",
                                continuous_update=False, layout={"width": "100%", "max_width": "520px"})
        self.patch_button = w.Button(description="Patch", icon="play", button_style="primary",
                                     layout={"width": "auto"})
        self.empty = w.HTML(empty_html("Patch", "run the clean and the corrupted input and patch each head in turn"))
        self.predictions = w.HTML()
        self._dlink((session, "text"), (self.clean, "value"), lambda text: f"<b>clean</b>: {html.escape(text)}")
        self._link((session, "corrupted_text"), (self.corrupted, "value"))
        self._dlink((session, "analysis_busy"), (self.patch_button, "disabled"))
        self._on_click(self.patch_button, self.compute)
        hint = w.HTML("<small>1: patching this head alone restores the clean prediction; 0: no change. "
                      "Click a cell to select that head.</small>")
        self.figure = w.VBox([self.grid.fig, hint], layout={"min_width": "0"})
        self.children = [self.clean, w.HBox([self.corrupted, self.patch_button]), self.predictions, self.empty,
                         self.figure]
        self._observe(self._redraw, ["patching"])
        self._observe(self._frame_selected, ["layer", "head"])

    def compute(self):
        """Run the patching for the current inputs (in the background)."""
        return self.session.compute_patching()

    def _label(self, index: int) -> str:
        names = self.session.label_names
        return names[index] if 0 <= index < len(names) else str(index)

    def _redraw(self, _change) -> None:
        s, data = self.session, self.session.patching
        self.empty.layout.display = "none" if data else None
        self.figure.layout.display = None if data else "none"
        if not data:
            self.predictions.value = ""
            return
        grid = np.nan_to_num(np.asarray(data["grid"], dtype=float))
        with self.colours.hold_sync():
            self.colours.min, self.colours.max = symmetric_range(grid)
        self.grid.show(grid, layer_names(s.num_layers), range(s.num_heads))
        self.predictions.value = (
            f"clean &rarr; <b>{html.escape(self._label(data['clean_prediction']))}</b>, corrupted &rarr; "
            f"<b>{html.escape(self._label(data['corrupted_prediction']))}</b>; "
            f"best head: L{int(np.argmax(grid) // grid.shape[1])}, head {int(np.argmax(grid) % grid.shape[1])} "
            f"({grid.max():.2f})")

    def _frame_selected(self, _change) -> None:
        self.grid.draw("selected", frame(self.session.layer, self.session.head))

    def _on_cell_click(self, layer: int, head: int) -> None:
        """Clicking cell ``(layer, head)`` selects that head in the main view."""
        with self.session.hold_trait_notifications():
            self.session.layer, self.session.head = layer, head
