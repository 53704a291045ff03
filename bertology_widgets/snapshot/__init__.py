"""A self-contained HTML snapshot of the dashboard: it works offline, from ``file://``, with no kernel.

    from bertology_widgets.snapshot import save_snapshot
    save_snapshot(session, "page.html")          # or Dashboard(session).save_html("page.html")

:func:`~.data.collect` computes what the page shows (the shown input's
attention for every layer and head, one score per mask of the slider),
:func:`~.views.snapshot_view` makes widgets of it whose controls are linked in
the browser, and :func:`~.page.page_html` writes them with the ipywidgets embed
state and the inlined JavaScript.
"""

from __future__ import annotations

from pathlib import Path

from .data import PRECOMPUTED_NOTE, MaskState, SnapshotData, collect
from .page import BUDGET_BYTES, check_writable, inlined_versions, page_html
from .views import snapshot_view

__all__ = ["BUDGET_BYTES", "PRECOMPUTED_NOTE", "MaskState", "SnapshotData", "collect", "inlined_versions",
           "save_snapshot", "snapshot_page", "write_snapshot"]


def _close_tree(state: dict) -> None:
    """Close every widget of a written snapshot (its models leave the kernel and the front end)."""
    from ipywidgets.widgets.widget import _instances

    for model_id in list(state):
        widget = _instances.get(model_id)
        if widget is not None:
            widget.close()


def snapshot_page(data: SnapshotData) -> str:
    """The HTML page of ``data``; the widgets made for it are closed again."""
    from .page import widget_state

    root = snapshot_view(data)
    state = widget_state(root)
    try:
        return page_html(root, f"{data.model_name} \u00b7 {data.task} \u00b7 bertology-widgets snapshot", state)
    finally:
        _close_tree(state["state"])


def write_snapshot(data: SnapshotData, path) -> Path:
    """Write the page of ``data`` to ``path`` (UTF-8); returns the path."""
    path = check_writable(path)
    path.write_text(snapshot_page(data), encoding="utf-8")
    return path


def save_snapshot(session, path, with_curve: bool = True) -> Path:
    """Write a snapshot of ``session`` to ``path``: see :func:`~.data.collect` for what it computes."""
    path = check_writable(path)
    return write_snapshot(collect(session, with_curve=with_curve), path)
