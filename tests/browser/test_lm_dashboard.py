"""The dashboard on the default language model (SmolLM2-135M, offline) in JupyterLab.

A notebook opens ``ModelSession.from_pretrained("default-lm", task="lm", max_examples=8)`` and its
``Dashboard``. The mask grid is 30 x 9 (query heads; its title says so). A click on one cell masks
that head: the readout's perplexity moves from the baseline, settles on an exact score, and that
score is what ``bertology evaluate --task lm --mask`` prints for the mask the kernel saved (the
"Save state" cell of test_click_burst), with the session's batch size (the two then run the same
forward on the same batches).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bertology_widgets.analyses.lm_evaluation import LIVE_LM_BATCH_SIZE

from . import harness as h
from .test_click_burst import SAVE_BUTTON, SAVE_CELL, SAVED_NOTE
from .test_dashboard import MASK_CELLS, MODEL_TIMEOUT_MS, QUICKSTART, READOUT, run_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAYERS, HEADS, TEXTS = 30, 9, 8
LAYER, HEAD = 10, 3
CELL = """\
import os
os.environ["BERTOLOGY_RESULTS_DIR"] = {results!r}
from bertology_widgets import Dashboard, ModelSession

session = ModelSession.from_pretrained("default-lm", task="lm", max_examples={texts})
Dashboard(session)
"""

# Settled: the readout counts ``needle`` masked heads, says "exact", and no longer scores.
_SETTLED_JS = """(needle) => {
  const text = document.querySelector('.bw-score .widget-html-content')?.innerText || '';
  return text.includes(needle) && text.includes('exact') && !text.includes('scoring')
         && !text.includes('estimate');
}"""


@pytest.fixture(scope="module")
def default_lm():
    """The default language model's folder, converted first if the cache lacks it."""
    from bertology_widgets.models.default_model import ensure_default_lm

    return ensure_default_lm(progress=False)


def perplexity_row(text: str) -> tuple[float, float]:
    """``(masked, baseline)`` of the readout's perplexity row."""
    match = re.search(r"perplexity\s+([\d.]+)(?:\s*\[[^\]]*\])?\s+([\d.]+)", text)
    assert match, f"no perplexity row in the readout: {text!r}"
    return float(match.group(1)), float(match.group(2))


def cli_perplexity(mask_path: Path, batch_size: int) -> float:
    bertology = Path(sys.executable).parent / "bertology"
    out = subprocess.run(
        [str(bertology), "evaluate", "--model", "default-lm", "--task", "lm", "--max-examples", str(TEXTS),
         "--batch-size", str(batch_size), "--mask", str(mask_path), "--json"],
        capture_output=True, text=True, timeout=MODEL_TIMEOUT_MS / 1000, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["perplexity"]


def test_a_click_on_the_mask_grid_moves_the_perplexity_to_the_clis(default_lm, lab_server, browser_root, page,
                                                                     browser_log):
    folder = browser_root / "lm"
    folder.mkdir(exist_ok=True)
    state_path, mask_path, scored_path = folder / "state.json", folder / "mask.npy", folder / "scored.npy"
    nb = nbformat.v4.new_notebook(metadata=nbformat.read(str(QUICKSTART), as_version=4).metadata)  # its kernel
    nb.cells = [nbformat.v4.new_code_cell(CELL.format(results=str(folder / "results"), texts=TEXTS)),
                nbformat.v4.new_code_cell(SAVE_CELL.format(state=str(state_path), mask=str(mask_path),
                                                           scored=str(scored_path)))]
    notebook = folder / "lm_dashboard.ipynb"
    nbformat.write(nb, str(notebook))
    run_notebook(page, "lab", lab_server, browser_root, notebook, MODEL_TIMEOUT_MS)

    page.wait_for_function(f"() => document.querySelectorAll('{MASK_CELLS}').length === {LAYERS * HEADS}",
                           polling=50, timeout=MODEL_TIMEOUT_MS)
    assert "query heads" in page.locator(".bw-mask-grid").inner_text()
    page.wait_for_function(_SETTLED_JS, arg=f"0 of {LAYERS * HEADS} heads masked", polling=50,
                           timeout=MODEL_TIMEOUT_MS)
    before = page.locator(READOUT).inner_text()
    masked, baseline = perplexity_row(before)
    assert masked == baseline and "token_accuracy" in before

    page.locator(".bw-mask-grid .heatmaprow").nth(LAYER).locator(".heatmapcell").nth(HEAD).dispatch_event("click")
    page.wait_for_function(_SETTLED_JS, arg=f"1 of {LAYERS * HEADS} heads masked", polling=50,
                           timeout=MODEL_TIMEOUT_MS)
    after = page.locator(READOUT).inner_text()
    masked, baseline_after = perplexity_row(after)
    assert baseline_after == baseline and masked != baseline, after

    page.locator(SAVE_BUTTON).click()
    page.wait_for_function("(sel) => (document.querySelector(sel)?.innerText || '').includes('save')",
                           arg=SAVED_NOTE, polling=100, timeout=MODEL_TIMEOUT_MS)
    assert page.locator(SAVED_NOTE).inner_text() == "saved (settled: True)"
    mask = np.load(mask_path)
    assert mask[LAYER, HEAD] == 0 and (mask == 0).sum() == 1
    cli = cli_perplexity(mask_path, LIVE_LM_BATCH_SIZE)  # the session's batch size: the same batches
    print(f"\n[lab] default-lm on {TEXTS} texts: perplexity {baseline:.4f} -> {masked:.4f} with head "
          f"({LAYER}, {HEAD}) masked; bertology evaluate --mask: {cli:.4f}")
    assert masked == round(cli, 4), after

    h.assert_no_errors(page)
    assert browser_log.unexpected_page_errors() == []
    assert browser_log.external_requests == [], "the page reached beyond 127.0.0.1"
