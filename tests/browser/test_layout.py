"""The dashboard's layout in JupyterLab with the file browser open, at 1,100 px and 1,400 px.

A model with MiniLM's shape (6 layers x 12 heads, random and tiny, so it runs in
seconds) shows a long sentence. At each width no widget of the dashboard or of
its four panels reaches past the notebook's output column (it would be
clipped), no button cuts its label short, and the mask grid's last column
takes a click.
"""

from __future__ import annotations

import pytest

from . import harness as h
from .test_dashboard import run_notebook, wait_for_readout

pytestmark = pytest.mark.browser

LAYERS, HEADS = 6, 12
PANELS = (".bw-importance-panel", ".bw-hidden-states", ".bw-layer-probe", ".bw-patching-panel", ".bw-pipeline")
CELLS = [
    ("markdown", "# The dashboard's layout"),
    f"""\
from bertology_widgets import ModelSession, Dashboard
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer

model = tiny_model("bert", num_layers={LAYERS}, num_heads={HEADS}, hidden=48)
session = ModelSession(model, tiny_tokenizer(), tiny_examples(64), task="sst2")
session.text = ("the cinematography is breathtaking and the breathtaking score carries a long, slow, "
                "charming film whose ending nobody in the theatre saw coming")
Dashboard(session)""",
]

# Visible widgets of the dashboard (and its open panel) whose right edge passes the output column's.
_CLIPPED_JS = """() => {
  const dashboard = document.querySelector('.bw-dashboard');
  const column = dashboard.closest('.jp-OutputArea-output') || dashboard.parentElement;
  const limit = column.getBoundingClientRect().right + 1;
  const selector = '.bqplot, .widget-button, .widget-toggle-button, .widget-dropdown, .widget-text, '
    + '.widget-slider, .widget-html, .widget-progress, .widget-select';
  return [...dashboard.querySelectorAll(selector)]
    .filter(el => el.offsetParent !== null && el.getBoundingClientRect().width > 0)
    .filter(el => el.getBoundingClientRect().right > limit)
    .map(el => `${el.className.split(' ').slice(0, 3).join('.')} right=${el.getBoundingClientRect().right.toFixed(0)}`
      + ` limit=${limit.toFixed(0)} ${(el.innerText || '').slice(0, 30)}`);
}"""

# Visible buttons whose label does not fit (shown as "Importa...").
_TRUNCATED_JS = """() => [...document.querySelectorAll('.bw-dashboard button')]
  .filter(b => b.offsetParent !== null && b.scrollWidth > b.clientWidth + 1)
  .map(b => `${b.innerText} (${b.scrollWidth} > ${b.clientWidth})`)"""

# Whether the point at the centre of cell (row, col) of the mask grid hits that cell.
_HITS_CELL_JS = """([row, col]) => {
  const cell = document.querySelectorAll('.bw-mask-grid .heatmaprow')[row].querySelectorAll('.heatmapcell')[col];
  const box = cell.getBoundingClientRect();
  return document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) === cell;
}"""


def open_file_browser(page) -> None:
    """Make sure JupyterLab's left sidebar shows the file browser, as a teacher's window does."""
    if page.locator("#filebrowser").is_visible():
        return
    page.locator(".jp-SideBar.jp-mod-left [data-id='filebrowser']").first.click()
    page.locator("#filebrowser").wait_for(state="visible", timeout=h.UI_TIMEOUT_MS)


def assert_nothing_clipped(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_function(f"() => window.innerWidth === {width}", timeout=h.UI_TIMEOUT_MS)
    titles = page.locator(".bw-dashboard .jupyter-widget-Collapse-header, .bw-dashboard .lm-AccordionPanel-title")
    assert titles.count() == len(PANELS)
    for index, panel in [(None, None), *enumerate(PANELS)]:
        if index is not None:  # open one panel after the other (an accordion shows one at a time)
            titles.nth(index).click()
            page.locator(panel).wait_for(state="visible", timeout=h.ROUNDTRIP_TIMEOUT_MS)
        assert page.evaluate(_CLIPPED_JS) == [], f"clipped at {width} px (panel {panel})"
        assert page.evaluate(_TRUNCATED_JS) == [], f"truncated buttons at {width} px (panel {panel})"


@pytest.mark.parametrize("width", [1100, 1400])
def test_dashboard_fits_the_notebook_column(width, jupyter_server, browser_root, page, browser_log):
    notebook = h.write_notebook(browser_root / "layout" / f"layout_{width}.ipynb", CELLS)
    page.set_viewport_size({"width": width, "height": 1000})
    run_notebook(page, "lab", jupyter_server("lab"), browser_root, notebook, h.KERNEL_TIMEOUT_MS)
    open_file_browser(page)
    page.wait_for_selector(".bw-mask-grid .bqplot .heatmapcell", timeout=h.KERNEL_TIMEOUT_MS)
    page.locator(".bw-attention-grid button:has-text('All heads')").click()
    page.wait_for_function(f"() => document.querySelectorAll('.bw-all-heads .bqplot').length === {HEADS}",
                           timeout=h.ROUNDTRIP_TIMEOUT_MS)
    assert_nothing_clipped(page, width)
    h.screenshot(page, f"dashboard-layout-{width}")

    # The last column of the mask grid takes a click: the cell is on top at its centre, and toggles.
    page.locator(".bw-mask-grid").scroll_into_view_if_needed()
    assert page.evaluate(_HITS_CELL_JS, [0, HEADS - 1]), "the mask grid's last column is covered or cut off"
    page.locator(".bw-mask-grid .heatmaprow >> nth=0").locator(f".heatmapcell >> nth={HEADS - 1}").click()
    wait_for_readout(page, f"1 of {LAYERS * HEADS} heads masked", timeout_ms=h.ROUNDTRIP_TIMEOUT_MS)
    assert browser_log.unexpected_page_errors() == []
