"""``HiddenStatesView``: token norms, layer-to-layer similarity and a PCA of the hidden states."""

from __future__ import annotations

import ipywidgets as w
import numpy as np
from bqplot import ColorAxis, ColorScale, LinearScale, Scatter, Tooltip
from traitlets import Int, TraitError, validate

from ..analyses.representations import layer_to_layer_cosine, pca_2d, token_norms
from ._base import SessionView, held
from ._grid import GridFigure
from ._style import CHART_MARGIN, axis, colour_bar_margin, figure, state_names
from .tokens import session_tokens

HIGHLIGHT_STYLE = {"colors": ["#e6550d"], "stroke_width": 2}


def cosine_colours(cosine) -> dict:
    """``ColorScale`` settings fitted to ``cosine``'s range: diverging around 0 when it has both signs,
    else sequential from its least to its greatest value (states are often all near 1)."""
    cosine = np.asarray(cosine, dtype=float)
    low, high = (float(cosine.min()), float(cosine.max())) if cosine.size else (-1.0, 1.0)
    if high - low < 1e-6:
        low, high = low - 0.01, high + 0.01
    if low < 0 < high:
        return {"scheme": "RdBu", "min": low, "max": high, "mid": 0.0}
    return {"scheme": "viridis", "min": low, "max": high, "mid": None}


def state_labels(num_layers: int) -> list[str]:
    """Names of the ``num_layers + 1`` rows of ``hidden_states``: ``"emb"``, then ``"L0"``, ``"L1"``, ...
    (:func:`~bertology_widgets.widgets._style.state_names`, the one naming every view uses)."""
    return state_names(num_layers)


def padded(values, low: float = 0.08, high: float = 0.08) -> tuple[float, float]:
    """``(min, max)`` of a scale around ``values`` with room on each side (a share of their range), so that
    points sit off the axes and their labels inside the plot."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else 1.0
    return lo - low * span, hi + high * span


def row_frame(row: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a closed rectangle around row ``row`` of a grid ``n_cols`` wide."""
    return (np.array([0, n_cols, n_cols, 0, 0], dtype=float),
            np.array([row, row, row + 1, row + 1, row], dtype=float))


