"""One HTML file that shows widgets with no kernel and no network: the state and the JavaScript inlined.

The scripts come from ``bertology_widgets/static/snapshot/`` (``scripts/fetch_snapshot_js.py``
fetches them again; ``versions.json`` says which versions they are). Their order
matters: require.js, then the named bqplot and bqscales modules, then the
ipywidgets HTML manager, which renders the page's widget state once loaded and
finds bqplot with ``require("bqplot")`` before it would ask a CDN.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path

from ipywidgets.embed import dependency_state

SCRIPTS = ("require.js", "bqplot.js", "bqscales.js", "embed-amd.js")
#: The most a default model's snapshot may weigh, in bytes.
BUDGET_BYTES = 6_000_000
STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
PAGE_STYLE = """body { font-family: system-ui, sans-serif; margin: 16px; color: #111827; }
.bqplot_tooltip_div { pointer-events: none; }"""


def static_dir():
    """The folder of the inlined scripts, their licences and ``versions.json``."""
    return files("bertology_widgets") / "static" / "snapshot"


def inlined_versions() -> dict:
    """What ``static_dir()`` holds: ``{"@jupyter-widgets/html-manager": "1.0.15", "bqplot": ..., ...}``."""
    return json.loads((static_dir() / "versions.json").read_text(encoding="utf-8"))


def script_text(name: str) -> str:
    """One inlined script, safe inside ``<script>`` (no ``</script`` can end it early)."""
    text = (static_dir() / name).read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def json_for_script(value) -> str:
    """``value`` as JSON that is data inside ``<script>``: ``<``, ``>`` and ``&`` written as ``\\u`` escapes."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def widget_state(root) -> dict:
    """The ipywidgets embed state of ``root`` and what it depends on (its children, scales, ``jslink`` models)."""
    return {"version_major": 2, "version_minor": 0, "state": dependency_state([root], drop_defaults=True)}


def page_html(root, title: str, state: dict | None = None) -> str:
    """The page showing ``root``, with its state (default: :func:`widget_state`) and every script inlined."""
    state = widget_state(root) if state is None else state
    view = {"version_major": 2, "version_minor": 0, "model_id": root.model_id}
    scripts = "\n".join(f"<script>{script_text(name)}</script>" for name in SCRIPTS)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n"
        # The page asks for nothing beyond itself: data: fonts and images only, no connection.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; font-src data:; img-src data:\">\n"
        f"<script type=\"{STATE_MIME}\">{json_for_script(state)}</script>\n"
        f"</head>\n<body data-base-url=\"./\">\n<script type=\"{VIEW_MIME}\">{json_for_script(view)}</script>\n"
        f"{scripts}\n</body>\n</html>\n"
    )


def check_writable(path, option: str = "") -> Path:
    """``path`` as a Path, or ``ValueError`` (one line, naming ``option`` such as ``"--out"``) when no file
    can be written there; a probe opens it (and removes it again if it was not there)."""
    path, name = Path(path), f"{option} " if option else ""
    if path.is_dir():
        raise ValueError(f"{name}{path} is a folder; give a file name such as {path / 'snapshot.html'}")
    if not path.parent.is_dir():
        raise ValueError(f"{name}{path}: the folder {path.parent} does not exist; create it first")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ValueError(f"{name}{path}: cannot write there ({exc.strerror}); name a file you can write to") from None
    if not existed:
        path.unlink()
    return path
