"""`make docs`: a notebook's page, built by ``scripts/build_docs.py``, draws its widgets from ``file://`` alone.

The page is executed with its widget state stored and loads the vendored
scripts copied beside it; the browser may read nothing but files.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from . import harness as h

pytestmark = pytest.mark.browser

NOTEBOOK = "01_quickstart"
HEATMAP_CELLS = ".bqplot .heatmapcell"


@pytest.fixture(scope="module")
def quickstart_page(tmp_path_factory, default_model):
    """``01_quickstart.html`` and its folder, built as `make docs` builds it."""
    out = tmp_path_factory.mktemp("docs")
    run = subprocess.run([sys.executable, str(h.REPO_ROOT / "scripts" / "build_docs.py"), NOTEBOOK, "--out", str(out)],
                         cwd=h.REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return out / f"{NOTEBOOK}.html"


def test_a_built_page_has_its_scripts_beside_it(quickstart_page):
    folder = quickstart_page.parent
    for name in ("require.js", "embed-amd.js", "bqplot.js", "bqscales.js", "index.html"):
        assert (folder / name).stat().st_size > 0, name
    assert list(folder.glob("*LICENSE*.txt")), "the vendored scripts' licences travel with them"
    page = quickstart_page.read_text(encoding="utf-8")
    assert 'src="require.js"' in page and "embed-amd.js" in page
    assert "application/vnd.jupyter.widget-state+json" in page  # the stored widget state
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page


def test_a_built_page_draws_its_widgets_offline(page, browser_log, quickstart_page):
    net = h.FileOnly(page)
    page.goto(quickstart_page.as_uri())
    page.wait_for_function(f"() => document.querySelectorAll('{HEATMAP_CELLS}').length > 0",
                           timeout=h.UI_TIMEOUT_MS)
    assert page.locator(".widget-dropdown select").count() >= 2  # layer and head
    assert page.locator(".bqplot").count() >= 2  # the attention map and the mask grid
    assert net.aborted == [] and net.failed == [], (net.aborted, net.failed)
    assert all(url.startswith("file://") for url in net.requested), net.requested
    assert browser_log.page_errors == [], browser_log.text()
