"""Colours, legend and hover text for head roles on a layers x heads grid.

Roles are categories, so they get distinct colours (matplotlib's tab10, as the
field's figures of head behaviour use) and a legend of swatches, never a colour
bar; "mixed" is a visible beige, so a grid of mostly mixed heads does not look empty.
The grid colours cells by a role's index on a
:class:`bqplot.ColorScale` whose ``colors`` list has one entry per role and
whose domain is ``0 .. len(roles) - 1``: index ``i`` maps exactly to colour ``i``.
"""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from ..analyses.head_roles import ROLE_DESCRIPTIONS, ROLES

ROLE_NAMES = ROLES + ("pruned",)
ROLE_PALETTE = {
    "cls": "#1f77b4", "sep": "#7f7f7f", "punct": "#8c564b", "prev": "#2ca02c", "next": "#98df8a",
    "self": "#ff7f0e", "broad": "#9467bd", "mixed": "#d8cfc4", "pruned": "#111827",
}
ROLE_COLOURS = {"colors": [ROLE_PALETTE[name] for name in ROLE_NAMES], "min": 0.0, "max": float(len(ROLE_NAMES) - 1)}


def role_indices(roles) -> np.ndarray:
    """Role names ``(layers, heads)`` -> float indices into :data:`ROLE_NAMES`."""
    lookup = {name: i for i, name in enumerate(ROLE_NAMES)}
    return np.vectorize(lambda r: float(lookup.get(str(r), lookup["mixed"])), otypes=[float])(np.asarray(roles))


def legend_html(roles) -> str:
    """A one-line legend: a swatch, the role name and its head count, for the roles present."""
    names, counts = np.unique(np.asarray(roles).astype(str), return_counts=True)
    present = dict(zip(names.tolist(), counts.tolist()))
    items = [
        f'<span title="{html.escape(ROLE_DESCRIPTIONS.get(name, name))}" style="margin-right:8px;white-space:nowrap">'
        f'<span style="display:inline-block;width:10px;height:10px;background:{ROLE_PALETTE[name]};'
        f'border:1px solid #6b7280;margin-right:3px"></span>{html.escape(name)} ({present[name]})</span>'
        for name in ROLE_NAMES if name in present
    ]
    return '<div class="bw-legend">' + " ".join(items) + "</div>"


class RoleTooltip(w.HTML):
    """The hover tooltip of a role-coloured grid: layer, head and the role's name and meaning.

    Connect :meth:`on_hover` to the heat map's ``on_hover``; ``roles`` is a
    callable returning the current ``(layers, heads)`` role names (or None).
    """

    def __init__(self, roles, **kwargs):
        super().__init__(**kwargs)
        self._roles = roles

    def on_hover(self, _mark, content) -> None:
        data = content.get("data") or {}
        try:
            layer = int(data.get("rowNum", data.get("row")))  # type: ignore[arg-type]  # None: TypeError below
            head = int(data.get("columnNum", data.get("column")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        self.show(layer, head)

    def show(self, layer: int, head: int) -> None:
        roles = self._roles()
        role = "not computed" if roles is None else str(np.asarray(roles)[layer, head])
        meaning = ROLE_DESCRIPTIONS.get(role, "")
        self.value = (f"<div style='padding:2px 6px'>layer L{layer}, head {head}<br><b>{html.escape(role)}</b>"
                      f"{'<br><small>' + html.escape(meaning) + '</small>' if meaning else ''}</div>")