class HiddenStatesView(SessionView):
    """What the layers do to each token of ``session.hidden_states``.

    Three pictures, redrawn when ``hidden_states``, ``tokens`` or ``layer`` change:

    * ``norms``: the L2 norm of every token's state, layers (``emb``, ``L0``, ...) x tokens;
    * ``cosine``: the cosine similarity of each token's state with its state
      one layer below (row ``Ll`` compares layer ``l``'s output with its
      input), colour scale fitted to the data (:func:`cosine_colours`);
    * ``scatter``: the tokens at one layer projected on their first two
      principal components (:func:`~bertology_widgets.analyses.representations.pca_2d`),
      labelled with the tokens and coloured by position.

    The selected layer's rows are framed in orange.

    Traits
    ------
    pca_layer : int
        Row of ``hidden_states`` the PCA shows, ``0`` (embeddings, labelled "emb")
        .. ``num_layers`` (labelled ``L{num_layers - 1}``). Follows ``session.layer + 1``
        (the output of the selected layer) whenever the session's layer changes; the
        slider, labelled like the heat maps' rows, sets it directly.

    Attributes
    ----------
    norms, cosine : GridFigure
        The two heat maps (``.fig``, ``.heat``).
    pca_fig : bqplot.Figure
    scatter : bqplot.Scatter
        ``x``, ``y`` the two components, ``names`` the tokens.
    slider : ipywidgets.SelectionSlider
        Options "emb", "L0", ...; its value, linked to ``pca_layer``, is the row index.
    """

    pca_layer = Int(0)

    def __init__(self, session, size: int = 460, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-hidden-states")
        layout = {"width": f"{size}px", "height": f"{size}px"}  # tall enough for a colour bar
        margin = {"top": 40, "bottom": 90, "left": 60, "right": 76}
        grid_kwargs: dict = dict(overlays={"selected": HIGHLIGHT_STYLE}, row_label="layer", col_label="token",
                           long_labels=True, layout=layout, fig_margin=margin)
        self.norms = GridFigure(ColorScale(scheme="viridis"), title="Norm of each token's state",
                                tooltip=("layer", "token", "norm"), colour_label="norm", value_format=".2f",
                                **grid_kwargs)
        self.cosine = GridFigure(ColorScale(**cosine_colours([-1.0, 1.0])), title="Cosine with the layer below",
                                 tooltip=("layer", "token", "cosine"), colour_label="cosine",
                                 **grid_kwargs)
        self.pca_x, self.pca_y = LinearScale(), LinearScale()
        position = ColorScale(scheme="viridis")
        self.scatter = Scatter(x=np.zeros(1), y=np.zeros(1), names=[""], display_names=True, default_size=40,
                               scales={"x": self.pca_x, "y": self.pca_y, "color": position}, color=np.zeros(1),
                               tooltip=Tooltip(fields=["name", "x", "y"], labels=["token", "PC 1", "PC 2"],
                                               formats=["", ".2f", ".2f"]))
        self.position_axis = ColorAxis(scale=position, side="right", label="position", num_ticks=4,
                                       tick_format=".0f", tick_style={"font-size": "10px"})
        self.pca_fig = figure([self.scatter], [axis(self.pca_x, "PC 1", grid_lines="none"),
                                               axis(self.pca_y, "PC 2", side="left", grid_lines="none"),
                                               self.position_axis],
                              width=size, height=size, margin={**CHART_MARGIN, "right": colour_bar_margin("position")})
        self.slider = w.SelectionSlider(options=list(zip(state_labels(session.num_layers),
                                                         range(session.num_layers + 1))),
                                        description="PCA of", layout={"width": "100%", "max_width": f"{size}px"})
        self._link((self, "pca_layer"), (self.slider, "value"))
        self._dlink((session, "layer"), (self, "pca_layer"), lambda layer: layer + 1)
        self.children = [w.HBox([self.norms.fig, self.cosine.fig], layout={"flex_flow": "row wrap"}),
                         w.HTML("<small>The PCA colours each token by its position in the input "
                                "(the colour bar), and writes the token to the right of its point.</small>"),
                         w.VBox([self.slider, self.pca_fig])]
        self._drawn: tuple | None = None
        self._observe(self._redraw_grids, ["hidden_states", "tokens"])
        self._observe(self._redraw_selection, ["hidden_states", "tokens", "layer"])
        self._observe(self._redraw_pca, ["hidden_states", "tokens"])
        self._observe(self._redraw_pca, ["pca_layer"], owner=self)

    @validate("pca_layer")
    def _check_pca_layer(self, proposal):
        value = int(proposal["value"])
        if not 0 <= value <= self.session.num_layers:
            raise TraitError(f"pca_layer {value} does not exist; choose 0 (embeddings)..{self.session.num_layers}")
        return value

    def _ready(self) -> bool:
        s = self.session
        return s.hidden_states is not None and len(s.tokens) == np.shape(s.hidden_states)[1]

    def _redraw_grids(self, _change) -> None:
        s = self.session
        # The session assigns a new array per capture: identity says whether anything is new.
        if not self._ready() or (self._drawn is not None and self._drawn[0] is s.hidden_states
                                 and self._drawn[1] == s.tokens):
            return
        self._drawn = (s.hidden_states, list(s.tokens))
        rows, tokens = state_labels(s.num_layers), session_tokens(s)
        cosine = layer_to_layer_cosine(s.hidden_states)
        colours = self.cosine.heat.scales["color"]
        with colours.hold_sync():
            for key, value in cosine_colours(cosine).items():
                setattr(colours, key, value)
        self.norms.show(token_norms(s.hidden_states), rows, tokens)
        self.cosine.show(cosine, rows[1:], tokens)

    def _redraw_selection(self, _change) -> None:
        s = self.session
        if not self._ready():
            return
        self.norms.draw("selected", row_frame(s.layer + 1, len(s.tokens)))
        self.cosine.draw("selected", row_frame(s.layer, len(s.tokens)))

    def _redraw_pca(self, _change) -> None:
        s = self.session
        if not self._ready():
            return
        points = pca_2d(s.hidden_states[self.pca_layer])
        with held(self.pca_fig, self.scatter):
            # names first: bqplot checks them against x when display_names is on.
            self.scatter.names = session_tokens(s)
            self.scatter.x, self.scatter.y = points[:, 0], points[:, 1]
            # Room to the right for the token written after each point, and off the axes all round.
            self.pca_x.min, self.pca_x.max = padded(points[:, 0], 0.08, 0.3)
            self.pca_y.min, self.pca_y.max = padded(points[:, 1], 0.1, 0.1)
            self.scatter.color = np.arange(len(s.tokens), dtype=float)
            self.pca_fig.title = f"PCA of the tokens' states at {state_labels(s.num_layers)[self.pca_layer]}"

    def close(self) -> None:
        super().close()
        for widget in (self.norms, self.cosine):
            widget.close()
        self.pca_fig.close()
        self.position_axis.close()
        self.scatter.close()
