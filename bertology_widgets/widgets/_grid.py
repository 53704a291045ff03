"""``GridFigure``: a bqplot grid heat map with labelled rows and columns, built once.

Rows and columns sit on linear scales with cell *boundaries* ``0..n``, so cell
``(i, j)`` spans ``[j, j + 1] x [i, i + 1]`` and overlays (separator lines, a
highlight frame, corner marks) are drawn in the same coordinates. Tick labels are
placed at cell centres through the axis ``tick_labels`` mapping, which also
copes with repeated tokens (an ordinal scale would merge them). A long row of
tokens shows every k-th label, so labels never overlap; the hover tooltip
names every cell. Every figure has a colour bar (a ``ColorAxis``).
"""

from __future__ import annotations

import html
import math

import ipywidgets as w
import numpy as np
from bqplot import Axis, ColorAxis, ColorScale, Figure, GridHeatMap, LinearScale, Lines
from bqplot.traits import array_dimension_bounds, array_serialization
from traittypes import Array

from ._base import SessionView, held
from ._style import TICK_STYLE, TITLE_STYLE, colour_bar_margin, narrowing


class _GridHeatMap(GridHeatMap):
    """bqplot's ``GridHeatMap`` without squeezing ``color``: a 1 x n grid (one token, one layer) stays 2-d."""

    color = Array(None, allow_none=True).tag(sync=True, scaled=True, rtype="Color", atype="bqplot.ColorAxis",
                                             **array_serialization).valid(array_dimension_bounds(2, 2))


def _centres(n: int) -> np.ndarray:
    return np.arange(n, dtype=float) + 0.5


LABEL_PITCH_PX = 14  # the least distance between two tick labels of 11 px text
# Masked heads, in every colouring: a dark triangle (edged in white) in the cell's top-left corner, which
# leaves the rest of the cell's colour to be read (frames and crosses on 40 heads hid it).
MASKED_OVERLAYS = {"masked_halo": {"colors": ["white"], "stroke_width": 3},
                   "masked": {"colors": ["#111827"], "stroke_width": 1, "fill": "inside",
                              "fill_colors": ["#111827"], "fill_opacities": [1.0]}}
CORNER = 0.35  # how far along each edge of a cell its corner mark runs


def _tick_labels(labels, step: int = 1) -> tuple[np.ndarray, dict]:
    """Tick values and labels: every ``step``-th cell centre. The front end looks labels up by
    the tick value printed as a JavaScript number."""
    centres = _centres(len(labels))[::step]
    return centres, {repr(float(c)): str(label) for c, label in zip(centres, list(labels)[::step])}


