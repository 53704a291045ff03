"""The dashboard in a real browser: the quickstart notebook in JupyterLab and Notebook 7.

Opens ``notebooks/01_quickstart.ipynb`` (the default MiniLM fine-tuned on
SST-2), runs it, picks another head, masks it and checks that the readout and
the head-mask grid follow. Prints the click -> readout latency, and saves the
screenshot used by the docs (``docs/images/dashboard.png``) from the Lab run.
A tiny random model exercises the same path in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from . import harness as h

pytestmark = pytest.mark.browser

# Read by the kernels the servers start (they inherit this process's environment;
# set at import, so before any server of the session starts). Without a GLUE
# folder the kernels read the SST-2 copy embedded in the package.
if (h.REPO_ROOT.parent / "shared" / "glue" / "SST-2").is_dir():
    os.environ.setdefault("BERTOLOGY_GLUE_DIR", str(h.REPO_ROOT.parent / "shared" / "glue"))

QUICKSTART = h.REPO_ROOT / "notebooks" / "01_quickstart.ipynb"
DOCS_SCREENSHOT = h.docs_screenshot("dashboard.png")  # docs/images/ with BERTOLOGY_UPDATE_DOCS=1
# Loading MiniLM and scoring the 872 SST-2 dev sentences takes a while on two cores.
MODEL_TIMEOUT_MS = 4 * h.KERNEL_TIMEOUT_MS

ATTENTION_CELLS = ".bw-attention-grid .bqplot .heatmapcell"
MASK_CELLS = ".bw-mask-grid .bqplot .heatmapcell"
READOUT = ".bw-score .widget-html-content"
HEAD_DROPDOWN = ".bw-controls select >> nth=1"
MASK_BUTTON = ".bw-controls button:has-text('Mask head')"

TINY_CELLS = [
    ("markdown", "# The dashboard on a tiny random model"),
    """\
from bertology_widgets import ModelSession, Dashboard
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer

model = tiny_model("bert", num_layers=4, num_heads=4, initializer_range=1.0)
session = ModelSession(model, tiny_tokenizer(), tiny_examples(64), task="sst2")
Dashboard(session)""",
]

# The fill of cell (layer, head) of the head-mask grid: rows are layers, cells heads.
_CELL_FILL_JS = """([layer, head]) => {
  const row = document.querySelectorAll('.bw-mask-grid .heatmaprow')[layer];
  const cell = row && row.querySelectorAll('.heatmapcell')[head];
  return cell ? getComputedStyle(cell).fill : null;
}"""


def readout_numbers(text: str) -> tuple[float, float, float]:
    """``(masked, baseline, delta)`` of the accuracy row of the readout."""
    match = re.search(r"accuracy\s+([\d.]+)(?:\s*\[[^\]]*\])?\s+([\d.]+)\s+([+-][\d.]+)", text)
    assert match, f"no accuracy row in the readout: {text!r}"
    return tuple(float(g) for g in match.groups())


def is_red(css_colour: str) -> bool:
    """True for HeadMaskGrid's masked colour (``#d62728`` or near it), given as ``rgb(r, g, b)``."""
    r, g, b = (int(v) for v in re.findall(r"\d+", css_colour)[:3])
    return r > 150 and g < 100 and b < 100


def wait_for_readout(page, *needles: str, timeout_ms: int) -> str:
    """Wait until the readout holds every one of ``needles``; return its text."""
    page.wait_for_function(
        "([sel, needles]) => { const el = document.querySelector(sel);"
        " return !!el && needles.every(n => el.innerText.includes(n)); }",
        arg=[READOUT, list(needles)], polling=50, timeout=timeout_ms,
    )
    return page.locator(READOUT).inner_text()


def exercise_dashboard(page, heads_total: int, head: int, timeout_ms: int) -> dict:
    """Check the dashboard shown on ``page``; mask head ``head`` of layer 0. Returns timings (s)."""
    page.wait_for_selector(ATTENTION_CELLS, timeout=timeout_ms)
    assert page.locator(MASK_CELLS).count() == heads_total
    n_cells = page.locator(ATTENTION_CELLS).count()
    assert n_cells >= 4 and int(n_cells ** 0.5) ** 2 == n_cells, "the attention map is tokens x tokens"

    before = wait_for_readout(page, f"0 of {heads_total} heads masked", "exact", timeout_ms=timeout_ms)
    masked, baseline, delta = readout_numbers(before)
    assert masked == baseline and delta == 0.0, before

    page.locator(HEAD_DROPDOWN).select_option(label=f"Head {head}")
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('.bw-attention-grid .mainheading')].some(e => e.textContent.includes(t))",
        arg=f"head {head}", timeout=h.ROUNDTRIP_TIMEOUT_MS)
    kept_fill = page.evaluate(_CELL_FILL_JS, [0, head])
    assert not is_red(kept_fill), kept_fill

    start = time.perf_counter()
    page.locator(MASK_BUTTON).click()
    wait_for_readout(page, f"1 of {heads_total} heads masked", timeout_ms=h.ROUNDTRIP_TIMEOUT_MS)
    first = time.perf_counter() - start
    after = wait_for_readout(page, f"1 of {heads_total} heads masked", "exact", timeout_ms=timeout_ms)
    exact = time.perf_counter() - start
    assert readout_numbers(after)[1] == baseline, "the baseline must not move"
    assert after != before

    page.wait_for_function(f"([cell, kept]) => ({_CELL_FILL_JS})(cell) !== kept", arg=[[0, head], kept_fill],
                           timeout=h.ROUNDTRIP_TIMEOUT_MS)
    masked_fill = page.evaluate(_CELL_FILL_JS, [0, head])
    assert is_red(masked_fill), f"a masked head is red, not {masked_fill}"
    assert page.evaluate(_CELL_FILL_JS, [0, 0]) == kept_fill, "only the masked head changes colour"
    assert "mod-active" in (page.locator(MASK_BUTTON).get_attribute("class") or "")
    return {"readout": first, "exact": exact, "delta": readout_numbers(after)[2]}


