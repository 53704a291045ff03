"""``Dashboard``: every view of one session, laid out together, with export buttons."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TypeVar

import ipywidgets as w

from ._base import SessionView
from ._style import CSS
from .attention_grid import AttentionGrid
from .controls import Controls
from .example_view import ExampleView
from .head_mask_grid import HeadMaskGrid
from .hidden_states import HiddenStatesView
from .importance_panel import ImportancePanel
from .layer_probe import LayerProbe
from .logit_lens_panel import LogitLensPanel
from .patching_panel import PatchingPanel
from .pipeline_panel import PipelinePanel
from .prediction_table import is_language_model
from .score_readout import ScoreReadout
from .token_strip import TokenStrip

View = TypeVar("View", bound=SessionView)

# The folded panels below the main row: (attribute, title, view), in their order.
PANELS: tuple[tuple[str, str, type[SessionView]], ...] = (
    ("importance", "Head importance and masking curve", ImportancePanel),
    ("hidden_states", "Hidden states", HiddenStatesView),
    ("probe", "Which layer knows the label? (layer probe)", LayerProbe),
    ("patching", "Patching: which heads carry the decision?", PatchingPanel),
    ("pipeline", "Pipeline: what each layer knows", PipelinePanel),  # Tenney et al. 2019
)
# Folds only a language model's dashboard has, after those.
LM_PANELS: tuple[tuple[str, str, type[SessionView]], ...] = (
    ("logit_lens", "Logit lens: what each layer would predict", LogitLensPanel),  # nostalgebraist 2020
)


class Dashboard(SessionView):
    """Controls, attention map, head-mask grid, score readout and the example, over one session.

    Parameters
    ----------
    session : ModelSession, optional
        Default: ``ModelSession.from_pretrained()``, the default MiniLM fine-tuned
        on SST-2 (built into ``~/.cache/bertology_widgets`` on first use).
    export_dir : path, default "."
        Where the "Mask .npy" / "Mask .json" buttons write (on the kernel's machine).

    Attributes
    ----------
    controls, attention, mask_grid, readout, example
        The views (:class:`Controls`, :class:`AttentionGrid`, :class:`HeadMaskGrid`,
        :class:`ScoreReadout`, :class:`ExampleView`).
    importance, hidden_states, probe, patching, pipeline
        :class:`ImportancePanel`, :class:`HiddenStatesView`, :class:`LayerProbe`,
        :class:`PatchingPanel`, :class:`PipelinePanel`. Each is built the first
        time its fold is opened or the attribute is read.
    logit_lens
        :class:`LogitLensPanel`, for a language model only (``LM_PANELS``).
    panels : ipywidgets.Accordion
        Those, folded below the main row (``panel_specs`` gives their order and
        titles); fold ``i`` holds its panel once built.
    """

    def __init__(self, session=None, export_dir=".", **kwargs):
        self._owns_session = session is None
        if session is None:
            from ..session import ModelSession

            session = ModelSession.from_pretrained()
        super().__init__(session, **kwargs)
        self.add_class("bw-dashboard")
        # As wide as the notebook's column, not 100 % of it plus a widget's margin (which ran 2 px past it).
        self.layout.width, self.layout.margin = "auto", "2px 0"
        self.export_dir = Path(export_dir)
        self.controls = Controls(session)
        self.attention = AttentionGrid(session)
        self.mask_grid = HeadMaskGrid(session)
        self.readout = ScoreReadout(session)
        self.example = ExampleView(session)
        self.token_strip = TokenStrip(session)
        self.exports = self._export_bar()
        # Folded panels are built the first time they are opened (or read): a page shows sooner, and
        # a class of kernels does not send the browser widgets that most students never unfold.
        self._built: dict[str, SessionView] = {}
        self.panel_specs = PANELS + (LM_PANELS if is_language_model(session) else ())
        self.panels = w.Accordion(selected_index=None, children=[w.VBox() for _ in self.panel_specs])
        self.panels.add_class("bw-panels")
        for index, (_name, title, _view) in enumerate(self.panel_specs):
            self.panels.set_title(index, title)
        self._observe(self._activate_panels, ["selected_index"], owner=self.panels)
        header = w.HTML(f"{CSS}<b>{html.escape(session.model_name)}</b> &middot; {session.task} &middot; "
                        f"{session.num_layers} layers &times; {session.num_heads} heads &middot; "
                        f"{len(session.examples)} examples")
        side = w.VBox([self.readout, self.mask_grid], layout={"margin": "0 0 0 12px", "width": "430px",
                                                              "max_width": "100%"})
        # Wraps (the mask grid goes under the attention map) rather than clip in a narrow column; the attention
        # map narrows to the column where even it alone does not fit.
        self.attention.layout.flex = "0 1 auto"
        self.attention.layout.min_width = "0"
        self.main_row = w.HBox([self.attention, side], layout={"flex_flow": "row wrap"})
        self.main_row.add_class("bw-main-row")
        self.children = [header, self.controls, self.main_row, self.example, self.token_strip, self.exports,
                         self.panels]

    def _activate_panels(self, _change) -> None:
        """Folded panels compute and send nothing; the opened one is built, or catches up."""
        opened = self.panels.selected_index
        if opened is not None:
            self._panel(self.panel_specs[opened][0], SessionView)
        for index, (name, _title, _view) in enumerate(self.panel_specs):
            if name in self._built:
                self._built[name].set_active(index == opened)

    def _panel(self, name: str, kind: type[View]) -> View:
        """The panel called ``name``, built into its fold on first use (inactive unless that fold is open)."""
        if name not in self._built:
            names = [panel[0] for panel in self.panel_specs]
            if name not in names:
                raise AttributeError(f"this dashboard has no {name!r} panel (it is a language model's)")
            index = names.index(name)
            built = self.panel_specs[index][2](self.session)
            built.set_active(self.panels.selected_index == index)
            self._built[name] = built
            self.panels.children[index].children = (built,)
        view = self._built[name]
        assert isinstance(view, kind)
        return view

    @property
    def importance(self) -> ImportancePanel:
        return self._panel("importance", ImportancePanel)

    @property
    def hidden_states(self) -> HiddenStatesView:
        return self._panel("hidden_states", HiddenStatesView)

    @property
    def probe(self) -> LayerProbe:
        return self._panel("probe", LayerProbe)

    @property
    def patching(self) -> PatchingPanel:
        return self._panel("patching", PatchingPanel)

    @property
    def pipeline(self) -> PipelinePanel:
        return self._panel("pipeline", PipelinePanel)

    @property
    def logit_lens(self) -> LogitLensPanel:
        return self._panel("logit_lens", LogitLensPanel)

    def _export_bar(self) -> w.HBox:
        self.export_status = w.HTML()
        buttons = []
        for label, action in (("Attention PNG",
                               lambda: self.attention.save_png(self._picture_name("attention", "png"))),
                              ("Mask grid SVG",
                               lambda: self.mask_grid.save_svg(self._picture_name("head_mask", "svg"))),
                              ("Mask .npy", lambda: self.save_mask(self.export_dir / "head_mask.npy")),
                              ("Mask .json", lambda: self.save_mask(self.export_dir / "head_mask.json")),
                              ("Snapshot (HTML)", lambda: self.save_html(self.export_dir / "dashboard_snapshot.html"))):
            button = w.Button(description=label, icon="download", layout={"width": "auto"})
            self._on_click(button, action)
            buttons.append(button)
        return w.HBox([*buttons, self.export_status], layout={"flex_flow": "row wrap"})

    def _picture_name(self, stem: str, suffix: str) -> str:
        return f"{stem}_L{self.session.layer}_H{self.session.head}.{suffix}"

    def save_mask(self, path) -> Path:
        """Write the mask to ``path`` (``.npy`` or ``.json``) on the kernel's machine."""
        path = Path(path)
        self.mask_grid.save_mask(path)
        self.export_status.value = f"saved the mask to <code>{html.escape(str(path))}</code>"
        return path

    def save_html(self, path) -> Path:
        """Write a self-contained HTML snapshot of the dashboard to ``path``: it works offline, with no kernel.

        The page holds the shown input's attention for every layer and head, the mask grid and
        the readout at the session's mask and at each step of its masking curve (a slider), and
        the importance map and curve when the session has them; all precomputed, here, on the
        kernel's thread (one scoring pass per mask). See :mod:`bertology_widgets.snapshot`.
        """
        from ..snapshot import save_snapshot

        path = save_snapshot(self.session, path)
        self.export_status.value = f"wrote the snapshot <code>{html.escape(str(path))}</code>"
        return path

    def save_attention_png(self, filename: str | None = None) -> None:
        """Download the attention map as PNG (in the browser; see :meth:`AttentionGrid.save_png`)."""
        self.attention.save_png(filename)

    def save_mask_grid_svg(self, filename: str | None = None) -> None:
        """Download the head-mask grid as SVG (in the browser; see :meth:`HeadMaskGrid.save_svg`)."""
        self.mask_grid.save_svg(filename)

    def close(self) -> None:
        for view in (self.controls, self.attention, self.mask_grid, self.readout, self.example, self.token_strip,
                     *self._built.values()):
            view.close()
        super().close()
        if self._owns_session:
            self.session.close()
