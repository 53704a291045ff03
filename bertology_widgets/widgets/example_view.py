"""``ExampleView``: the input under the microscope, its predictions and the flipped examples."""

from __future__ import annotations

import html

import ipywidgets as w

from ._base import SessionView
from .prediction_table import PredictionTable, is_language_model

PREVIEW_CHARS = 70


def label_text(value, names) -> str:
    """A label or prediction as the task names it (``"positive"``), a number for regression, "-" for none."""
    if value is None:
        return "&ndash;"
    if not names:  # regression (STS-B)
        return f"{float(value):.3f}"
    index = int(value)
    return html.escape(names[index]) if 0 <= index < len(names) else str(index)


def preview(example, chars: int = PREVIEW_CHARS) -> str:
    text = example.text_a if example.text_b is None else f"{example.text_a} | {example.text_b}"
    return text if len(text) <= chars else text[: chars - 1] + "…"


class ExampleView(SessionView):
    """Pick a dev example or type your own text; see its label and predictions.

    Attributes
    ----------
    index : ipywidgets.BoundedIntText
        Linked to ``session.example_index`` (-1 while custom text is shown).
    source : ipywidgets.HTML
        Says which dev example is shown, or that the text is your own.
    text, text_pair : ipywidgets.Text
        Linked to ``session.text`` / ``session.text_pair`` (an empty second
        text means a single sentence); they update the session on Enter or when
        they lose focus, and the "Analyse" button sends both at once. The pair
        box is hidden for single-sentence tasks (SST-2).
    prediction : ipywidgets.HTML
        Gold label, prediction under the mask and without it.
    flipped : ipywidgets.Select
        Examples whose prediction the mask flipped; choosing one shows it.
    notice : ipywidgets.HTML
        ``session.notice`` (e.g. that the text was truncated).
    predictions : PredictionTable or None
        A language model's top 5 next tokens (or mask fills), masked and unmasked, and the surprisal strip;
        None for a classifier.
    """

    def __init__(self, session, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-example")
        self.index = w.BoundedIntText(min=-1, max=len(session.examples) - 1, description="Example",
                                      tooltip="dev example (-1: your own text)", layout={"width": "180px"})
        wide = {"width": "auto", "max_width": "640px"}  # the column's width less the widget's margins
        self.text = w.Text(description="Text", continuous_update=False, layout=wide)
        self.text_pair = w.Text(description="Pair", placeholder="(optional second sentence)",
                                continuous_update=False, layout=wide)
        self.analyse = w.Button(description="Analyse", icon="search", button_style="primary",
                                layout={"width": "auto"})
        self.source = w.HTML()
        self.prediction = w.HTML()
        self.prediction.add_class("bw-prediction")
        self.flipped = w.Select(description="Flipped", rows=5, layout=dict(wide))
        self.notice = self._message_box("notice", "#92400e", "#fffbeb")
        self._link((session, "example_index"), (self.index, "value"))
        self._link((session, "text"), (self.text, "value"))
        self._link((session, "text_pair"), (self.text_pair, "value"), (lambda t: t or "", lambda t: t or None))
        pairs = any(example.text_b is not None for example in session.examples)
        self._dlink((session, "text_pair"), (self.text_pair.layout, "display"),
                    lambda pair: None if pairs or pair else "none")
        self._dlink((session, "example_index"), (self.source, "value"),
                    lambda i: (f"<small>dev example {i} of {len(session.examples)}</small>" if i >= 0
                               else "<small>your own text (not a dev example, so no gold label)</small>"))
        self._on_click(self.analyse, self.submit)
        self._observe(self._show_flipped_choice, ["value"], owner=self.flipped, call_now=False)
        self._observe(self._redraw_prediction, ["example_label", "example_prediction", "example_baseline_prediction"])
        self._observe(self._redraw_flipped, ["flipped", "example_index"])
        self.predictions = PredictionTable(session) if is_language_model(session) else None
        self.children = [w.HBox([self.index, self.source, self.analyse], layout={"align_items": "center"}),
                         self.text, self.text_pair, self.prediction,
                         *([self.predictions] if self.predictions is not None else []), self.notice, self.flipped]

    def submit(self) -> None:
        """Show the typed text (and pair) in one go; what "Analyse" does."""
        s, pair = self.session, self.text_pair.value or None
        if (s.text, s.text_pair) != (self.text.value, pair):
            with s.hold_trait_notifications():
                s.text, s.text_pair = self.text.value, pair

    def _redraw_prediction(self, _change) -> None:
        s, names = self.session, self.session.label_names
        now, base = s.example_prediction, s.example_baseline_prediction
        flip = ' <b style="color:#b91c1c">(flipped)</b>' if None not in (now, base) and now != base else ""
        label = "" if s.example_index < 0 else f"label: <b>{label_text(s.example_label, names)}</b> &middot; "
        self.prediction.value = (f"{label}prediction: <b>{label_text(now, names)}</b>{flip}"
                                 f" &middot; unmasked: <b>{label_text(base, names)}</b>")

    def _redraw_flipped(self, _change) -> None:
        s = self.session
        options = [(f"#{i}: {preview(s.examples[i])}", i) for i in s.flipped]
        with self.flipped.hold_sync():
            if tuple(self.flipped.options) != tuple(options):
                self.flipped.options = options
            self.flipped.value = s.example_index if s.example_index in s.flipped else None
            self.flipped.description = f"Flipped ({len(options)})"

    def _show_flipped_choice(self, _change) -> None:
        choice = self.flipped.value
        if choice is not None and choice != self.session.example_index:
            self.session.example_index = choice

    def close(self) -> None:
        if self.predictions is not None:
            self.predictions.close()
        super().close()
