"""The HTML snapshot from ``file://`` with every other request aborted: it draws, and its controls work.

No server and no kernel: the page is a file, and the browser may read only that file.
"""

from __future__ import annotations

import pytest

from bertology_widgets.session import ModelSession
from bertology_widgets.snapshot import save_snapshot
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer
from bertology_widgets.widgets.head_mask_grid import MASKED_RED

from . import harness as h

pytestmark = pytest.mark.browser

XSS = "</script><script>document.title='x'</script><img src=x onerror=alert(1)>"
MAP_CELLS = ".bw-snapshot-maps .bqplot .heatmapcell"
MASK_CELLS = ".bw-snapshot-masks .bqplot .heatmapcell"
SCORE = ".bw-snapshot-readout .bw-snapshot-score"


def _fills(selector: str) -> str:
    return (f"() => Array.from(document.querySelectorAll('{selector}'))"
            ".filter(e => e.getBoundingClientRect().width > 0).map(e => getComputedStyle(e).fill).join(';')")


def _visible_text(selector: str) -> str:
    return (f"() => Array.from(document.querySelectorAll('{selector}'))"
            ".filter(e => e.getBoundingClientRect().width > 0).map(e => e.textContent).join(';')")


@pytest.fixture(scope="module")
def default_page(tmp_path_factory, default_model):
    """A snapshot of the default model on dev example 1, with a masking curve (and importance) over 64 examples."""
    session = ModelSession.from_pretrained(max_examples=64, live=False, shared_results=False)
    try:
        session.example_index = 1
        session.compute_masking_curve(background=False, random_seeds=())
        session.wait(analysis=True)
        assert len(session.curve["steps"]) >= 3
        return save_snapshot(session, tmp_path_factory.mktemp("snapshot") / "page.html")
    finally:
        session.close()


def _open(page, path, browser_log) -> h.FileOnly:
    net = h.FileOnly(page)
    page.goto(path.as_uri())
    page.wait_for_function(f"() => document.querySelectorAll('{MASK_CELLS}').length > 0 && "
                           f"document.querySelectorAll('{MAP_CELLS}').length > 0", timeout=h.UI_TIMEOUT_MS)
    return net


def test_snapshot_draws_offline_and_its_controls_work(page, browser_log, default_page):
    net = _open(page, default_page, browser_log)
    page.wait_for_selector(".bw-snapshot-header")
    assert page.locator(".bw-snapshot-maps .bqplot").count() >= 1  # the selected head's map (a Stack draws one)
    layers, heads = 6, 12
    assert page.locator(MASK_CELLS).count() == layers * heads
    assert "precomputed" in page.inner_text(".bw-snapshot-header")

    # Another layer: the map's cells change (the Stack shows that layer's head, through jslink, no kernel).
    before = page.evaluate(_fills(MAP_CELLS))
    page.select_option(".bw-snapshot-layer select", label="4")
    page.wait_for_function(f"(old) => ({_fills(MAP_CELLS)})() !== old && ({_fills(MAP_CELLS)})() !== ''",
                           arg=before, timeout=h.UI_TIMEOUT_MS)
    assert page.evaluate(_visible_text(".bw-snapshot-maps .bqplot .mainheading")).startswith("Layer 4")

    # The mask slider: the readout's score and the grid's colours follow each step.
    score, grid = page.evaluate(_visible_text(SCORE)), page.evaluate(_fills(MASK_CELLS))
    handle = page.locator(".bw-snapshot-slider .noUi-handle")
    handle.focus()
    page.keyboard.press("End")
    page.wait_for_function(f"(old) => ({_visible_text(SCORE)})() !== old", arg=score, timeout=h.UI_TIMEOUT_MS)
    page.wait_for_function(f"(old) => ({_fills(MASK_CELLS)})() !== old && ({_fills(MASK_CELLS)})() !== ''",
                           arg=grid, timeout=h.UI_TIMEOUT_MS)  # the step's grid drawn, not only the last one hidden
    fills = page.evaluate(_fills(MASK_CELLS))
    red = fills.count("rgb(214, 39, 40)") + fills.lower().count(MASKED_RED.lower())  # d3 writes either form
    assert 0 < red < layers * heads, sorted(set(fills.split(";")))  # some heads masked, in red
    # One step back: the most heads masked with the score still above the threshold.
    score = page.evaluate(_visible_text(SCORE))
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"(old) => ({_visible_text(SCORE)})() !== old", arg=score, timeout=h.UI_TIMEOUT_MS)
    page.screenshot(path=str(h.docs_screenshot("snapshot_slider.png")), full_page=True)

    assert net.aborted == [] and net.failed == [], (net.aborted, net.failed)
    assert browser_log.console_errors() == [] and browser_log.page_errors == [], browser_log.text()


def test_text_in_a_snapshot_is_shown_never_run(page, browser_log, tmp_path):
    model = tiny_model("bert", num_layers=2, num_heads=2)
    session = ModelSession(model, tiny_tokenizer(), tiny_examples(8), task="sst2", live=False)
    try:
        session.text = XSS
        path = save_snapshot(session, tmp_path / "xss.html")
    finally:
        session.close()
    net = _open(page, path, browser_log)
    title = page.title()
    page.wait_for_selector(".bw-snapshot-text")
    assert XSS in page.inner_text(".bw-snapshot-text")
    assert page.title() == title and title != "x" and net.dialogs == []
    assert page.locator(".bw-snapshot-header img").count() == 0
    assert net.requested == [path.as_uri()] and net.aborted == [] and net.failed == []
    assert browser_log.console_errors() == [] and browser_log.page_errors == [], browser_log.text()
