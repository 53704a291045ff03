"""Execute the notebooks with their widget state stored and write HTML pages that work offline (`make docs`).

    python scripts/build_docs.py                 # every notebook -> docs/_build/html/
    python scripts/build_docs.py 01_quickstart   # some of them
    python scripts/build_docs.py --subset        # the test suite's smaller runs (faster)

The pages load the same JavaScript as a dashboard snapshot (require.js, the
ipywidgets HTML manager, bqplot and bqscales from
``bertology_widgets/static/snapshot/``), copied beside them: nbconvert's widget
renderer and require.js point at those copies, and require.js finds bqplot and
bqscales in the pages' folder, so a page asks no CDN for anything. MathJax is
left out (it would come from a CDN). The folder can be published as it is.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
OUT = REPO / "docs" / "_build" / "html"
STATIC = REPO / "bertology_widgets" / "static" / "snapshot"
SCRIPTS = ("require.js", "embed-amd.js", "bqplot.js", "bqscales.js")
NO_MATHJAX = "bertology-no-mathjax"
# The sizes tests/integration/test_notebooks.py runs the long notebooks at.
SUBSETS = {"BERTOLOGY_PIPELINE_SENTENCES": "30", "BERTOLOGY_EXPLAIN_EXAMPLES": "12",
           "BERTOLOGY_IMPORTANCE_EXAMPLES": "128", "BERTOLOGY_LM_TEXTS": "8"}


def build(notebook: Path, out: Path, cell_timeout: int = 3600) -> Path:
    """Execute ``notebook`` in a fresh kernel (in a temporary folder), store its widget state, write its page."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as work:
        NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": work}}).execute()
    exporter = HTMLExporter(template_name="lab", widget_renderer_url="embed-amd.js", require_js_url="require.js",
                            mathjax_url=NO_MATHJAX)
    body, _ = exporter.from_notebook_node(nb)
    body = body.replace(f'<script src="{NO_MATHJAX}"> </script>', "")
    page = out / f"{notebook.stem}.html"
    page.write_text(body, encoding="utf-8")
    return page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all), e.g. 01_quickstart")
    parser.add_argument("--subset", action="store_true", help="the test suite's smaller runs of the long notebooks")
    parser.add_argument("--cell-timeout", type=int, default=3600,
                        help="seconds a cell may run (default 3600: 04_gpt2 trains a small GPT-2 on first use)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(REPO)})")
    args = parser.parse_args()
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        notebooks = [p for p in notebooks if p.stem in args.names or p.name in args.names]
        if not notebooks:
            parser.error(f"no notebook called {', '.join(args.names)} in {NOTEBOOKS}")
    if args.subset:
        os.environ.update(SUBSETS)  # the kernels inherit them
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SCRIPTS:
        shutil.copyfile(STATIC / name, args.out / name)
    for licence in STATIC.glob("*.txt"):
        shutil.copyfile(licence, args.out / licence.name)
    start, pages = time.perf_counter(), []
    for notebook in notebooks:
        began = time.perf_counter()
        pages.append(build(notebook, args.out, args.cell_timeout))
        print(f"{pages[-1].relative_to(REPO) if pages[-1].is_relative_to(REPO) else pages[-1]}: "
              f"{time.perf_counter() - began:.0f} s", flush=True)
    links = "".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>'
                    for p in sorted(args.out.glob("0*.html")))
    (args.out / "index.html").write_text(
        f"<!DOCTYPE html><meta charset=\"utf-8\"><title>bertology-widgets notebooks</title>"
        f"<h1>bertology-widgets notebooks</h1><ul>{links}</ul>\n", encoding="utf-8")
    print(f"{len(pages)} pages in {time.perf_counter() - start:.0f} s; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
