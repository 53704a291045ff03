"""``LayerProbe``: train a linear probe on every layer and chart its dev accuracy."""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
from bqplot import LinearScale, Lines
from traitlets import Bool, Instance, TraitError, Unicode, validate

from ..analyses.probe import ProbeResult
from ..analyses.representations import POOLINGS
from ._base import SessionView, follow_analysis
from ._style import axis, empty_html, figure, labelled, legend_html, state_at
from .hidden_states import state_labels

ERROR_STYLE = ("color:#b91c1c;background:#fef2f2;border:1px solid #b91c1c;border-radius:3px;"
               "padding:4px 8px;margin:2px 0;white-space:pre-wrap")
BASELINE_COLOUR, CENTRE_COLOUR, BAR_COLOUR = "#6b7280", "#e6550d", "#3182bd"


def probe_summary(result: ProbeResult, current_mask) -> str:
    """The status line under the chart: data, mask, time, best layer, centre of gravity, mix, staleness."""
    mask = np.asarray(current_mask)
    best = int(np.argmax(result.accuracy))
    centre, expected = result.center_of_gravity, result.expected_layer
    labels = state_labels(len(result.accuracy) - 1)
    # Bar i is hidden state i: "emb", then layers from 0, so a position p is layer p - 1.
    parts = [f"{result.n_train} train / {result.n_dev} dev examples", f"{result.pooling} pooling",
             f"{result.heads_masked} of {mask.size} heads masked", f"{result.seconds:.1f} s",
             f"best: {labels[best]} ({result.accuracy[best]:.3f})",
             "centre of gravity: " + ("none (no layer gains)" if np.isnan(centre) else state_at(centre)),
             *([] if np.isnan(expected) else [f"expected layer of the scalar mix: {state_at(expected)}"]),
             f"majority baseline {result.majority_baseline:.3f}"]
    used = np.ones_like(mask) if result.mask is None else np.asarray(result.mask)
    stale = "" if np.array_equal(used, mask) else (
        '<div class="bw-probe-stale" style="color:#b45309"><b>The mask has changed since</b>: '
        "click Train probes to re-run under the current mask.</div>")
    return f'<div class="bw-probe-status">{" &middot; ".join(parts)}</div>{stale}'


