"""``LogitLensPanel``: when does the answer appear? The logit lens of the shown input, layers x positions."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
from bqplot import ColorScale

from ._grid import FigureView, GridFigure
from ._style import labelled, state_names
from .tokens import display_tokens, is_byte_level

# lens_measure -> (colour scale settings, colour bar label, the panel's title)
MEASURES = {
    "rank": ({"colors": ["#08306b", "#6baed6", "#f7fbff"], "min": 0.0, "max": None}, "log\u2081\u2080 rank",
             "Rank of the final prediction in each layer (1 = its top token)"),
    "probability": ({"colors": ["#f7fbff", "#08306b"], "min": 0.0, "max": 1.0}, "probability",
                    "Probability of the final prediction in each layer"),
}
ROW_PX, COL_PX = 15, 44  # the least height of a layer's row and width of a position's column


def lens_colour(lens: dict, measure: str) -> np.ndarray:
    """``(layers + 1, pos)``: ``log10`` of the final prediction's rank, or its probability."""
    if measure == "rank":
        return np.log10(np.asarray(lens["final_rank"], dtype=float))
    return np.asarray(lens["final_probs"], dtype=float)


def cell_text(lens: dict, row: int, col: int, inputs: list[str]) -> str:
    """The tooltip of one cell: the layer, the position, the layer's top tokens and the final prediction's rank."""
    def token(t: str) -> str:
        return html.escape(repr(t)[1:-1]) or "&nbsp;"

    layer = state_names(len(lens["final_rank"]) - 1)[row]
    tops = ", ".join(f"<b>{token(t)}</b> {p:.2f}" for t, p in zip(lens["top_tokens"][row][col][:3],
                                                                   lens["top_probs"][row][col][:3]))
    final = lens["top_tokens"][-1][col][0]
    target = "next token" if lens.get("kind") == "causal" else "token"
    return (f"{layer} &middot; position {col} <b>{html.escape(inputs[col])}</b><br>top: {tops}<br>"
            f"final {target} <b>{token(final)}</b>: rank {int(lens['final_rank'][row][col])}, "
            f"p {float(lens['final_probs'][row][col]):.3f}")


def first_top_rows(lens: dict) -> list[int | None]:
    """Per position, the first row whose top-1 is the final prediction (None where no row's is, a tie)."""
    ranks = np.asarray(lens["final_rank"])
    return [int(np.flatnonzero(ranks[:, col] == 1)[0]) if (ranks[:, col] == 1).any() else None
            for col in range(ranks.shape[1])]


def caption(lens: dict, mask_token: str | None) -> str:
    """What the rows are, and where the final prediction first tops a layer: at the last position (causal), or at
    the first mask token (masked; nothing said without one)."""
    text = ("Rows: the embeddings (emb), then each layer's output, read through the model's final norm and "
            "unembedding.")
    if lens.get("kind") == "causal":
        col, where = len(lens["tokens"]) - 1, "next token after the text"
    elif mask_token in lens["tokens"]:
        col = lens["tokens"].index(mask_token)
        where = f"fill of {mask_token} at position {col}"
    else:
        return text
    first = first_top_rows(lens)[col]
    final = lens["top_tokens"][-1][col][0]
    names = state_names(len(lens["final_rank"]) - 1)
    layer = "in no layer before the output" if first is None else f"first at {names[first]}"
    return f"{text} The model's {where}, <b>{html.escape(repr(final), quote=False)}</b>, is the top token {layer}."


class LogitLensPanel(FigureView):
    """The logit lens (nostalgebraist 2020) of the shown input, under the session's mask and ablation.

    Rows are the residual stream before the first layer (``emb``) and after each layer (``L0`` ...),
    read through the model's own final norm and unembedding; columns are the input's positions (for a
    causal LM, position ``i`` predicts token ``i + 1``). A cell's colour is the rank of the model's final
    prediction at that position in the layer's distribution (log scale: dark is rank 1) or its
    probability (``session.lens_measure``); the hover tooltip names the layer's top tokens. While the panel
    is shown it sets ``session.show_lens``, so the lens is computed, and follows every mask change.

    Attributes
    ----------
    grid : GridFigure
    measure : ipywidgets.ToggleButtons
        Linked to ``session.lens_measure``.
    caption, status : ipywidgets.HTML
    """

    export_name = "logit_lens"

    def __init__(self, session, width: int = 640, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-logit-lens")
        rows = session.num_layers + 1
        self.colours = ColorScale(**MEASURES["rank"][0])
        self.grid = GridFigure(self.colours, title=MEASURES["rank"][2], tooltip=("layer", "position", "value"),
                               row_label="layer", col_label="input token", long_labels=True,
                               colour_label=MEASURES["rank"][1], colour_labels=[m[1] for m in MEASURES.values()],
                               layout={"width": f"{width}px", "height": f"{max(360, ROW_PX * rows + 150)}px"},
                               fig_margin={"top": 40, "bottom": 90, "left": 60, "right": 90},
                               describe=self._describe)
        self.measure = w.ToggleButtons(options=[("Rank (log)", "rank"), ("Probability", "probability")],
                                       style={"button_width": "auto"})
        self.caption = w.HTML()
        self.status = w.HTML()
        self.error = self._message_box("prediction_error", "#b91c1c", "#fef2f2")
        self._link((session, "lens_measure"), (self.measure, "value"))
        self._observe(self._redraw, ["logit_lens", "lens_measure", "prediction_busy", "show_lens"])
        self.children = [labelled("colour by", self.measure, "70px"), self.grid.fig, self.caption, self.status,
                         self.error]
        self._ask(True)

    def set_active(self, active: bool) -> None:
        """A shown panel asks the session for the lens (``show_lens``); a folded one stops asking."""
        self._ask(active)
        super().set_active(active)

    def _ask(self, active: bool) -> None:
        if self.session.show_lens != bool(active):
            self.session.show_lens = bool(active)

    def _inputs(self) -> list[str]:
        lens = self.session.logit_lens
        return display_tokens(lens.get("tokens", []), is_byte_level(self.session.tokenizer))

    def _describe(self, row: int, col: int) -> str:
        return cell_text(self.session.logit_lens, row, col, self._inputs())

    def _redraw(self, _change) -> None:
        s = self.session
        lens = s.logit_lens
        if not lens:
            self.caption.value = ""
            self.status.value = "<small>computing the lens&hellip;</small>" if s.show_lens else ""
            return
        settings, label, title = MEASURES[s.lens_measure]
        colour = lens_colour(lens, s.lens_measure)
        with self.colours.hold_sync():
            for key, value in settings.items():
                setattr(self.colours, key, value if value is not None else max(1.0, float(colour.max())))
        if self.grid.colour_axis.label != label:
            self.grid.colour_axis.label = label
        inputs = self._inputs()
        self.grid.show(colour, state_names(len(colour) - 1), inputs, title=title)
        self.caption.value = f"<small>{caption(lens, getattr(s.tokenizer, 'mask_token', None))}</small>"
        self.status.value = "<small>updating&hellip;</small>" if s.prediction_busy else ""


__all__ = ["LogitLensPanel", "caption", "cell_text", "first_top_rows", "lens_colour"]
