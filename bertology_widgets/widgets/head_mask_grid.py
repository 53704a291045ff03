"""``HeadMaskGrid``: layers x heads, which heads are masked; click a cell to toggle it."""

from __future__ import annotations

import ipywidgets as w
import numpy as np
from bqplot import ColorScale
from traitlets import Enum

from ..core.mask_files import save_mask
from ._grid import MASKED_OVERLAYS, FigureView, GridFigure, corners, frame
from ._style import CSS, labelled, layer_names
from ._style import legend_html as key_html
from .role_colours import ROLE_COLOURS, RoleTooltip, legend_html, role_indices

MASKED_RED, KEPT_PALE = "#d62728", "#eef3f8"
MASK_COLOURS = {"colors": [MASKED_RED, KEPT_PALE], "min": 0.0, "max": 1.0}
VALUE_COLOURS = {"colors": ["#f7fbff", "#08306b"], "min": None, "max": None}  # scaled to the data
COLOUR_BY = ("mask", "importance", "entropy", "role", "induction")  # induction: causal models only
# colour_by -> (figure title, colour bar label; "" for a categorical colouring, told by a legend instead)
TITLES = {"mask": ("Head mask", ""),
          "importance": ("Head importance", "importance"),
          "entropy": ("Attention entropy", "nats"),
          "role": ("Head roles", ""),
          "induction": ("Induction heads", "induction")}
MASK_KEY = key_html([("masked (gate 0)", MASKED_RED, "swatch"), ("kept (gate 1)", KEPT_PALE, "swatch"),
                     ("corner mark: masked head", "\u25e4")])


