"""``Controls``: choose a layer and a head, mask it, reset the mask."""

from __future__ import annotations

import ipywidgets as w

from ._base import SessionView
from ._style import layer_names


def numbered(prefix: str, n: int, names=None) -> list[tuple[str, int]]:
    """``[("Head 0", 0), ("Head 1", 1), ...]``; with ``names``, ``[("Layer L0", 0), ...]``."""
    return [(f"{prefix} {names[i] if names else i}", i) for i in range(n)]


class Controls(SessionView):
    """Layer and head dropdowns, a "Mask head" toggle and a "Reset mask" button.

    Attributes
    ----------
    layer, head : ipywidgets.Dropdown
        Linked to ``session.layer`` / ``session.head``.
    mask_head : ipywidgets.ToggleButton
        Follows ``session.head_masked``: pressed (and reading "Unmask head") while
        the selected head is masked; pressing it calls ``session.toggle_head``.
    reset : ipywidgets.Button
        Calls ``session.reset_mask()``.
    """

    def __init__(self, session, **kwargs):
        super().__init__(session, **kwargs)
        self.add_class("bw-controls")
        narrow = {"width": "150px"}
        self.layer = w.Dropdown(options=numbered("Layer", session.num_layers, layer_names(session.num_layers)),
                                layout=narrow)
        self.head = w.Dropdown(options=numbered("Head", session.num_heads), layout=narrow)
        fit = {"width": "auto"}  # buttons as wide as their labels
        self.mask_head = w.ToggleButton(description="Mask head", icon="ban",
                                        tooltip="Mask (zero) the selected head's output", layout=fit)
        self.reset = w.Button(description="Reset mask", icon="undo", tooltip="Keep every head", layout=fit)
        self._link((session, "layer"), (self.layer, "value"))
        self._link((session, "head"), (self.head, "value"))
        self._dlink((session, "head_masked"), (self.mask_head, "value"))
        self._observe(self._on_mask_head, ["value"], owner=self.mask_head, call_now=False)
        self._dlink((session, "head_masked"), (self.mask_head, "button_style"),
                    lambda masked: "danger" if masked else "")
        self._dlink((session, "head_masked"), (self.mask_head, "description"),
                    lambda masked: "Unmask head" if masked else "Mask head")
        self._on_click(self.reset, session.reset_mask)
        self.children = [w.HBox([self.layer, self.head, self.mask_head, self.reset], layout={"flex_flow": "row wrap"})]

    def _on_mask_head(self, change) -> None:
        """The toggle was pressed: mask or keep the selected head (the session's ``head_masked`` follows)."""
        session = self.session
        if change["new"] != session.head_masked:
            session.toggle_head(session.layer, session.head)
