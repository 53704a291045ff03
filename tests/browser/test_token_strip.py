"""The token strip in JupyterLab: it renders coloured words and changes after a head toggle (tiny model)."""

from __future__ import annotations

import pytest

from . import harness as h
from .test_dashboard import run_notebook, save_screenshot

pytestmark = pytest.mark.browser

CELLS = [
    ("markdown", "# Why this prediction? The token strip on a tiny random model"),
    """\
from bertology_widgets import Dashboard, ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer

model = tiny_model("bert", num_layers=4, num_heads=4, initializer_range=1.0)
session = ModelSession(model, tiny_tokenizer(), tiny_examples(64), task="sst2")
session.text = "a charming and affecting journey"
Dashboard(session)""",
]
STRIP = ".bw-token-strip-masked .widget-html-content"
_STRIP_HTML_JS = f"() => document.querySelector('{STRIP}')?.innerHTML || ''"


def test_the_strip_renders_and_follows_a_head_toggle(jupyter_server, browser_root, page, browser_log):
    notebook = h.write_notebook(browser_root / "strip" / "token_strip.ipynb", CELLS)
    run_notebook(page, "lab", jupyter_server("lab"), browser_root, notebook, h.KERNEL_TIMEOUT_MS)
    page.locator(".bw-token-strip button:has-text('Why this prediction?')").click()
    page.wait_for_function(f"() => document.querySelectorAll('{STRIP} .bw-token').length === 5",
                           timeout=h.ROUNDTRIP_TIMEOUT_MS)
    words = page.locator(f"{STRIP} .bw-token")
    assert words.nth(1).inner_text() == "charming"
    assert "charming: " in (words.nth(1).get_attribute("title") or "")
    assert "rgba(" in (words.nth(1).get_attribute("style") or "")
    assert page.locator(".bw-token-strip .bw-colour-bar").count() == 1
    before = page.evaluate(_STRIP_HTML_JS)
    page.locator(".bw-mask-grid .heatmaprow >> nth=3").locator(".heatmapcell >> nth=1").click()
    page.wait_for_function(f"(old) => ({_STRIP_HTML_JS})() !== old && ({_STRIP_HTML_JS})().includes('under the mask')",
                           arg=before, timeout=h.ROUNDTRIP_TIMEOUT_MS)
    save_screenshot(page, h.ARTIFACTS_DIR / "token-strip.png")
    assert browser_log.unexpected_page_errors() == []