class HeadMaskGrid(FigureView):
    """One cell per head, rows are layers: red cells are masked; a click toggles the head.

    The selected head (``session.layer``, ``session.head``) is framed in
    orange; masked heads carry a dark corner mark (on a white halo) in every
    colouring, which leaves the cell's colour readable. Importance and entropy
    have a colour bar; the mask (0 or 1) and the roles (categories) have a
    legend of swatches instead, as categorical figures do.

    Traits
    ------
    colour_by : {"mask", "importance", "entropy", "role", "induction"}
        What the cell colour shows: the gate (1 kept, 0 masked), or
        ``session.importance`` / ``session.entropy`` once computed, or the
        head's role (``session.roles``; picking it starts
        :meth:`ModelSession.compute_roles` in the background when needed),
        with a legend and the role's name in the hover tooltip, or (causal
        models only, offered only to them) the head's induction score,
        ``session.role_measures["induction"]``, computed with the roles.

    Attributes
    ----------
    grid : GridFigure
        ``grid.fig`` the ``Figure``, ``grid.heat`` its ``GridHeatMap``.
    colour_selector : ipywidgets.ToggleButtons
    ablation_selector : ipywidgets.ToggleButtons
        Linked to ``session.ablation``: what a masked head outputs (zeros or its mean).
    legend : ipywidgets.HTML
        Under the map: the roles' or the mask's swatches, or what the corner mark means.
    role_tooltip : RoleTooltip
        The tooltip while colouring by role.
    """

    colour_by = Enum(COLOUR_BY, default_value="mask")
    export_name = "head_mask"

    def __init__(self, session, size: int = 380, controls: bool = True, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-mask-grid")
        self.colours = ColorScale(**MASK_COLOURS)
        self.grid = GridFigure(self.colours, title=TITLES["mask"][0], colour_label="importance",
                               overlays={**MASKED_OVERLAYS, "selected": {"colors": ["#e6550d"], "stroke_width": 3}},
                               tooltip=("layer", "head", "value"), row_label="layer", col_label="head",
                               layout={"width": f"{size + 40}px", "height": f"{max(400, size * 3 // 4)}px"},
                               fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 76})
        self.grid.on_cell_click(self._guarded(self._on_cell_click))
        offered = [name for name in COLOUR_BY if name != "induction" or session.causal]
        self.colour_selector = w.ToggleButtons(options=[(name.capitalize(), name) for name in offered],
                                               style={"button_width": "auto"})
        self.note = w.HTML()
        # bqplot's hover tooltip follows the pointer: it must never take a click meant for the cell below it.
        self.hint = w.HTML(CSS + "<small>Click a cell to mask or unmask that head.</small>")
        self._link((self, "colour_by"), (self.colour_selector, "value"))
        self.ablation_selector = w.ToggleButtons(options=[("Zero", "zero"), ("Mean", "mean")],
                                                 style={"button_width": "60px"})
        self._link((session, "ablation"), (self.ablation_selector, "value"))
        self.legend = w.HTML()
        self._value_tooltip = self.grid.heat.tooltip
        self.role_tooltip = RoleTooltip(lambda: self.session.roles)
        self.grid.heat.on_hover(self._guarded(self.role_tooltip.on_hover))
        # Under the importance panel's own map, the dashboard's controls would only repeat themselves.
        shown = [self.grid.fig, self.legend, self.note]
        self.children = [self.grid.fig, self.legend, self.hint, labelled("colour by", self.colour_selector, "70px"),
                         self.note, labelled("masked heads output", self.ablation_selector, "140px")] \
            if controls else shown
        self._observe(self._redraw, ["mask", "importance", "entropy", "roles", "role_measures"])
        self._observe(self._ask_for_roles, ["colour_by"], owner=self, call_now=False)
        self._observe(self._redraw, ["colour_by"], owner=self, call_now=False)
        self._observe(self._frame_selected, ["layer", "head"])

    def scores(self) -> np.ndarray | None:
        """``session.importance``, ``session.entropy`` or role indices, as ``colour_by`` says.

        None for the mask, or when not computed.
        """
        if self.colour_by == "role":
            return None if self.session.roles is None else role_indices(self.session.roles)
        if self.colour_by == "induction":
            return (self.session.role_measures or {}).get("induction")
        return None if self.colour_by == "mask" else getattr(self.session, self.colour_by)

    def values(self) -> np.ndarray:
        """What the cells show, shape ``(layers, heads)``: the chosen scores, else the mask."""
        chosen = self.scores()
        return np.asarray(self.session.mask if chosen is None else chosen, dtype=float)

    def _redraw(self, _change) -> None:
        s = self.session
        chosen = self.scores()
        missing = self.colour_by != "mask" and chosen is None
        self.note.value = f"<i>{self.colour_by} is not computed yet; showing the mask</i>" if missing else ""
        by_role = self.colour_by == "role" and chosen is not None
        if missing and self.colour_by in ("role", "induction") and s.analysis_busy \
                and s.analysis_status == "head roles":
            self.note.value = "<i>computing head roles in the background; showing the mask</i>"
        self.legend.value = legend_html(s.roles) if by_role else MASK_KEY if chosen is None else key_html(
            [("corner mark: masked head", "\u25e4")])
        tooltip = self.role_tooltip if by_role else self._value_tooltip
        if self.grid.heat.tooltip is not tooltip:
            self.grid.heat.tooltip = tooltip
        palette = ROLE_COLOURS if by_role else MASK_COLOURS if chosen is None else VALUE_COLOURS
        with self.colours.hold_sync():
            for key, value in palette.items():
                setattr(self.colours, key, value)
        title, colour_label = TITLES["mask" if chosen is None else self.colour_by]
        with self.grid.colour_axis.hold_sync():
            if self.grid.colour_axis.label != colour_label:
                self.grid.colour_axis.label = colour_label
            self.grid.colour_axis.visible = bool(colour_label)
        labels = layer_names(s.num_layers), range(s.num_heads)
        self.grid.show(self.values(), *labels, title=f"{title} {s.heads_note}".strip())
        masked = np.argwhere(np.asarray(s.mask) == 0).tolist()
        marks = corners(masked) if masked else None
        self.grid.draw("masked_halo", marks)
        self.grid.draw("masked", marks)

    def _ask_for_roles(self, _change) -> None:
        """Colouring by role or induction (chosen by the user or by code) asks the session for the roles once."""
        s = self.session
        if self.colour_by in ("role", "induction") and self.scores() is None and not s.analysis_busy:
            s.compute_roles()

    def _frame_selected(self, _change) -> None:
        self.grid.draw("selected", frame(self.session.layer, self.session.head))

    def _on_cell_click(self, layer: int, head: int) -> None:
        """What clicking cell ``(layer, head)`` does: toggle that head's mask."""
        self.session.toggle_head(layer, head)

    # -- export -----------------------------------------------------------------------------
    def save_mask(self, path) -> None:
        """Write the mask to ``path``: ``.npy`` (float32 array) or ``.json`` (``{"mask": [[...]]}``)."""
        save_mask(self.session.mask, path)
