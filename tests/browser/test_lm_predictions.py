"""A language model's dashboard in JupyterLab: the prediction table and the Logit lens fold render on the default
LM (SmolLM2-135M, offline) and change after a click on the mask grid. With ``BERTOLOGY_UPDATE_DOCS=1`` it writes
``docs/images/lm_predictions.png`` and ``docs/images/logit_lens.png``."""

from __future__ import annotations

import pytest

from . import harness as h
from .test_dashboard import MODEL_TIMEOUT_MS, run_notebook
from .test_lm_dashboard import default_lm  # noqa: F401 - the fixture that converts the default LM once
from .test_panel_layout import open_fold

pytestmark = pytest.mark.browser

TEXT = "The capital of France is"
CELL = """\
import os
os.environ["BERTOLOGY_RESULTS_DIR"] = {results!r}
from bertology_widgets import Dashboard, ModelSession

session = ModelSession.from_pretrained("default-lm", task="lm", max_examples=8)
session.text = {text!r}
Dashboard(session)"""
TABLE = ".bw-predictions .bw-prediction-table"
LENS_CELLS = ".bw-logit-lens .bqplot .heatmapcell"
_TABLE_JS = ("() => [...document.querySelectorAll('.bw-predictions .widget-html-content')]"
             ".map(e => e.innerHTML).join('')")
_LENS_FILLS_JS = f"() => [...document.querySelectorAll('{LENS_CELLS}')].map(c => getComputedStyle(c).fill).join()"


@pytest.mark.usefixtures("default_lm")
def test_the_prediction_table_and_the_lens_follow_a_click_on_the_mask_grid(lab_server, browser_root, page,
                                                                          browser_log):
    folder = browser_root / "lm_predictions"
    cells = [("markdown", "# What the language model predicts, layer by layer"),
             CELL.format(results=str(folder / "results"), text=TEXT)]
    notebook = h.write_notebook(folder / "lm_predictions.ipynb", cells)
    run_notebook(page, "lab", lab_server, browser_root, notebook, MODEL_TIMEOUT_MS)
    page.locator(TABLE).first.wait_for(state="visible", timeout=MODEL_TIMEOUT_MS)
    assert "next token" in page.locator(".bw-predictions").inner_text()
    assert "Paris" in page.locator(TABLE).first.inner_text()
    assert page.locator(".bw-predictions .bw-surprisal-strip .bw-token").count() >= 4
    open_fold(page, "Logit lens", ".bw-logit-lens")
    page.wait_for_function(f"() => document.querySelectorAll('.bw-logit-lens .heatmaprow').length === 31 && "
                           f"document.querySelectorAll('{LENS_CELLS}').length >= 31 * 5",
                           timeout=h.ROUNDTRIP_TIMEOUT_MS * 2)
    table, fills = page.evaluate(_TABLE_JS), page.evaluate(_LENS_FILLS_JS)
    page.locator(".bw-mask-grid .heatmaprow").nth(0).locator(".heatmapcell").nth(0).dispatch_event("click")
    page.wait_for_function(f"(old) => ({_TABLE_JS})() !== old", arg=table, timeout=h.ROUNDTRIP_TIMEOUT_MS * 2)
    page.wait_for_function(f"(old) => ({_LENS_FILLS_JS})() !== old", arg=fills, timeout=h.ROUNDTRIP_TIMEOUT_MS * 2)
    page.mouse.move(0, 0)  # no tooltip in the pictures
    page.locator(".bw-predictions").scroll_into_view_if_needed()
    page.locator(".bw-predictions").screenshot(path=str(h.docs_screenshot("lm_predictions.png")),
                                               animations="disabled")
    page.locator(".bw-logit-lens").scroll_into_view_if_needed()
    page.locator(".bw-logit-lens").screenshot(path=str(h.docs_screenshot("logit_lens.png")), animations="disabled")
    assert browser_log.unexpected_page_errors() == []
