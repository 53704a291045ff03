"""The views: thin ipywidgets + bqplot layers over a :class:`~bertology_widgets.ModelSession`.

Each view links its controls to session traits and redraws when they change;
:class:`Dashboard` puts them together::

    from bertology_widgets import ModelSession, Dashboard
    session = ModelSession.from_pretrained(task="sst2")
    Dashboard(session)
"""

from .attention_grid import AttentionGrid
from .controls import Controls
from .dashboard import Dashboard
from .example_view import ExampleView
from ..core.mask_files import load_mask, save_mask
from .head_mask_grid import HeadMaskGrid
from .hidden_states import HiddenStatesView
from .importance_panel import ImportancePanel
from .layer_probe import LayerProbe
from .patching_panel import PatchingPanel
from .score_readout import ScoreReadout

__all__ = ["AttentionGrid", "HeadMaskGrid", "ScoreReadout", "ExampleView", "Controls", "Dashboard",
           "ImportancePanel", "HiddenStatesView", "LayerProbe", "save_mask", "load_mask", "PatchingPanel"]
