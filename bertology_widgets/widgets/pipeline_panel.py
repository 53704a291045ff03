"""``PipelinePanel``: "Pipeline: what each layer knows", Tenney et al.'s Figure 1 under the head mask.

Shows ``session.pipeline`` (a :class:`~bertology_widgets.analyses.pipeline.PipelineResult`):

* per-task lines of probe accuracy by layer, each normalised between the
  task's majority baseline (0) and its best layer (1); a probe below its
  baseline lowers the axis, down to ``Y_FLOOR`` (lower values are drawn on
  it); hovering a point shows the raw accuracy;
* each task's expected layer (triangle, from the scalar mix) and centre of
  gravity (diamond, from cumulative scoring) above the lines;
* the scalar-mix weights as a task x layer heat map with a colour bar;
* a "Compute" button (re-runs under the current mask) and an "Unmasked
  overlay" toggle that draws the unmasked result dashed beneath.

Nothing is computed until the button is pressed (or :meth:`run` called); a
folded panel redraws nothing, and its figures join the page when it is first
opened (a figure drawn folded has no size: its plot area would be negative).
"""

from __future__ import annotations

import html
import math

import ipywidgets as w
import numpy as np
from bqplot import ColorScale, LinearScale, Lines, Scatter, Tooltip
from traitlets import Bool, Instance, Unicode

from ..analyses.pipeline import PipelineResult
from ._base import SessionView, error_html, follow_analysis
from ._grid import GridFigure
from ._style import axis, empty_html, figure, legend_html, state_at, state_names

TASK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
MARKER_Y = 1.12  # where the E[l] and CoG markers sit, above the normalised lines
Y_LOW = -0.1  # the y axis's lower end while no probe is below its majority baseline
Y_FLOOR = -1.0  # the lowest it goes: as far below the baseline as the best layer is above it


