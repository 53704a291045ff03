"""The dashboard under load (issue 8): a burst of 50 clicks on the head-mask grid in JupyterLab.

Opens a copy of ``notebooks/01_quickstart.ipynb`` (the default MiniLM fine-tuned
on SST-2) with one extra cell, a "Save state" button that saves the session's
state and mask from inside the kernel.  Clicks 50 cells of the head-mask grid
(a fixed pseudo-random pick, some cells twice or more, so heads are toggled
back) with no wait between the clicks, as soon as the grid is drawn: the kernel
computes its baseline afresh (an empty shared results folder), so the burst
starts before the baseline lands. Waits until the readout settles on an exact
score.  Then the saved mask must be the one the clicks make, the last exact
score the kernel published must be that mask's, the live loop must have scored
fewer masks than there were clicks (stale requests are dropped, not scored), the
readout must count its masked heads, and its accuracy must be what
``bertology evaluate --mask`` says.  How fast it settles is a figure of
``bertology bench`` (``burst_settle_s``), not an assertion here.
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from . import harness as h
from .test_dashboard import (
    MASK_CELLS,
    MODEL_TIMEOUT_MS,
    QUICKSTART,
    READOUT,
    readout_numbers,
    run_notebook,
)

pytestmark = pytest.mark.browser

LAYERS, HEADS = 6, 12
CLICKS, SEED = 50, 8
SAVE_BUTTON = "button.burst-save"
SAVED_NOTE = ".burst-saved .widget-html-content"

# Appended to the quickstart: saves the session from inside the kernel. The handler
# runs after every click message queued before it (the kernel takes them in order).
SAVE_CELL = """\
import ipywidgets as widgets
import numpy as np

STATE_PATH, MASK_PATH, SCORED_PATH = {state!r}, {mask!r}, {scored!r}
exact_scores = []  # every mask whose exact score the session published, in order
session.observe(lambda change: exact_scores.append(change["new"]), "scored_mask")


def _save_state(_button):
    try:
        settled = session.wait(timeout=600)
        session.save_state(STATE_PATH)
        np.save(MASK_PATH, np.asarray(session.mask))
        np.save(SCORED_PATH, np.asarray([m for m in exact_scores if m is not None]))
        saved.value = f"saved (settled: {{settled}})"
    except Exception as exc:
        saved.value = f"save failed: {{type(exc).__name__}}: {{exc}}"


