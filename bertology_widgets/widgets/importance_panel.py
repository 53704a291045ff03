"""``ImportancePanel``: compute head importance and the masking curve; mask by importance; see where you are."""

from __future__ import annotations

import html
import time

import ipywidgets as w
import numpy as np
from bqplot import LinearScale, Lines, Scatter

from ..analyses.masking_curve import heads_per_step
from ._base import SessionView, held
from ._style import axis, empty_html, figure, legend_html
from .head_mask_grid import HeadMaskGrid

CURVE_COLOUR, RANDOM_COLOUR, THRESHOLD_COLOUR, CURRENT_COLOUR = "#1f77b4", "#6b7280", "#b91c1c", "#e6550d"
EMPTY = np.zeros(0)


def fraction_masked(mask) -> float:
    """Share of head capacity removed by ``mask`` (shape ``(layers, heads)``): ``1 - mean(gate)``."""
    return float(1.0 - np.asarray(mask, dtype=float).mean())


def is_least_important(mask, importance) -> bool:
    """Whether ``mask`` masks (gate 0) only heads no more important than every head it keeps (gate 1)."""
    mask, importance = np.asarray(mask), np.asarray(importance, dtype=float)
    if not np.isin(mask, (0.0, 1.0)).all():
        return False
    masked, kept = importance[mask == 0], importance[mask == 1]
    return masked.size == 0 or kept.size == 0 or masked.max() <= kept.min()


def threshold_label(curve: dict) -> str:
    """The threshold line's legend: ``"90 % of baseline"`` for a ``masking_threshold`` of 0.9."""
    fraction = curve.get("masking_threshold")
    return "threshold" if fraction is None else f"{float(fraction) * 100:.0f} % of baseline"


MINE = ("head importance", "masking curve")  # the analyses whose progress and status this panel shows