def bar_outlines(heights, width: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, each shape ``(bars, 5)``: a closed rectangle from 0 up to each height, centred on its index."""
    heights = np.asarray(heights, dtype=float)
    left = np.arange(len(heights), dtype=float)[:, None] - width / 2
    x = left + np.array([0.0, width, width, 0.0, 0.0])
    y = heights[:, None] * np.array([0.0, 0.0, 1.0, 1.0, 0.0])
    return x, y


class LayerProbe(SessionView):
    """Linear probes of the session's task on every layer, under the current mask.

    "Train probes" runs :meth:`ModelSession.compute_probe` (in a background
    thread, on a private copy of the model; the result lands in
    ``session.probe``, which this view shows): the classical pipeline's
    ``task`` row (:func:`~bertology_widgets.analyses.pipeline.pipeline_probe`), a
    linear probe per layer on pooled states of at most ``max_train`` training
    examples, scored on at most ``max_dev`` of ``session.examples``. The bars show the
    dev accuracy per hidden state ("emb", then layers L0, L1, ... as in
    :class:`HiddenStatesView`), a dashed line the majority baseline, an orange
    line the pipeline's centre of gravity (of the gains of cumulative scoring,
    the probe on the mix of layers up to each one).
    Clicking again re-runs under the mask current then; the status line says
    how many heads the shown result masked, and whether the mask has changed.

    Parameters
    ----------
    session : ModelSession
    train_examples : sequence of Example, optional
        Training data. By default ``load_glue(session.task, "train",
        glue_dir=glue_dir, max_examples=train_pool)`` on the first run (it needs
        ``glue_dir`` or ``BERTOLOGY_GLUE_DIR``); ``max_train`` are drawn from
        those at random.
    max_train, max_dev : int
    pooling : {"cls", "mean"}
    C : float, optional
        scikit-learn's inverse L2 strength, mapped to the pipeline's ``l2 = 1 / (C * n_train)``;
        None: the pipeline's default ``l2`` (see :func:`~bertology_widgets.analyses.probe.layer_probe`).
    seed : int
    background : bool
        Run clicks in a thread so that the kernel stays responsive
        (:meth:`run` is always synchronous).

    Traits
    ------
    result : ProbeResult or None
        ``session.probe``, the last result (the bars show it).
    running : bool
        A probe is running (``session.analysis_busy`` with status "layer probe").
    pooling : str
    error : str
        The last probe failure (``session.analysis_error``), shown in a red box.

    Attributes
    ----------
    button : ipywidgets.Button
    progress : ipywidgets.FloatProgress
    fig : bqplot.Figure
    bars : bqplot.Lines
        One filled rectangle per hidden state (:func:`bar_outlines`): ``y[:, 2]`` the accuracy.
    baseline, centre : bqplot.Lines
    notes : ipywidgets.HTML
        Texts of the baseline and the centre of gravity.
    status : ipywidgets.HTML
        See :func:`probe_summary`.
    """

    result = Instance(ProbeResult, allow_none=True, help="session.probe: the last layer probe, or None")
    running = Bool(False)
    pooling = Unicode("cls")
    error = Unicode("")

    def __init__(self, session, train_examples=None, *, glue_dir=None, max_train: int = 2000, max_dev: int = 1000,
                 train_pool: int = 20000, pooling: str = "cls", C: float | None = None, seed: int = 0,
                 background: bool = True, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-layer-probe")
        self.train_examples = None if train_examples is None else list(train_examples)
        self.glue_dir, self.train_pool = glue_dir, train_pool
        self.max_train, self.max_dev, self.C, self.seed, self.background = max_train, max_dev, C, seed, background
        self.pooling = pooling
        states = session.num_layers + 1
        x, y = LinearScale(min=-0.6, max=states - 0.4), LinearScale(min=0.0, max=1.0)
        scales = {"x": x, "y": y}
        # One filled rectangle per hidden state (a Lines polygon: bqplot's Bars drew nothing when first shown
        # in a panel that had been hidden until its data came).
        self.bars = Lines(x=bar_outlines(np.zeros(states))[0], y=bar_outlines(np.zeros(states))[1], scales=scales,
                          colors=[BAR_COLOUR] * states, fill="inside", fill_colors=[BAR_COLOUR] * states,
                          fill_opacities=[1.0] * states, stroke_width=1)
        self.baseline = Lines(x=[-0.6, states - 0.4], y=[0.0, 0.0], scales=scales, colors=[BASELINE_COLOUR],
                              line_style="dashed", visible=False)
        self.centre = Lines(x=[0.0, 0.0], y=[0.0, 1.0], scales=scales, colors=[CENTRE_COLOUR], stroke_width=2,
                            visible=False)
        # What the lines are is said under the chart (``notes``), never printed over the bars.
        self.notes = w.HTML()
        self.fig = figure([self.bars, self.baseline, self.centre], title="Layer probe accuracy",
                          axes=[axis(x, "hidden state (emb = embeddings)", tick_values=np.arange(states),
                                     grid_lines="none", tick_labels={str(i): label for i, label in
                                                                     enumerate(state_labels(session.num_layers))}),
                                axis(y, "dev accuracy", side="left", tick_format=".1f")],
                          width=520, height=320)
        self.empty = w.HTML(empty_html("Train probes", "train a linear probe of the task's label on every layer"))
        self.button = w.Button(description="Train probes", icon="play", button_style="primary")
        self.pooling_picker = w.ToggleButtons(options=list(POOLINGS), style={"button_width": "60px"})
        self.progress = w.FloatProgress(min=0.0, max=1.0, description="training", layout={"display": "none"})
        self.status = w.HTML()
        self.error_box = w.HTML()
        self._link((self, "pooling"), (self.pooling_picker, "value"))
        self._dlink((session, "probe"), (self, "result"))
        self._dlink((session, "analysis_progress"), (self.progress, "value"))
        self._observe(self._follow_analysis, ["analysis_busy", "analysis_status", "analysis_error"])
        self._dlink((self, "running"), (self.button, "disabled"))
        self._dlink((self, "running"), (self.pooling_picker, "disabled"))
        self._dlink((self, "running"), (self.progress.layout, "display"), lambda on: None if on else "none")
        self._dlink((self, "error"), (self.error_box, "value"),
                    lambda text: f'<div style="{ERROR_STYLE}">{html.escape(text)}</div>' if text else "")
        self._on_click(self.button, self.train)
        self.chart = w.VBox([self.fig, self.notes], layout={"display": "none", "min_width": "0"})
        self.children = [w.HBox([self.button, labelled("pooling", self.pooling_picker, "60px")],
                                layout={"flex_flow": "row wrap", "align_items": "center"}), self.progress,
                         self.empty, self.chart, self.status, self.error_box]
        self._observe(self._redraw, ["result"], owner=self)
        self._observe(self._redraw_status, ["mask"])

    @validate("pooling")
    def _check_pooling(self, proposal):
        if proposal["value"] not in POOLINGS:
            raise TraitError(f"pooling must be one of {POOLINGS}, got {proposal['value']!r}")
        return proposal["value"]

    # -- running -------------------------------------------------------------------------
    def _follow_analysis(self, _change) -> None:
        follow_analysis(self, "layer probe")

    def train(self) -> None:
        """What the button does: :meth:`ModelSession.compute_probe` (in a thread if ``background``)."""
        if self.running:
            return
        self._start(self.background)

    def _start(self, background: bool):
        return self.session.compute_probe(self.train_examples, glue_dir=self.glue_dir, train_pool=self.train_pool,
                                          max_train=self.max_train, max_dev=self.max_dev, pooling=self.pooling,
                                          C=self.C, seed=self.seed, background=background)

    def wait(self, timeout: float | None = None) -> bool:
        """Apply results until a background run has finished; True if none is running."""
        self.session.wait(600.0 if timeout is None else timeout, analysis=True)
        return not self.session.analysis_busy

    def run(self) -> ProbeResult:
        """Train and score the probes now, under ``session.mask``; sets and returns :attr:`result`.

        Raises ``RuntimeError`` with the failure (the button shows it in the error box instead).
        """
        self._start(False)
        if self.session.analysis_status == "layer probe: failed":
            raise RuntimeError(self.session.analysis_error)
        result = self.result
        assert result is not None, "the probe ran in the foreground"
        return result

    # -- drawing ---------------------------------------------------------------------------
    def _redraw(self, _change) -> None:
        result = self.result
        self.empty.layout.display = None if result is None else "none"
        self.chart.layout.display = "none" if result is None else None
        if result is None:
            return
        centre, base = result.center_of_gravity, result.majority_baseline
        with self.fig.hold_sync(), self.bars.hold_sync():
            self.bars.x, self.bars.y = bar_outlines(result.accuracy)
            self.baseline.y, self.baseline.visible = [base, base], True
            self.centre.visible = not np.isnan(centre)
            if self.centre.visible:
                self.centre.x = [centre, centre]
        keys = [("dev accuracy", BAR_COLOUR, "swatch"), (f"majority baseline {base:.2f}", BASELINE_COLOUR, "dashed")]
        if not np.isnan(centre):
            keys.append((f"centre of gravity {state_at(centre)}", CENTRE_COLOUR, "line"))
        self.notes.value = legend_html(keys)
        self._redraw_status(None)

    def _redraw_status(self, _change) -> None:
        text = "" if self.result is None else probe_summary(self.result, self.session.mask)
        if self.status.value != text:
            self.status.value = text

    def close(self) -> None:
        super().close()
        for widget in (self.fig, self.bars, self.baseline, self.centre):
            widget.close()