save_button = widgets.Button(description="Save state")
save_button.add_class("burst-save")
save_button.on_click(_save_state)
saved = widgets.HTML()
saved.add_class("burst-saved")
widgets.HBox([save_button, saved])
"""

# Prepended to the quickstart: an empty shared results folder, so the baseline is scored, not read.
COLD_CELL = """\
import os
os.environ["BERTOLOGY_RESULTS_DIR"] = {results!r}
"""

# Settled: the readout counts ``needle`` masked heads, says "exact", and its progress bar is hidden.
_SETTLED_JS = """(needle) => {
  const readout = document.querySelector('.bw-readout');
  const text = readout?.querySelector('.bw-score .widget-html-content')?.innerText || '';
  const bar = readout?.querySelector('.widget-hprogress');
  const barShown = !!bar && getComputedStyle(bar).visibility !== 'hidden';
  return text.includes(needle) && text.includes('exact') && !text.includes('scoring')
         && !text.includes('estimate') && !barShown;
}"""


def click_sequence() -> list[tuple[int, int]]:
    """50 (layer, head) picks, fixed by ``SEED``; some heads come up more than once."""
    rng = random.Random(SEED)
    return [divmod(cell, HEADS) for cell in rng.choices(range(LAYERS * HEADS), k=CLICKS)]


def expected_mask(clicks) -> np.ndarray:
    """The mask the clicks make from all heads kept: a head clicked an odd number of times is masked."""
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    for (layer, head), times in collections.Counter(clicks).items():
        mask[layer, head] = times % 2 == 0
    return mask


def burst_notebook(root: Path) -> tuple[Path, Path, Path, Path]:
    """The quickstart plus the "Save state" cell under ``root/burst``.

    Returns (notebook, state, mask, scored): ``scored`` will hold the masks whose exact score the
    session published, ``(n, layers, heads)``.
    """
    folder = root / "burst"
    folder.mkdir(exist_ok=True)
    state, mask, scored = folder / "state.json", folder / "mask.npy", folder / "scored.npy"
    nb = nbformat.read(str(QUICKSTART), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(COLD_CELL.format(results=str(folder / "results"))))
    nb.cells.append(nbformat.v4.new_code_cell(SAVE_CELL.format(state=str(state), mask=str(mask),
                                                               scored=str(scored))))
    notebook = folder / QUICKSTART.name
    nbformat.write(nb, str(notebook))
    return notebook, state, mask, scored


def cli_accuracy(mask_path: Path) -> float:
    """``bertology evaluate --task sst2 --mask MASK --json``'s accuracy (this venv's CLI).

    With the machine's own precision choice, as the Lab kernel makes it.
    """
    bertology = Path(sys.executable).parent / "bertology"
    glue_dir = os.environ.get("BERTOLOGY_GLUE_DIR")  # unset: the embedded SST-2, as the kernels use
    env = {k: v for k, v in os.environ.items() if k != "BERTOLOGY_AUTO_PRECISION"}
    out = subprocess.run(
        [str(bertology), "evaluate", "--task", "sst2", "--mask", str(mask_path), "--json",
         *(["--glue-dir", glue_dir] if glue_dir else [])],
        capture_output=True, text=True, timeout=MODEL_TIMEOUT_MS / 1000, check=True, env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["accuracy"]


def test_click_burst_in_lab(default_model, lab_server, browser_root, page, browser_log):
    clicks = click_sequence()
    want = expected_mask(clicks)
    n_masked = int((want == 0).sum())
    assert len(set(clicks)) < CLICKS and (want == 1).sum() > LAYERS * HEADS - len(set(clicks)), \
        "the pick must toggle some heads back"
    notebook, state_path, mask_path, scored_path = burst_notebook(browser_root)
    run_notebook(page, "lab", lab_server, browser_root, notebook, MODEL_TIMEOUT_MS)

    rows = page.locator(".bw-mask-grid .heatmaprow")
    page.wait_for_function(f"() => document.querySelectorAll('{MASK_CELLS}').length === {LAYERS * HEADS}",
                           polling=50, timeout=MODEL_TIMEOUT_MS)  # drawn; the baseline may still be on its way
    assert rows.count() == LAYERS
    cells = [rows.nth(layer).locator(".heatmapcell").nth(head) for layer, head in clicks]
    before_baseline = "scoring the baseline" in page.locator(READOUT).inner_text()

    # As fast as the page takes them, no wait in between. Each click is dispatched on its cell, so neither a
    # hover tooltip nor a redraw under the pointer can drop or redirect one (test_layout clicks with the mouse).
    for cell in cells:
        cell.dispatch_event("click")
    page.wait_for_function(_SETTLED_JS, arg=f"{n_masked} of {LAYERS * HEADS} heads masked", polling=50,
                           timeout=MODEL_TIMEOUT_MS)
    readout = page.locator(READOUT).inner_text()
    print(f"\n[lab] {CLICKS} clicks on the head-mask grid; {n_masked} of {LAYERS * HEADS} heads masked; "
          f"the burst started {'before' if before_baseline else 'after'} the baseline landed")

    page.locator(SAVE_BUTTON).click()
    page.wait_for_function("(sel) => (document.querySelector(sel)?.innerText || '').includes('save')",
                           arg=SAVED_NOTE, polling=100, timeout=MODEL_TIMEOUT_MS)
    assert page.locator(SAVED_NOTE).inner_text() == "saved (settled: True)"
    saved = np.load(mask_path)
    assert np.array_equal(saved, want), f"the kernel's mask is not the clicks' one:\n{saved}\n!=\n{want}"
    assert np.array_equal(np.asarray(json.loads(state_path.read_text())["mask"]), saved)
    scored = np.load(scored_path)
    assert len(scored) and np.array_equal(scored[-1], want), "the last exact score is not the final mask's"
    assert len(scored) < CLICKS, f"{len(scored)} exact scores for {CLICKS} clicks: stale requests were scored"
    print(f"[lab] {len(scored)} exact scores published for {CLICKS} clicks")
    assert page.locator(READOUT).inner_text() == readout, "the readout moved after it settled"
    assert f"{int((saved == 0).sum())} of {saved.size} heads masked" in readout

    accuracy = readout_numbers(readout)[0]
    cli = cli_accuracy(mask_path)
    shown = "bf16" if "bf16" in readout else "fp32"
    print(f"[lab] readout accuracy {accuracy:.4f} ({shown}), bertology evaluate {cli:.4f}")
    assert accuracy == round(cli, 4), readout

    error = page.locator(".bw-readout .bw-error")
    assert error.inner_text() == "" and not error.is_visible()
    h.assert_no_errors(page)
    assert browser_log.unexpected_page_errors() == []
    assert browser_log.external_requests == [], "the page reached beyond 127.0.0.1"
