"""The Pipeline panel in JupyterLab: it renders with its colour bar and recomputes after a mask change (tiny model).

The notebook reads ``dashboard.pipeline`` while the panel is folded, and the page's console must stay free of
errors (a figure drawn folded, or a line below the plot, logs ``<rect> attribute height: A negative value``).
"""

from __future__ import annotations

import pytest

from . import harness as h
from .test_dashboard import run_notebook, save_screenshot

pytestmark = pytest.mark.browser

CELLS = [
    ("markdown", "# What each layer knows: the Pipeline panel on a tiny random model"),
    """\
from bertology_widgets import Dashboard, ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer

model = tiny_model("bert", num_layers=3, num_heads=4, initializer_range=1.0)
session = ModelSession(model, tiny_tokenizer(), tiny_examples(32), task="sst2")
dashboard = Dashboard(session)
dashboard.pipeline.tasks = ("upos", "deprel")  # the embedded treebank, a few sentences: seconds, not minutes
dashboard.pipeline.options = {"max_sentences": 24, "max_iter": 5}
dashboard""",
]
PANEL = ".bw-pipeline"
STATUS = f"{PANEL} .bw-pipeline-status"
_STATUS_JS = f"() => document.querySelector('{STATUS}')?.innerText || ''"
# Drawn: the mix map's cells (2 tasks x (3 layers + embeddings)) and the status line that comes with them.
_DRAWN_JS = (f"() => document.querySelectorAll('{PANEL} .bqplot .heatmapcell').length === 2 * 4"
             f" && ({_STATUS_JS})().includes('heads masked')")


def test_the_panel_renders_with_its_colour_bar_and_recomputes_after_a_mask_change(jupyter_server, browser_root,
                                                                                     page, browser_log):
    notebook = h.write_notebook(browser_root / "pipeline" / "pipeline_panel.ipynb", CELLS)
    run_notebook(page, "lab", jupyter_server("lab"), browser_root, notebook, h.KERNEL_TIMEOUT_MS)
    titles = page.locator(".bw-dashboard .jupyter-widget-Collapse-header, .bw-dashboard .lm-AccordionPanel-title")
    titles.filter(has_text="Pipeline").first.click()
    page.locator(PANEL).wait_for(state="visible", timeout=h.ROUNDTRIP_TIMEOUT_MS)
    page.locator(f"{PANEL} button:has-text('Compute')").click()
    page.wait_for_function(_DRAWN_JS, timeout=h.KERNEL_TIMEOUT_MS)
    assert page.locator(f"{PANEL} .bqplot .ColorBar").count() >= 1  # the mix weights' colour bar
    first = page.evaluate(_STATUS_JS)
    assert "0 heads masked" in first and "changed since" not in page.locator(PANEL).inner_text()
    page.locator(".bw-mask-grid .heatmaprow >> nth=1").locator(".heatmapcell >> nth=2").click()
    page.locator(f"{PANEL} .bw-pipeline-stale").wait_for(state="visible", timeout=h.ROUNDTRIP_TIMEOUT_MS)
    page.locator(f"{PANEL} button:has-text('Compute')").click()
    page.wait_for_function(f"(old) => ({_STATUS_JS})() !== old && ({_STATUS_JS})().includes('1 head')",
                           arg=first, timeout=h.KERNEL_TIMEOUT_MS)
    assert page.locator(f"{PANEL} .bw-pipeline-stale").count() == 0
    save_screenshot(page, h.ARTIFACTS_DIR / "pipeline-panel.png")
    assert browser_log.unexpected_page_errors() == []
    assert browser_log.console_errors() == []
