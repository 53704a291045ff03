"""Every notebook runs top to bottom in a fresh kernel, offline, on the default model.

The notebooks use SST-2 only: from ``BERTOLOGY_GLUE_DIR`` when it is set,
else from the copy embedded in the package, so they run on a bare clone too;
09 opens the offline default language model (SmolLM2) on the embedded UD English-EWT sentences.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.slow, pytest.mark.minilm]

# Run after a notebook's last cell, in its kernel: what "Run All" must leave behind.
FINAL_CHECKS = {
    # Step 1's dashboard stays on Step 1's state: later steps work on sessions of their own.
    "05_teaching": "assert (session.mask == 1).all() and (session.layer, session.head) == (0, 0), "
                   "(session.mask, session.layer, session.head)\n"
                   "assert session.example_index == 0 and session.importance is None and session.curve == {}",
}


# The notebooks that train probes, mask heads step by step or explain many sentences run on a subset in the
# suite (the full runs are what a user gets); each reads its size from the environment, which the kernel inherits.
SUBSETS = {"BERTOLOGY_PIPELINE_SENTENCES": "30", "BERTOLOGY_EXPLAIN_EXAMPLES": "12",
           "BERTOLOGY_IMPORTANCE_EXAMPLES": "128", "BERTOLOGY_LM_TEXTS": "8"}


def test_the_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_cleanly(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    for name, value in SUBSETS.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert notebook.cells[0].cell_type == "markdown", "each notebook opens with an introduction"
    assert all(c.source.strip() for c in notebook.cells), "no empty cells"
    assert all(not c.get("outputs") for c in code_cells), "notebooks are committed without outputs"

    check = FINAL_CHECKS.get(path.stem)
    if check:
        notebook.cells.append(nbformat.v4.new_code_cell(check))
        code_cells.append(notebook.cells[-1])
    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"\n{path.name}: {time.perf_counter() - start:.0f} s")

    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    widgets = [o for c in code_cells for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    assert widgets, "each notebook shows at least one widget"