def plotted(*normalised: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Normalised accuracies ``(tasks, layers + 1)`` as drawn, and the y axis's lower end.

    The axis reaches down to the lowest value with a margin, but not below ``Y_FLOOR``; a value
    below the floor is drawn on it, so no line or point leaves the plot.
    """
    drawn = [np.clip(np.asarray(values, dtype=float), Y_FLOOR, None) for values in normalised]
    lowest = min((float(np.nanmin(values)) for values in drawn if values.size), default=0.0)
    return drawn, max(Y_FLOOR - 0.05, min(Y_LOW, lowest - 0.05))


def pipeline_summary(result: PipelineResult, stale: bool) -> str:
    """The status line: mask, per-task best layer, expected layer and centre of gravity, staleness."""
    parts = [f"{result.heads_masked} heads masked ({result.ablation} ablation)", f"{result.seconds:.0f} s"]
    for i, task in enumerate(result.tasks):
        best = int(np.argmax(result.accuracy[i]))
        cog = result.centre_of_gravity[i]
        parts.append(f"<b>{html.escape(task)}</b>: best {state_at(best)} {result.accuracy[i, best]:.3f}, "
                     f"E[l] {state_at(result.expected_layer[i])}, CoG {'-' if math.isnan(cog) else state_at(cog)}")
    note = ('<div class="bw-pipeline-stale" style="color:#b45309"><b>The mask has changed since</b>: '
            "press Compute to probe under the current mask.</div>") if stale else ""
    return f'<div class="bw-pipeline-status">{" &middot; ".join(parts)}</div>{note}'


class PipelinePanel(SessionView):
    """What each layer knows: POS, dependencies and the task's label, probed on every layer.

    Parameters
    ----------
    session : ModelSession
    tasks : tuple of str
    background : bool
        Run the button's computation in a thread (:meth:`run` is always synchronous).
    options
        Passed to :meth:`ModelSession.compute_pipeline` (``max_sentences``, ``max_iter``, ...).

    Traits
    ------
    result, unmasked : PipelineResult or None
        ``session.pipeline`` and the session's unmasked result.
    overlay : bool
        Draw the unmasked result dashed beneath.
    running : bool; error : str

    Attributes
    ----------
    lines, unmasked_lines : bqplot.Lines
        One row per task: normalised accuracy by layer.
    points : bqplot.Scatter
        Every (task, layer) point, its tooltip giving the raw accuracy.
    markers_expected, markers_centre : bqplot.Scatter
    mix : GridFigure
        The task x layer heat map of mix weights (``mix.colour_axis`` is the colour bar).
    button, overlay_toggle, progress, status
    """

    result = Instance(PipelineResult, allow_none=True)
    unmasked = Instance(PipelineResult, allow_none=True)
    overlay = Bool(False)
    running = Bool(False)
    error = Unicode("")

    def __init__(self, session, tasks=("upos", "deprel", "task"), *, background: bool = True, **options):
        super().__init__(session, **kwargs_of(options))
        self.add_class("bw-pipeline")
        self.tasks, self.background, self.options = tuple(tasks), background, options
        layers = session.num_layers + 1
        x, y = LinearScale(min=-0.3, max=layers - 0.7), LinearScale(min=Y_LOW, max=1.2)
        self.y_scale = y
        self._y_axis = axis(y, "accuracy (0 majority, 1 best)", side="left", tick_values=[0, 0.5, 1])
        scales = {"x": x, "y": y}
        colours = list(TASK_COLOURS)
        self.lines = Lines(x=np.arange(layers, dtype=float), y=np.zeros((1, layers)), scales=scales, colors=colours,
                           stroke_width=2)
        self.unmasked_lines = Lines(x=np.arange(layers, dtype=float), y=np.zeros((1, layers)), scales=scales,
                                    colors=colours, line_style="dashed", opacities=[0.5], visible=False)
        self.point_tooltip = Tooltip(fields=["name"], labels=["accuracy"])
        self.points = Scatter(x=np.zeros(1), y=np.zeros(1), scales=scales, colors=["#374151"], default_size=30,
                              names=[""], display_names=False, tooltip=self.point_tooltip)
        self.markers_expected = Scatter(x=np.zeros(1), y=np.full(1, MARKER_Y), scales=scales, marker="triangle-down",
                                        colors=colours, default_size=80, visible=False, names=[""],
                                        display_names=False, tooltip=Tooltip(fields=["name"], labels=["E[l]"]))
        self.markers_centre = Scatter(x=np.zeros(1), y=np.full(1, MARKER_Y), scales=scales, marker="diamond",
                                      colors=colours, default_size=60, visible=False, names=[""],
                                      display_names=False, tooltip=Tooltip(fields=["name"], labels=["CoG"]))
        names = state_names(session.num_layers)
        self.fig = figure([self.unmasked_lines, self.lines, self.points, self.markers_expected, self.markers_centre],
                          [axis(x, "hidden state (emb = embeddings)", tick_values=np.arange(layers),
                                tick_labels={str(i): name for i, name in enumerate(names)}, grid_lines="none"),
                           self._y_axis],
                          title="What each layer knows", width=560, height=320)
        self.legend = w.HTML()
        self.mix = GridFigure(ColorScale(scheme="viridis", min=0.0, max=1.0), title="Scalar-mix weights s_l",
                              tooltip=("task", "hidden state", "weight"), row_label="task", col_label="hidden state",
                              colour_label="s_l", layout={"width": "560px", "height": "384px"},
                              fig_margin={"top": 40, "bottom": 44, "left": 96, "right": 60})
        self.empty = w.HTML(empty_html("Compute", "probe every layer for parts of speech, dependencies and the "
                                       "task's label (a minute or more)"))
        self.button = w.Button(description="Compute", icon="play", button_style="primary",
                               tooltip="probe every layer under the current mask", layout={"width": "auto"})
        self.overlay_toggle = w.ToggleButton(description="Unmasked overlay", icon="clone",
                                             tooltip="draw the result with no head masked, dashed",
                                             layout={"width": "auto"})
        self.progress = w.FloatProgress(min=0.0, max=1.0, description="probing", layout={"display": "none"})
        self.status = w.HTML()
        self.error_box = w.HTML()
        self._link((self, "overlay"), (self.overlay_toggle, "value"))
        self._dlink((session, "pipeline"), (self, "result"))
        self._dlink((session.pipeline_part, "pipeline_unmasked"), (self, "unmasked"))
        self._dlink((session, "analysis_progress"), (self.progress, "value"))
        self._observe(self._follow_analysis, ["analysis_busy", "analysis_status", "analysis_error"])
        self._dlink((self, "running"), (self.button, "disabled"))
        self._dlink((self, "running"), (self.progress.layout, "display"), lambda on: None if on else "none")
        self._dlink((self, "error"), (self.error_box, "value"),
                    lambda text: error_html(text, "#b91c1c", "#fef2f2") if text else "")
        self._on_click(self.button, self.compute)
        # The figures join the page once the panel is shown with a result (see _place_figures).
        self.plots = w.VBox(layout={"min_width": "0"})
        self.children = [w.HBox([self.button, self.overlay_toggle]), self.progress, self.empty, self.plots,
                         self.status, self.error_box]
        self._observe(self._redraw, ["result", "unmasked", "overlay"], owner=self)
        self._observe(self._redraw_status, ["pipeline_stale"], owner=session.pipeline_part)

    def set_active(self, active: bool) -> None:
        """Opened, with a result to show: the figures join the page, now that it can give them a size."""
        self._active = bool(active)
        self._place_figures()
        super().set_active(active)

    def _place_figures(self) -> None:
        """The figures join the page once the panel is open and has a result (drawn folded or hidden, a figure
        has no size, and bqplot draws a plot area of negative size); until then the panel says what to press."""
        self.empty.layout.display = None if self.result is None else "none"
        if self._active and self.result is not None and not self.plots.children:
            self.plots.children = (self.fig, self.legend, self.mix.fig)

    def _repr_mimebundle_(self, **kwargs):
        self.set_active(self._active)  # shown on its own, outside a dashboard's folds
        return super()._repr_mimebundle_(**kwargs)

    # -- running -------------------------------------------------------------------------
    def _follow_analysis(self, _change) -> None:
        follow_analysis(self, "pipeline")

    def compute(self) -> None:
        """What the button does: :meth:`ModelSession.compute_pipeline` (in a thread if ``background``)."""
        if not self.running:
            self.session.compute_pipeline(self.tasks, background=self.background, **self.options)

    def run(self) -> PipelineResult:
        """Compute now, under ``session.mask``; returns the result (``RuntimeError`` with the failure)."""
        self.session.compute_pipeline(self.tasks, background=False, **self.options)
        if self.session.analysis_status == "pipeline: failed":
            raise RuntimeError(self.session.analysis_error)
        assert self.result is not None  # set from session.pipeline once the analysis is applied
        return self.result

    # -- drawing ---------------------------------------------------------------------------
    def _redraw(self, _change) -> None:
        result = self.result
        self._place_figures()
        if result is None:
            return
        layers = np.arange(result.num_layers + 1, dtype=float)
        names = state_names(result.num_layers)
        tasks = list(result.tasks)
        other = self.unmasked
        show = bool(self.overlay and other is not None and other is not result)
        overlay = np.zeros((0, len(layers)))
        if show and other is not None:
            overlay = other.normalised_accuracy[[other.row(t) for t in tasks if t in other.tasks]]
        (norm, overlay), low = plotted(result.normalised_accuracy, overlay)
        xs = np.tile(layers, len(tasks))
        with self.fig.hold_sync(), self.lines.hold_sync(), self.points.hold_sync():
            if self.y_scale.min != low:
                self.y_scale.min = low
                self._y_axis.tick_values = [t for t in (-1.0, -0.5, 0.0, 0.5, 1.0) if t >= low]
            self.lines.x, self.lines.y, self.lines.labels = layers, norm, tasks
            self.points.x, self.points.y = xs, norm.reshape(-1)
            self.points.names = [f"{t} {names[int(layer)]}: {a:.3f} (majority {result.majority[i]:.3f})"
                                 for i, t in enumerate(tasks) for layer, a in zip(layers, result.accuracy[i])]
            self.points.colors = [TASK_COLOURS[i % len(TASK_COLOURS)] for i in range(len(tasks))
                                  for _ in layers]
            for marker, values, name in ((self.markers_expected, result.expected_layer, "E[l]"),
                                         (self.markers_centre, result.centre_of_gravity, "CoG")):
                keep = [i for i, v in enumerate(values) if math.isfinite(v)]
                with marker.hold_sync():
                    marker.x = np.array([values[i] for i in keep], dtype=float)
                    marker.y = np.full(len(keep), MARKER_Y)
                    marker.colors = [TASK_COLOURS[i % len(TASK_COLOURS)] for i in keep]
                    marker.names = [f"{tasks[i]} {name} {state_at(values[i])}" for i in keep]
                    marker.visible = bool(keep)
            if show:
                self.unmasked_lines.x, self.unmasked_lines.y = layers, overlay
            self.unmasked_lines.visible = show
        keys = [(task, TASK_COLOURS[i % len(TASK_COLOURS)], "line") for i, task in enumerate(tasks)]
        keys += [("unmasked", "#6b7280", "dashed")] if show else []
        self.legend.value = legend_html([*keys, ("expected layer (scalar mix)", "\u25bc"),
                                         ("centre of gravity", "\u25c6")])
        self.mix.show(result.mix_weights, row_labels=tasks, col_labels=names)
        self._redraw_status(None)

    def _redraw_status(self, _change) -> None:
        text = "" if self.result is None else pipeline_summary(self.result, self.session.pipeline_part.pipeline_stale)
        if self.status.value != text:
            self.status.value = text

    def close(self) -> None:
        super().close()
        for widget in (self.fig, self.lines, self.unmasked_lines, self.points, self.markers_expected,
                       self.markers_centre, self.mix.fig):
            widget.close()


def kwargs_of(options: dict) -> dict:
    """Widget keyword arguments (layout) out of ``options``; the rest stay for the computation."""
    return {key: options.pop(key) for key in ("layout",) if key in options}


__all__ = ["PipelinePanel", "pipeline_summary", "plotted"]