def save_screenshot(page, path: Path) -> None:
    """A PNG of the whole dashboard: a viewport tall enough that none of it scrolls out of view."""
    dashboard = page.locator(".bw-dashboard")
    to_top = "el => el.scrollIntoView({block: 'start'})"
    dashboard.evaluate(to_top)
    box = dashboard.bounding_box()
    page.set_viewport_size({"width": h.VIEWPORT["width"], "height": int(box["y"] + box["height"]) + 100})
    dashboard.evaluate(to_top)
    page.mouse.move(0, 0)  # no hover toolbar or tooltip in the picture
    path.parent.mkdir(parents=True, exist_ok=True)
    dashboard.screenshot(path=str(path), animations="disabled")


def run_notebook(page, flavour: str, server, browser_root: Path, notebook: Path, timeout_ms: int) -> float:
    """Open ``notebook``, Run All and check for errors; returns ``time.perf_counter()`` once its page was up."""
    path = notebook.relative_to(browser_root).as_posix()
    h.open_notebook(page, flavour, server.base_url, path)
    opened = time.perf_counter()  # the notebook's page is up and its kernel is starting
    h.run_all_cells(page, flavour, timeout_ms=timeout_ms)
    h.assert_no_errors(page)
    return opened


@pytest.mark.parametrize("flavour", ["lab", "nb7"])
def test_quickstart_dashboard(flavour, default_model, jupyter_server, browser_root, page, browser_log):
    notebook = browser_root / "quickstart" / QUICKSTART.name
    notebook.parent.mkdir(exist_ok=True)
    shutil.copyfile(QUICKSTART, notebook)
    server = jupyter_server(flavour)
    start = time.perf_counter()
    opened = run_notebook(page, flavour, server, browser_root, notebook, MODEL_TIMEOUT_MS)
    page.wait_for_selector(ATTENTION_CELLS, timeout=MODEL_TIMEOUT_MS)
    drawn = time.perf_counter() - opened

    timings = exercise_dashboard(page, heads_total=6 * 12, head=3, timeout_ms=MODEL_TIMEOUT_MS)
    print(f"\n[{flavour}] quickstart: notebook page up {opened - start:.1f} s after the request; dashboard drawn "
          f"{drawn:.1f} s later (kernel start, imports, Run All and rendering)")
    print(f"[{flavour}] quickstart: click 'Mask head' -> readout updated {timings['readout'] * 1000:.0f} ms, "
          f"-> exact score {timings['exact']:.2f} s (accuracy delta {timings['delta']:+.4f})")
    if flavour == "lab":
        save_screenshot(page, DOCS_SCREENSHOT)
        print(f"[{flavour}] screenshot {DOCS_SCREENSHOT} ({DOCS_SCREENSHOT.stat().st_size / 1024:.0f} KB)")
    assert browser_log.unexpected_page_errors() == []
    assert browser_log.external_requests == [], "the page reached beyond 127.0.0.1"


def test_tiny_dashboard_in_lab(jupyter_server, browser_root, page, browser_log):
    notebook = h.write_notebook(browser_root / "tiny" / "dashboard.ipynb", TINY_CELLS)
    run_notebook(page, "lab", jupyter_server("lab"), browser_root, notebook, h.KERNEL_TIMEOUT_MS)
    timings = exercise_dashboard(page, heads_total=16, head=2, timeout_ms=h.KERNEL_TIMEOUT_MS)
    print(f"\n[lab] tiny model: click 'Mask head' -> readout updated {timings['readout'] * 1000:.0f} ms, "
          f"-> exact score {timings['exact'] * 1000:.0f} ms")

    # A click on a head-mask cell toggles that head (layer 1, head 1 here).
    cell = page.locator(".bw-mask-grid .heatmaprow >> nth=1").locator(".heatmapcell >> nth=1")
    cell.click()
    wait_for_readout(page, "2 of 16 heads masked", timeout_ms=h.ROUNDTRIP_TIMEOUT_MS)
    # All heads: four small maps; clicking one selects its head.
    page.locator(".bw-attention-grid button:has-text('All heads')").click()
    page.wait_for_function("() => document.querySelectorAll('.bw-all-heads .bqplot .heatmapcell').length >= 4",
                           timeout=h.ROUNDTRIP_TIMEOUT_MS)
    page.locator(".bw-all-heads .bqplot >> nth=3").locator(".heatmapcell >> nth=0").click()
    page.wait_for_function("() => [...document.querySelectorAll('.bw-attention-grid .mainheading')]"
                           ".some(e => e.textContent.includes('head 3'))", timeout=h.ROUNDTRIP_TIMEOUT_MS)
    save_screenshot(page, h.ARTIFACTS_DIR / "dashboard-tiny.png")
    assert browser_log.unexpected_page_errors() == []