def label_step(n: int, length_px: float) -> int:
    """Show every k-th of ``n`` labels along ``length_px`` pixels so that none overlap."""
    fits = max(1, int(length_px // LABEL_PITCH_PX))
    return max(1, math.ceil(n / fits))


def _px(value, default: float) -> float:
    try:
        return float(str(value).removesuffix("px"))
    except (TypeError, ValueError):
        return default


def frame(row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a closed rectangle around cell ``(row, col)``."""
    return (np.array([col, col + 1, col + 1, col, col], dtype=float),
            np.array([row, row, row + 1, row + 1, row], dtype=float))


def frames(cells) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, shape ``(cells, 5)``: a closed rectangle around each ``(row, col)`` cell."""
    xy = [frame(row, col) for row, col in cells]
    return (np.array([x for x, _ in xy], dtype=float).reshape(-1, 5),
            np.array([y for _, y in xy], dtype=float).reshape(-1, 5))


def corners(cells) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, shape ``(cells, 4)``: a closed triangle in the top-left corner of each ``(row, col)`` cell."""
    x = [[col, col + CORNER, col, col] for _row, col in cells]
    y = [[row, row, row + CORNER, row] for row, _col in cells]
    return np.array(x, dtype=float).reshape(-1, 4), np.array(y, dtype=float).reshape(-1, 4)


class GridFigure:
    """A ``Figure`` holding one ``GridHeatMap`` (``heat``) and ``Lines`` overlays.

    Parameters
    ----------
    color_scale : bqplot.ColorScale
    overlays : dict of str -> dict
        Name -> ``Lines`` keyword arguments (``colors``, ``stroke_width``); each
        overlay is available as ``overlays[name]`` and starts hidden.
    tooltip : tuple of str or None
        Names for row, column and value in the hover tooltip (an ``HTML`` widget,
        ``tooltip``, written on hover with the row and column labels and the value).
    colour_label : str
        What the colour bar (``colour_axis``, a vertical ``ColorAxis``) measures; it is written
        above the bar, and the right margin grows to fit it (:func:`colour_bar_margin`).
    colour_labels : tuple of str
        Other labels the colour bar may show later (the margin fits the longest).
    axes : bool
        Draw labelled axes (False for small multiples).
    long_labels : bool
        Tick labels are words (tokens): slant the column labels, leave room.
    describe : callable, optional
        ``describe(row, col)`` -> the tooltip's HTML for a cell, instead of its labels and value.
    """

    def __init__(self, color_scale: ColorScale, *, title: str = "", overlays=None, tooltip=None,
                 axes: bool = True, long_labels: bool = False, row_label: str = "", col_label: str = "",
                 colour_label: str = "", colour_labels=(), value_format: str = ".3f", layout=None,
                 fig_margin=None, describe=None):
        self.describe = describe
        self.rows, self.cols = LinearScale(reverse=True, allow_padding=False), LinearScale(allow_padding=False)
        scales = {"row": self.rows, "column": self.cols, "color": color_scale}
        self.tooltip_names, self.value_format = tuple(tooltip or ()), value_format
        self.tooltip = w.HTML() if tooltip else None
        self.heat = _GridHeatMap(row=np.arange(3.0), column=np.arange(3.0), color=np.zeros((2, 2)), scales=scales,
                                stroke="white", tooltip=self.tooltip, interactions={"hover": "tooltip"})
        self.overlays = {
            name: Lines(x=np.zeros(2), y=np.zeros(2), scales={"x": self.cols, "y": self.rows}, visible=False,
                        interactions={}, **style)
            for name, style in (overlays or {}).items()
        }
        margin = dict(fig_margin or {"top": 40, "bottom": 40, "left": 50, "right": 10})
        if axes and colour_label:
            margin["right"] = max(margin["right"], colour_bar_margin(colour_label, *colour_labels))
        self.axes = []
        if axes:
            tick_style = dict(TICK_STYLE)
            # Long tick labels (tokens) slant and push the axis labels out of their way; each axis label sits
            # at the outer edge of its margin, clear of the tick labels.
            slant = {"tick_rotate": -50, "tick_style": {**tick_style, "text-anchor": "end"}}
            self.axes = [
                Axis(scale=self.cols, side="bottom", label=col_label, grid_lines="none",
                     label_offset=f"{margin['bottom'] - 8}px",
                     **(slant if long_labels else {"tick_style": tick_style})),
                Axis(scale=self.rows, side="left", label=row_label, grid_lines="none", tick_style=tick_style,
                     label_offset=f"{margin['left'] - 12}px"),
            ]
        # Vertical, at the right. bqplot draws the bar 100 px short of each end of the plot, so a
        # figure needs a plot over ~300 px tall for a readable bar; a small multiple (axes=False)
        # cannot show one, and keeps it hidden (its caption states the scale instead).
        self.colour_axis = ColorAxis(scale=color_scale, side="right", label=colour_label, num_ticks=5,
                                     tick_format=".2~f", tick_style={"font-size": "10px"}, visible=axes)
        layout = dict(layout or {})
        width = _px(layout.get("width"), 300) + (margin["right"] - (fig_margin or {}).get("right", margin["right"]))
        if axes:  # as wide as asked where there is room, narrower in a narrow notebook
            layout.update(narrowing(width, layout.get("height", "300px")))
        self.fig = Figure(marks=[self.heat, *self.overlays.values()], axes=[*self.axes, self.colour_axis],
                          title=title, padding_x=0, padding_y=0, animation_duration=0, layout=layout,
                          fig_margin=margin, display_toolbar=False,
                          title_style=TITLE_STYLE if axes else {"font-size": "12px"})
        # Room for tick labels along each axis, in pixels (for thinning them).
        self._room = (_px(layout.get("height"), 300) - margin["top"] - margin["bottom"],
                      width - margin["left"] - margin["right"])
        self._click_handler = None
        self._labels: tuple | None = None
        self._cell_labels: tuple[list, list] | None = None
        self._values: np.ndarray | None = None
        self.heat.on_element_click(self._on_element_click)
        self.heat.on_hover(self._on_hover)

    def show(self, color, row_labels=None, col_labels=None, title=None, values=None) -> None:
        """Show ``color`` (shape ``(rows, cols)``), with new tick labels if given; one message per widget.

        ``values`` (same shape, default ``color``) is what the tooltip prints, e.g. raw
        weights when ``color`` is normalised.
        """
        color = np.asarray(color, dtype=float)
        n_rows, n_cols = color.shape
        self._values = color if values is None else np.asarray(values, dtype=float)
        if row_labels is not None:
            self._cell_labels = (list(row_labels), list(col_labels))
        with held(self.fig, self.heat, *self.axes):
            shape_changed = self.heat.color is None or self.heat.color.shape != color.shape
            # color first: row/column are validated against its shape.
            self.heat.color = color
            if shape_changed:
                self.heat.row, self.heat.column = np.arange(n_rows + 1.0), np.arange(n_cols + 1.0)
            labels = None if row_labels is None else (tuple(row_labels), tuple(col_labels))
            if self.axes and labels is not None and labels != self._labels:
                self._labels = labels
                rows_room, cols_room = self._room
                self.axes[0].tick_values, self.axes[0].tick_labels = _tick_labels(
                    labels[1], label_step(n_cols, cols_room))
                self.axes[1].tick_values, self.axes[1].tick_labels = _tick_labels(
                    labels[0], label_step(n_rows, rows_room))
            if title is not None:
                self.fig.title = title

    def draw(self, name: str, xy) -> None:
        """Draw overlay ``name`` at ``(x, y)`` (1-d, or 2-d for several lines); ``None`` hides it."""
        lines = self.overlays[name]
        with lines.hold_sync():
            if xy is None or len(xy[0]) == 0:
                lines.visible = False
                return
            lines.x, lines.y = xy
            if lines.fill != "none":  # bqplot fills line i with fill_colors[i]: one colour per shape
                n = len(xy[0]) if np.ndim(xy[0]) == 2 else 1
                lines.colors, lines.fill_colors = [lines.colors[0]] * n, [lines.fill_colors[0]] * n
                lines.fill_opacities = [lines.fill_opacities[0]] * n
            lines.visible = True

    # -- hover -------------------------------------------------------------------------------
    def _on_hover(self, _mark, content) -> None:
        point = content.get("point") or content.get("data") or {}
        try:
            row, col = int(point["rowNum"]), int(point["columnNum"])
        except (KeyError, TypeError, ValueError):
            return
        self.hover(row, col)

    def hover(self, row: int, col: int) -> None:
        """Write the tooltip for cell ``(row, col)``: its row and column labels and its value."""
        if self.tooltip is None or self._values is None:
            return
        if not (0 <= row < self._values.shape[0] and 0 <= col < self._values.shape[1]):
            return
        if self.describe is not None:
            self.tooltip.value = f'<div style="padding:2px 6px;font-size:12px">{self.describe(row, col)}</div>'
            return
        labels = self._cell_labels or (range(self._values.shape[0]), range(self._values.shape[1]))
        names = self.tooltip_names
        value = format(float(self._values[row, col]), self.value_format)
        text = (f"{html.escape(names[0])} <b>{html.escape(str(labels[0][row]))}</b><br>"
                f"{html.escape(names[1])} <b>{html.escape(str(labels[1][col]))}</b><br>"
                f"{html.escape(names[2])} <b>{value}</b>")
        self.tooltip.value = f'<div style="padding:2px 6px;font-size:12px">{text}</div>'

    # -- clicks ------------------------------------------------------------------------------
    def on_cell_click(self, handler) -> None:
        """Call ``handler(row, col)`` when a cell is clicked."""
        self._click_handler = handler

    def _on_element_click(self, _mark, content) -> None:
        # bqplot's "select" interaction loses the cell on GridHeatMap (its d3 v7 click
        # listener reads rowNum off the event), but the element_click message carries it.
        data = content.get("data") or {}
        try:
            row, col = int(data["rowNum"]), int(data["columnNum"])
        except (KeyError, TypeError, ValueError):  # not a cell: nothing to do
            return
        if self._click_handler is not None:
            self._click_handler(row, col)

    def click(self, row: int, col: int) -> None:
        """Simulate a click on cell ``(row, col)``: the message the front end sends."""
        self.heat._handle_custom_msgs(None, {"event": "element_click", "data": {"rowNum": row, "columnNum": col}})

    def save_png(self, filename: str) -> None:
        """Ask the browser to download the figure as PNG (needs a live front end)."""
        self.fig.save_png(filename)

    def save_svg(self, filename: str) -> None:
        """Ask the browser to download the figure as SVG (needs a live front end)."""
        self.fig.save_svg(filename)

    def close(self) -> None:
        self.heat.on_element_click(self._on_element_click, remove=True)
        self.heat.on_hover(self._on_hover, remove=True)
        for widget in (self.fig, self.heat, *self.overlays.values(), *self.axes, self.colour_axis, self.rows,
                       self.cols):
            widget.close()
        if self.tooltip is not None:
            self.tooltip.close()


class FigureView(SessionView):
    """Private base of the views whose picture is a :class:`GridFigure` in ``self.grid``."""

    export_name = "figure"

    def save_png(self, filename: str | None = None) -> None:
        """Download the picture as PNG. bqplot renders it in the browser, so the widget must be
        shown in a live front end (JupyterLab, Notebook 7, Voila); the file lands in the browser's
        downloads, not next to the kernel."""
        self.grid.save_png(filename or f"{self.export_name}.png")

    def save_svg(self, filename: str | None = None) -> None:
        """Download the picture as SVG (in the browser, like :meth:`save_png`)."""
        self.grid.save_svg(filename or f"{self.export_name}.svg")

    def close(self) -> None:
        super().close()
        self.grid.close()
