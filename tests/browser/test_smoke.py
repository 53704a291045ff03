"""Smoke test of the browser harness: ipywidgets + bqplot render and talk to the kernel
in JupyterLab, Notebook 7 and Voilà."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest

from . import harness as h

pytestmark = pytest.mark.browser

SMOKE_CELLS = [
    ("markdown", "# Browser smoke test"),
    "import sys\nprint('KERNEL_PREFIX=' + sys.prefix)",
    """\
import bqplot as bq
import ipywidgets as widgets
import numpy as np

layer = widgets.Dropdown(options=["layer 0", "layer 1", "layer 2"], value="layer 0", description="Layer")
mask = widgets.ToggleButton(description="Mask head", value=False)
readout = widgets.HTML(value="head 0 of layer 0: active")
readout.add_class("smoke-readout")


def update(_change=None):
    state = "masked" if mask.value else "active"
    readout.value = f"head 0 of {layer.value}: {state}"


mask.observe(update, names="value")
layer.observe(update, names="value")

heat = bq.GridHeatMap(
    color=np.arange(25, dtype=float).reshape(5, 5),
    scales={"row": bq.OrdinalScale(reverse=True), "column": bq.OrdinalScale(), "color": bq.ColorScale()},
)
figure = bq.Figure(marks=[heat], layout=widgets.Layout(width="420px", height="380px"),
                   padding_y=0, fig_margin=dict(top=20, bottom=20, left=20, right=20))
widgets.VBox([widgets.HBox([layer, mask, readout]), figure])
""",
]

READOUT = ".smoke-readout .widget-html-content"
TOGGLE = "button:has-text('Mask head')"
HEATMAP_CELLS = ".bqplot .heatmapcell"


@pytest.fixture
def smoke_notebook(browser_root):
    return h.write_notebook(browser_root / "smoke" / "widgets.ipynb", SMOKE_CELLS)


def exercise_widgets(page, name: str) -> None:
    """The checks shared by Lab, Notebook 7 and Voilà."""
    page.wait_for_selector(HEATMAP_CELLS, timeout=h.UI_TIMEOUT_MS)
    assert page.locator(".bqplot").count() == 1
    assert page.locator(HEATMAP_CELLS).count() == 25
    assert page.locator(".bqplot rect").count() >= 25

    readout = page.locator(READOUT)
    assert readout.inner_text() == "head 0 of layer 0: active"
    toggle = page.locator(TOGGLE)
    toggle.click()
    assert h.wait_for_text_change(readout, "head 0 of layer 0: active") == "head 0 of layer 0: masked"
    assert "mod-active" in (toggle.get_attribute("class") or "")

    page.locator(".widget-dropdown select").select_option("layer 2")
    assert h.wait_for_text_change(readout, "head 0 of layer 0: masked") == "head 0 of layer 2: masked"
    h.screenshot(page, name)


@pytest.mark.parametrize("flavour", ["lab", "nb7"])
def test_widgets_in_notebook(flavour, jupyter_server, smoke_notebook, browser_root, page, browser_log):
    server = jupyter_server(flavour)
    path = smoke_notebook.relative_to(browser_root).as_posix()
    h.open_notebook(page, flavour, server.base_url, path)
    h.run_all_cells(page, flavour)
    h.assert_no_errors(page)
    assert f"KERNEL_PREFIX={sys.prefix}" in page.locator(".jp-OutputArea").first.inner_text()
    exercise_widgets(page, f"smoke-{flavour}")
    assert browser_log.external_requests == [], "the page reached beyond 127.0.0.1"
    assert browser_log.unexpected_page_errors() == []


def test_widgets_in_voila(voila_server, smoke_notebook, page, browser_log):
    server = voila_server(smoke_notebook)
    h.open_voila(page, server.base_url)
    exercise_widgets(page, "smoke-voila")
    # Voilà's lab template links Font Awesome from a CDN; it is blocked and harmless.
    assert all("fontawesome" in url for url in browser_log.external_requests), browser_log.external_requests
    assert browser_log.unexpected_page_errors() == []


# --------------------------------------------------------------------------- the harness itself


def test_run_all_cells_stops_at_a_failing_cell(lab_server, browser_root, page):
    h.write_notebook(browser_root / "smoke" / "fails.ipynb",
                     ["x = 1", "raise ValueError('boom in cell 2')", "y = 2"])
    h.open_notebook_lab(page, lab_server.base_url, "smoke/fails.ipynb")
    with pytest.raises(AssertionError, match="boom in cell 2"):
        h.run_all_cells(page, "lab")
    counts = h.execution_counts(page)
    assert counts[0] is not None and counts[1] is not None and counts[2] is None
    assert len(h.error_outputs(page)) == 1


def test_lab_settings_keep_jupyterlab_offline_and_unwindowed(lab_server):
    def schema_default(plugin: str, key: str):
        with urllib.request.urlopen(lab_server.url(f"lab/api/settings/{plugin}"), timeout=60) as resp:
            return json.load(resp)["schema"]["properties"][key]["default"]

    notification = "@jupyterlab/apputils-extension:notification"
    assert schema_default(notification, "fetchNews") == "false"
    assert schema_default(notification, "checkForUpdates") is False
    assert schema_default("@jupyterlab/notebook-extension:tracker", "windowingMode") == "none"


def test_url_helpers():
    assert h.split_notebook_url("http://127.0.0.1:8888/lab/tree/a%20b/c.ipynb?reset") == (
        "http://127.0.0.1:8888/", "a b/c.ipynb")
    assert h.split_notebook_url("http://127.0.0.1:9/base/notebooks/x.ipynb") == (
        "http://127.0.0.1:9/base/", "x.ipynb")
    assert h.is_local_url("http://127.0.0.1:9/static/a.js") and h.is_local_url("data:image/png;base64,")
    assert not h.is_local_url("https://cdn.jsdelivr.net/npm/x.css")
