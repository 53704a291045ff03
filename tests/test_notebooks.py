"""Every notebook runs top to bottom in a fresh kernel, offline, on the default model."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
GLUE = REPO.parent / "shared" / "glue"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.slow, pytest.mark.minilm]


def test_the_six_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_cleanly(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if not os.environ.get("BERTOLOGY_GLUE_DIR"):
        if not GLUE.is_dir():
            pytest.skip(f"no GLUE data: set BERTOLOGY_GLUE_DIR (looked for {GLUE})")
        monkeypatch.setenv("BERTOLOGY_GLUE_DIR", str(GLUE))
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert notebook.cells[0].cell_type == "markdown", "each notebook opens with an introduction"
    assert all(c.source.strip() for c in notebook.cells), "no empty cells"
    assert all(not c.get("outputs") for c in code_cells), "notebooks are committed without outputs"

    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"\n{path.name}: {time.perf_counter() - start:.0f} s")

    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    widgets = [o for c in code_cells for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    assert widgets, "each notebook shows at least one widget"
