"""``ScoreReadout``: the task's metrics under the mask against the unmasked baseline."""

from __future__ import annotations

import html

import ipywidgets as w

from ._base import SessionView, error_html

ERROR_SOURCES = ("score_error", "capture_error", "analysis_error", "error")

TABLE_STYLE = "border-collapse:collapse;font-variant-numeric:tabular-nums"
CELL = "padding:2px 10px;text-align:right"


def _delta_colour(improvement: float) -> str:
    """Green where the masked score is better than the baseline, red where worse (``Objective.improvement``)."""
    return "#b91c1c" if improvement < -1e-9 else "#15803d" if improvement > 1e-9 else "inherit"


def score_html(session) -> str:
    """The readout of ``session``: a metric x (masked, baseline, delta) table and a status line."""
    score, baseline, interval = session.score, session.baseline_score, session.score_interval
    estimate = session.score_is_estimate
    objective = session.bound.objective
    rows = [f'<tr><th style="{CELL};text-align:left">metric</th><th style="{CELL}">masked</th>'
            f'<th style="{CELL}">baseline</th><th style="{CELL}">&Delta;</th></tr>']
    for metric in (list(baseline) or session.metric_names):
        value, base = score.get(metric), baseline.get(metric)
        if value is None or base is None:  # the baseline (and so the score) is still on its way
            now, delta = "&ndash;", ""
        else:
            now = f"{value:.4f}"
            if estimate and metric in interval:
                low, high = interval[metric]
                now += f' <span style="color:#6b7280">[{low:.3f}, {high:.3f}]</span>'
            diff = value - base
            better = diff if objective is None else objective.improvement(value, base, metric)
            delta = f'<span style="color:{_delta_colour(better)}">{diff:+.4f}</span>'
        rows.append(f'<tr><td style="{CELL};text-align:left">{html.escape(metric)}</td><td style="{CELL}">{now}</td>'
                    f'<td style="{CELL}">{"&ndash;" if base is None else f"{base:.4f}"}</td>'
                    f'<td style="{CELL}">{delta}</td></tr>')
    if not baseline:
        kind = "<b>scoring the baseline</b>&hellip;" if session.busy else "no baseline score"
    elif estimate:
        kind = f"<b>estimate</b> from {session.progress:.0%} of the examples (95% interval in brackets)"
    elif session.busy:
        kind = "<b>scoring</b> the new mask&hellip;"
    else:
        kind = f"<b>exact</b> on all {len(session.examples)} examples"
    kind += f" &middot; {session.precision}"
    heads = session.num_layers * session.num_heads
    status = (f'<div class="bw-score-status">{session.masked_count} of {heads} heads masked'
              f' &middot; {kind}</div>')
    return f'<table class="bw-score-table" style="{TABLE_STYLE}">{"".join(rows)}</table>{status}'


class ScoreReadout(SessionView):
    """``session.score`` against ``session.baseline_score``, with the delta and how many heads are masked.

    While the live scorer runs (``session.busy``), a progress bar follows
    ``session.progress`` and the values are estimates with intervals
    (``session.score_interval``). The status line names the precision
    (``session.precision``). Failures show in a red box, one line per source
    (``score_error``, ``capture_error``, ``analysis_error``, and the views'
    ``error``), each until its own source succeeds again.

    Attributes
    ----------
    html : ipywidgets.HTML
        The table and status line (see :func:`score_html`).
    progress : ipywidgets.FloatProgress
        Bound to ``session.progress``; visible while ``session.busy``.
    error : ipywidgets.HTML
        The failures in a red box; hidden while there is none.
    """

    def __init__(self, session, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-readout")
        # Room for the table and a two-line status: an estimate's longer line or interval
        # never pushes the views below down.
        self.html = w.HTML(layout={"min_height": f"{22 * (len(session.metric_names) + 1) + 44}px"})
        self.html.add_class("bw-score")
        self.progress = w.FloatProgress(min=0.0, max=1.0, description="scoring", layout={"width": "320px"})
        self._dlink((session, "progress"), (self.progress, "value"))
        self._dlink((session, "busy"), (self.progress.layout, "visibility"),
                    lambda busy: "visible" if busy else "hidden")
        self.error = w.HTML(layout={"display": "none"})
        self.error.add_class("bw-error")
        self.children = [self.html, self.progress, self.error]
        self._observe(self._redraw, ["score", "baseline_score", "score_interval", "score_is_estimate",
                                     "masked_count", "busy"])
        self._observe(self._redraw_errors, list(ERROR_SOURCES))

    def _redraw_errors(self, _change) -> None:
        messages = [getattr(self.session, name) for name in ERROR_SOURCES if getattr(self.session, name)]
        text = error_html("\n".join(messages), "#b91c1c", "#fef2f2") if messages else ""
        with self.error.hold_sync():
            if self.error.value != text:
                self.error.value = text
            display = None if messages else "none"
            if self.error.layout.display != display:
                self.error.layout.display = display

    def _redraw(self, _change) -> None:
        text = score_html(self.session)
        if self.html.value != text:
            self.html.value = text