def curve_steps(num_heads_total: int, masking_amount: float = 0.1) -> int:
    """How many steps the masking curve takes: ``per_step`` more heads masked each, at most all but one."""
    return max(1, (num_heads_total - 1) // heads_per_step(num_heads_total, masking_amount))


def duration(seconds: float) -> str:
    """``"40 s"``, ``"6 min"``, ``"1.5 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def curve_forecast(steps: int, examples: int, importance_s: float | None) -> str:
    """What the masking curve will cost, said before it starts: the steps, and a time when one is known."""
    base = (f"The masking curve recomputes head importance at each of {steps} steps over {examples} examples, "
            "then scores a random order of masking as a baseline")
    if importance_s is None:
        return (base + ": about as long as pressing Compute importance " + f"{steps + 1} times (press it first "
                "for an estimate; the default model's curve took about 6 min on a 2-core CPU).")
    return base + f": likely about {duration(1.3 * (steps + 1) * importance_s)} on this machine."


def curve_progress(fraction: float, steps: int, elapsed_s: float) -> str:
    """The line under the progress bar while the curve runs: the step, and the time likely left."""
    if fraction < 0.5:
        what = f"step {min(steps, int(round(fraction * 2 * steps)) + 1)} of {steps} (importance order)"
    else:
        what = "random-order baseline"
    left = "" if fraction <= 0.02 else f" &middot; about {duration(elapsed_s * (1 - fraction) / fraction)} left"
    return f"masking curve: {what} &middot; {duration(elapsed_s)} so far{left}"


def pruning_note(session) -> str:
    """What pruning the session's masked heads would leave: parameters kept, out of the model's."""
    masked = session.masked_count
    if masked == 0:
        return "<small>No head is masked; pruning would keep every parameter.</small>"
    before, after = session.pruned_params()
    return (f"<small>Pruning the {masked} masked heads would keep {after / 1e6:.1f} M of {before / 1e6:.1f} M "
            f"parameters ({after / before:.0%}); prune for real with <code>bertology prune --mask</code> "
            "on a mask saved with the dashboard's Mask .npy button.</small>")


class ImportancePanel(SessionView):
    """Head importance and the masking curve of ``session``, and the current mask on that curve.

    "Compute importance" runs :meth:`ModelSession.compute_importance` and
    "Masking curve" :meth:`ModelSession.compute_masking_curve`, both in a
    background thread; they are disabled while ``session.analysis_busy``, a
    progress bar follows ``session.analysis_progress`` and a label
    ``session.analysis_status``, on their own line under the buttons. Once
    importance is computed, its map (``importance_map``, a
    :class:`HeadMaskGrid` coloured by importance) appears in the panel.
    Failures land in ``session.analysis_error``.

    The slider masks the N least important heads
    (:meth:`ModelSession.mask_least_important`) once ``session.importance`` is
    known. It always shows how many heads are masked: a mask changed
    elsewhere moves it without re-masking, and a note says when that mask is
    not the N least important heads.

    The chart plots the curve's metric against the fraction of heads masked:
    the importance-ordered curve, the random-order baseline (mean, with its
    min-max band over seeds), the threshold ``masking_threshold x original``
    (legend "90 % of baseline"),
    and the current mask as a point at ``(1 - mean(session.mask),
    session.score[metric])`` that moves with every estimate and exact score.
    The legend (``legend``) sits under the chart and names only what is drawn;
    the chart is hidden until a curve exists, and the panel says what to press
    (``empty``). Before the curve starts, ``forecast`` says how many steps it
    takes and about how long; while it runs, ``status`` gives the step and the
    time left (:func:`curve_progress`).

    Parameters
    ----------
    session : ModelSession
    max_examples : int, optional
        Use only the first ``max_examples`` of ``session.examples`` for both analyses.
    curve_options : dict, optional
        Keyword arguments for :meth:`ModelSession.compute_masking_curve`
        (``masking_amount``, ``masking_threshold``, ``random_seeds``, ...).

    Attributes
    ----------
    importance_button, curve_button : ipywidgets.Button
    progress : ipywidgets.FloatProgress
        Bound to ``session.analysis_progress``; shown (taking room) only while this panel's analysis runs.
    status : ipywidgets.HTML
        This panel's analysis status (importance or the curve), the curve's step and time left.
    forecast : ipywidgets.HTML
        What the masking curve will cost (:func:`curve_forecast`), until it exists.
    empty, legend : ipywidgets.HTML
    slider : ipywidgets.IntSlider
        ``0 .. layers x heads``: how many heads are masked.
    note : ipywidgets.HTML
        Says when the mask is not the least important heads.
    pruning : ipywidgets.HTML
        The parameters that pruning the masked heads would keep (:func:`pruning_note`).
    importance_map : HeadMaskGrid
        Hidden until ``session.importance`` is known.
    fig : bqplot.Figure
    curve_line : bqplot.Lines
        ``x`` the curve steps' ``fraction_masked``, ``y`` their ``score[metric]``.
    random_line : bqplot.Lines
        The random baseline's ``mean`` per step (dashed).
    random_band : bqplot.Lines
        ``y`` of shape ``(2, steps)``: the baseline's ``min`` and ``max``, filled between.
    threshold_line : bqplot.Lines
        At ``curve["threshold_score"]`` across the chart.
    current_point : bqplot.Scatter
        The current mask; hollow while the score is an estimate.
    """

    def __init__(self, session, max_examples: int | None = None, *, curve_options: dict | None = None, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-importance-panel")
        self.max_examples, self.curve_options = max_examples, dict(curve_options or {})
        self._syncing = False
        total = session.num_layers * session.num_heads
        fit = {"width": "auto"}  # buttons as wide as their labels
        self.importance_button = w.Button(description="Compute importance", icon="play", button_style="primary",
                                          layout=fit)
        self.curve_button = w.Button(description="Masking curve", icon="line-chart", layout=fit)
        self.progress = w.FloatProgress(min=0.0, max=1.0, layout={"width": "240px"})
        self.status = w.HTML()
        self.forecast = w.HTML()
        self.pruning = w.HTML()
        self.importance_map = HeadMaskGrid(session, size=340, controls=False)
        self.importance_map.colour_by = "importance"
        # Its own class: page selectors for the dashboard's mask grid must not find this one.
        self.importance_map.remove_class("bw-mask-grid")
        self.importance_map.add_class("bw-importance-map")
        self.slider = w.IntSlider(min=0, max=total, description="mask the N least important heads",
                                  style={"description_width": "initial"}, continuous_update=False,
                                  layout={"width": "100%", "max_width": "480px"})
        self.note = w.HTML()
        self._build_chart()
        for button in (self.importance_button, self.curve_button):
            self._dlink((session, "analysis_busy"), (button, "disabled"))
        self._dlink((session, "analysis_progress"), (self.progress, "value"))
        self._started: tuple[str, float] | None = None  # (analysis, time.monotonic()) of the run under way
        self._importance_s: float | None = None  # how long the last importance took here
        self._dlink((session, "importance"), (self.slider, "disabled"), lambda importance: importance is None)
        self._on_click(self.importance_button, self.compute_importance)
        self._on_click(self.curve_button, self.compute_masking_curve)
        self._dlink((session, "importance"), (self.importance_map.layout, "display"),
                    lambda importance: "none" if importance is None else None)
        self.empty = w.HTML(empty_html("Compute importance", "score every head, then Masking curve to mask "
                                       "them from the least important on"))
        self.chart = w.VBox([self.fig, self.legend], layout={"min_width": "0"})
        self.children = [w.HBox([self.importance_button, self.curve_button], layout={"flex_flow": "row wrap"}),
                         w.HBox([self.progress, self.status], layout={"flex_flow": "row wrap",
                                                                      "align_items": "center"}),
                         self.forecast, self.empty, self.slider, self.note, self.pruning,
                         w.HBox([self.importance_map, self.chart], layout={"flex_flow": "row wrap"})]
        self._observe(self._follow_analysis, ["analysis_busy", "analysis_status", "analysis_progress"])
        self._observe(self._show_what_is_computed, ["importance", "curve"])
        self._observe(self._follow_mask, ["mask", "importance"])
        self._observe(self._redraw_pruning, ["masked_count"])
        self._observe(self._on_slider, ["value"], owner=self.slider, call_now=False)
        self._observe(self._redraw_curve, ["curve"])
        self._observe(self._redraw_current, ["mask", "score", "score_is_estimate"])

    def _build_chart(self) -> None:
        x, self.y_scale = LinearScale(min=0.0, max=1.0), LinearScale()
        scales = {"x": x, "y": self.y_scale}
        self.random_band = Lines(x=EMPTY, y=np.zeros((2, 0)), scales=scales, fill="between", colors=[RANDOM_COLOUR] * 2,
                                 fill_colors=[RANDOM_COLOUR], fill_opacities=[0.15], stroke_width=0.5,
                                 opacities=[0.4, 0.4], visible=False)
        self.random_line = Lines(x=EMPTY, y=EMPTY, scales=scales, colors=[RANDOM_COLOUR], line_style="dashed",
                                 visible=False)
        self.curve_line = Lines(x=EMPTY, y=EMPTY, scales=scales, colors=[CURVE_COLOUR], marker="circle",
                                marker_size=24, stroke_width=2, visible=False)
        self.threshold_line = Lines(x=[0.0, 1.0], y=[0.0, 0.0], scales=scales, colors=[THRESHOLD_COLOUR],
                                    line_style="dotted", visible=False, stroke_width=2)
        self.current_point = Scatter(x=[0.0], y=[0.0], scales=scales, colors=[CURRENT_COLOUR], default_size=80,
                                     stroke="black", visible=False)
        self.y_axis = axis(self.y_scale, self.metric, side="left", tick_format=".2f")
        # The legend sits under the chart (legend_html), off the data: it names only what is drawn.
        self.fig = figure([self.random_band, self.random_line, self.curve_line, self.threshold_line,
                           self.current_point],
                          [axis(x, "fraction of heads masked", tick_format=".0%"), self.y_axis],
                          title="Masking curve", width=520, height=340)
        self.legend = w.HTML()

    @property
    def metric(self) -> str:
        """The curve's metric; before a curve exists, the task's first metric."""
        return self.session.curve.get("metric") or self.session.metric_names[0]

    # -- actions ----------------------------------------------------------------------------
    def compute_importance(self):
        """What "Compute importance" does: :meth:`ModelSession.compute_importance` in the background."""
        return self.session.compute_importance(max_examples=self.max_examples)

    def compute_masking_curve(self):
        """What "Masking curve" does: :meth:`ModelSession.compute_masking_curve` in the background."""
        return self.session.compute_masking_curve(max_examples=self.max_examples, **self.curve_options)

    def _on_slider(self, change) -> None:
        if self._syncing or self.session.importance is None:
            return
        self.session.mask_least_important(int(change["new"]))

    def _follow_mask(self, _change) -> None:
        """Slider to the number of masked heads, without re-masking; note when they are not the least important."""
        s = self.session
        masked = s.masked_count
        if self.slider.value != masked:
            self._syncing = True
            try:
                self.slider.value = masked
            finally:
                self._syncing = False
        other = s.importance is not None and not is_least_important(s.mask, s.importance)
        text = (f"<small><i>The mask is not the {masked} least important heads (changed elsewhere); "
                "move the slider to mask by importance.</i></small>") if other else ""
        if self.note.value != text:
            self.note.value = text

    def _redraw_pruning(self, _change) -> None:
        text = pruning_note(self.session)
        if self.pruning.value != text:
            self.pruning.value = text

    # -- drawing ----------------------------------------------------------------------------
    def _redraw_curve(self, _change) -> None:
        curve, metric = self.session.curve, self.metric
        steps = curve.get("steps") or []
        baseline = (curve.get("random_baseline") or {}).get("steps") or []
        with held(self.fig, self.curve_line, self.random_line, self.random_band, self.threshold_line, self.y_axis):
            self.y_axis.label = metric
            self.curve_line.x = np.array([step["fraction_masked"] for step in steps], dtype=float)
            self.curve_line.y = np.array([step["score"][metric] for step in steps], dtype=float)
            self.curve_line.visible = bool(steps)
            rx = np.array([step["fraction_masked"] for step in baseline], dtype=float)
            self.random_line.x, self.random_band.x = rx, rx
            self.random_line.y = np.array([step["mean"] for step in baseline], dtype=float)
            self.random_band.y = np.array([[step[key] for step in baseline] for key in ("min", "max")], dtype=float)
            self.random_line.visible = self.random_band.visible = bool(baseline)
            threshold = curve.get("threshold_score")
            self.threshold_line.labels = [threshold_label(curve)]
            if threshold is not None:
                self.threshold_line.y = [float(threshold)] * 2
            self.threshold_line.visible = threshold is not None
        keys = [("importance order", CURVE_COLOUR, "line")] if steps else []
        if baseline:
            keys += [("random order: mean", RANDOM_COLOUR, "dashed"), ("min-max over seeds", RANDOM_COLOUR, "band")]
        if threshold is not None:
            keys.append((threshold_label(curve), THRESHOLD_COLOUR, "dotted"))
        keys += [("current mask", CURRENT_COLOUR, "dot"), ("(hollow while estimated)", CURRENT_COLOUR, "ring")]
        self.legend.value = legend_html(keys)
        self._redraw_current(None)

    def _redraw_current(self, _change) -> None:
        s = self.session
        value = s.score.get(self.metric)
        with self.current_point.hold_sync():
            if value is not None:
                self.current_point.x, self.current_point.y = [fraction_masked(s.mask)], [float(value)]
            self.current_point.fill = not s.score_is_estimate
            self.current_point.visible = value is not None and bool(s.curve.get("steps"))

    def _show_what_is_computed(self, _change) -> None:
        """No figure before there is data: words say what to press; the curve's chart once it exists."""
        s = self.session
        self.empty.layout.display = None if s.importance is None and not s.curve else "none"
        self.chart.layout.display = None if s.curve.get("steps") else "none"
        self._redraw_forecast()

    def _follow_analysis(self, _change) -> None:
        """The bar and the line under it follow this panel's analyses only; the curve says its step and time left."""
        s = self.session
        name = next((n for n in MINE if s.analysis_status.startswith(n)), None)
        busy = bool(s.analysis_busy and name)
        now = time.monotonic()
        if busy and name is not None and (self._started is None or self._started[0] != name):
            self._started = (name, now)
        elif not busy and self._started is not None:
            if self._started[0] == "head importance" and s.analysis_status == "head importance: done":
                self._importance_s = now - self._started[1]
            self._started = None
        self.progress.layout.display = None if busy else "none"
        if busy and name == "masking curve" and self._started is not None:
            text = curve_progress(s.analysis_progress, self._steps(), now - self._started[1])
        else:
            text = html.escape(s.analysis_status) if name else ""
        if self.status.value != text:
            self.status.value = text
        self._redraw_forecast()

    def _steps(self) -> int:
        s = self.session
        return curve_steps(s.num_layers * s.num_heads, float(self.curve_options.get("masking_amount", 0.1)))

    def _redraw_forecast(self) -> None:
        s = self.session
        running = s.analysis_busy and s.analysis_status.startswith("masking curve")
        examples = len(s.examples) if self.max_examples is None else min(self.max_examples, len(s.examples))
        text = "" if running or s.curve.get("steps") else (
            f"<small>{curve_forecast(self._steps(), examples, self._importance_s)}</small>")
        if self.forecast.value != text:
            self.forecast.value = text

    def close(self) -> None:
        super().close()
        self.importance_map.close()
        for widget in (self.fig, self.curve_line, self.random_line, self.random_band, self.threshold_line,
                       self.current_point, *self.fig.axes):
            widget.close()
