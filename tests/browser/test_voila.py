"""The quickstart dashboard as a Voilà app: code hidden, widgets live.

Serves ``notebooks/01_quickstart.ipynb`` (the default MiniLM fine-tuned on
SST-2) with Voilà, waits for the dashboard and its exact baseline, masks a
head and waits for the exact re-score.  Prints how long the app took to render
and saves the screenshot used by the docs (``docs/images/voila.png``).
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from . import harness as h
from .test_dashboard import (
    ATTENTION_CELLS,
    MODEL_TIMEOUT_MS,
    QUICKSTART,
    exercise_dashboard,
    wait_for_readout,
)

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = h.docs_screenshot("voila.png")  # docs/images/ with BERTOLOGY_UPDATE_DOCS=1
MAX_SCREENSHOT_BYTES = 300 * 1024
HEADS = 6 * 12

# What must not show in a Voilà app: code (code cells' inputs, editors) and tracebacks.
# Markdown cells render in an input area too; they are meant to show.
_VISIBLE_CODE_JS = r"""() => {
  const shown = el => el.offsetParent !== null && getComputedStyle(el).visibility !== 'hidden';
  const inputs = [...document.querySelectorAll(
      '.jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .cm-editor, .CodeMirror, .jp-InputPrompt')];
  return inputs.filter(shown).map(el => el.innerText.slice(0, 200));
}"""
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*Cell In\[\d+\], line \d+|^\w*(Error|Exception): ",
                       re.MULTILINE)


def save_page_screenshot(page, path) -> None:
    """A PNG of the whole app: a viewport tall enough that Voilà's cell panel does not scroll."""
    height = page.evaluate("""() => {
      const cells = document.querySelector('#rendered_cells');  // the scrolling panel (lab template)
      const bottom = cells ? cells.getBoundingClientRect().top + cells.scrollHeight : 0;
      return Math.max(document.documentElement.scrollHeight, bottom);
    }""")
    page.set_viewport_size({"width": h.VIEWPORT["width"], "height": int(height) + 20})
    page.mouse.move(0, 0)  # no hover tooltip in the picture
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, animations="disabled")


def test_quickstart_in_voila(default_model, voila_server, browser_root, page, browser_log):
    notebook = browser_root / "voila" / QUICKSTART.name
    notebook.parent.mkdir(exist_ok=True)
    shutil.copyfile(QUICKSTART, notebook)
    server = voila_server(notebook)

    start = time.perf_counter()
    h.open_voila(page, server.base_url, timeout_ms=MODEL_TIMEOUT_MS)
    page.wait_for_selector(ATTENTION_CELLS, timeout=MODEL_TIMEOUT_MS)
    wait_for_readout(page, f"0 of {HEADS} heads masked", "exact", timeout_ms=MODEL_TIMEOUT_MS)
    rendered = time.perf_counter() - start

    timings = exercise_dashboard(page, heads_total=HEADS, head=3, timeout_ms=MODEL_TIMEOUT_MS)
    print(f"\n[voila] quickstart rendered (exact baseline shown) {rendered:.1f} s after opening; "
          f"click 'Mask head' -> readout updated {timings['readout'] * 1000:.0f} ms, "
          f"-> exact score {timings['exact']:.2f} s (accuracy delta {timings['delta']:+.4f})")

    assert page.evaluate(_VISIBLE_CODE_JS) == [], "Voilà shows code"
    text = page.locator("body").inner_text()
    assert "ModelSession.from_pretrained" not in text, "the code cell's source is on the page"
    assert not TRACEBACK.search(text), f"a traceback is on the page:\n{text}"
    assert page.locator(".jupyter-widgets:has-text('Error displaying widget')").count() == 0
    assert page.locator(".bw-readout .bw-error").inner_text() == ""
    assert browser_log.unexpected_page_errors() == []
    # Voilà's lab template links Font Awesome from a CDN; it is blocked and harmless.
    assert all("fontawesome" in url for url in browser_log.external_requests), browser_log.external_requests

    save_page_screenshot(page, DOCS_SCREENSHOT)
    size = DOCS_SCREENSHOT.stat().st_size
    print(f"[voila] screenshot {DOCS_SCREENSHOT} ({size / 1024:.0f} KB)")
    assert size < MAX_SCREENSHOT_BYTES, f"{DOCS_SCREENSHOT} is {size / 1024:.0f} KB"
