"""A class on one Voilà server: N students open the quickstart at once and each masks a head.

Serves ``notebooks/01_quickstart.ipynb`` with Voilà, opens N pages at once
(``BERTOLOGY_VOILA_PAGES``, default 4) in headless Chromium, waits for every
dashboard's exact baseline, clicks a different layer-0 head on each page and
waits for each readout's exact score. Every score must be what
``ModelSession.evaluate`` gives for that mask, no page may show an error and
the server must still be up. Prints the figures ``benchmarks/classroom.py
--voila`` reports: time to *drawn* (the shown example's attention on the page)
and to *scored* (the exact baseline in the readout, ``first_render_s``), click ->
exact score, and the peak memory of the server and its kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from . import harness as h
from .test_dashboard import ATTENTION_CELLS, MASK_CELLS, MODEL_TIMEOUT_MS, QUICKSTART, READOUT, readout_numbers
from .test_voila import TRACEBACK

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = int(os.environ.get("BERTOLOGY_VOILA_PAGES", "4"))
# BERTOLOGY_VOILA_PREHEAT=1: serve with `--preheat_kernel=True --pool_size=PAGES` and open the pages once the
# pool has run the notebook (a teacher starts the server before the class comes in).
PREHEAT = os.environ.get("BERTOLOGY_VOILA_PREHEAT", "") not in ("", "0")
# BERTOLOGY_VOILA_BASELINE_CACHED=1: store the baseline in the shared results cache first (what `bertology
# precompute` does before a class), so that no kernel computes it.
BASELINE_CACHED = os.environ.get("BERTOLOGY_VOILA_BASELINE_CACHED", "") not in ("", "0")
LAYERS, HEADS = 6, 12

# Stamps Date.now() on the page when its readout first holds every needle (no polling from Python).
_WATCH_JS = """([sel, needles, key]) => { const t = setInterval(() => {
    const el = document.querySelector(sel);
    if (el && needles.every(n => el.innerText.includes(n))) { window[key] = Date.now(); clearInterval(t); }
  }, 50); }"""
# Stamps Date.now() when the page first shows an element matching a selector.
_DRAWN_JS = """([sel, key]) => { const t = setInterval(() => {
    if (document.querySelector(sel)) { window[key] = Date.now(); clearInterval(t); }
  }, 50); }"""

SHARE_BASELINE_SCRIPT = """
from bertology_widgets import ModelSession
s = ModelSession.from_pretrained(task="sst2", shared_results=False)
assert s.wait(600)
s.close()
"""

EXPECTED_SCRIPT = """
import json, sys
import numpy as np
from bertology_widgets import ModelSession
s = ModelSession.from_pretrained(task="sst2", live=False, shared_results=False)
out = {}
for head in json.loads(sys.argv[1]):
    mask = np.ones((s.num_layers, s.num_heads), dtype=np.float32)
    mask[0, head] = 0
    out[head] = s.evaluate(mask)["accuracy"]
print(json.dumps(out))
"""


class MemoryPeak(threading.Thread):
    """Samples the summed RSS and USS (MiB) of a process and all its children until stopped."""

    def __init__(self, pid: int, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.stop = pid, every_s, threading.Event()
        self.rss = self.uss = 0.0

    def run(self):
        import psutil

        root = psutil.Process(self.pid)
        while not self.stop.wait(self.every_s):
            rss = uss = 0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                rss, uss = rss + info.rss, uss + info.uss
            self.rss, self.uss = max(self.rss, rss / 2**20), max(self.uss, uss / 2**20)


def expected_accuracies(heads) -> dict:
    out = subprocess.run([sys.executable, "-c", EXPECTED_SCRIPT, json.dumps(heads)], capture_output=True,
                         text=True, timeout=MODEL_TIMEOUT_MS / 1000 * (1 + len(heads) / 2), check=True).stdout
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def wait_until_idle(pid: int, kernels: int, timeout_s: float = 900.0) -> float:
    """Seconds until ``kernels`` kernels run under ``pid`` and the whole tree has been idle for 3 s.

    Kernels are counted as processes (Voilà answers ``/api/kernels`` with 403).
    """
    import psutil

    def cpu_percent(procs):
        total = 0.0
        for proc in procs:
            try:
                total += proc.cpu_percent(interval=None)  # since the previous call on that process
            except psutil.Error:
                pass
        return total

    def is_kernel(proc):
        try:
            return "ipykernel" in " ".join(proc.cmdline())
        except psutil.Error:
            return False

    start, root, quiet = time.time(), psutil.Process(pid), 0
    while time.time() - start < timeout_s:
        procs = [root, *root.children(recursive=True)]
        cpu_percent(procs)
        time.sleep(1.0)
        busy = cpu_percent(procs)
        running = sum(is_kernel(p) for p in procs)
        quiet = quiet + 1 if busy < 10 and running >= kernels else 0
        if quiet >= 3:
            return time.time() - start
    raise TimeoutError(f"the pre-heated kernel pool was not ready after {timeout_s:.0f} s")


def stamp(page, key):
    return page.evaluate(f"() => window['{key}'] || null")


def wait_for_stamps(pages, key: str, timeout_ms: int, consoles) -> None:
    """Wait until every page has set ``window[key]``; on a time-out, say what each page shows and logged."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.time() + timeout_ms / 1000
    for page in pages:
        try:
            page.wait_for_function(f"() => !!window['{key}']", polling=200,
                                   timeout=max(1.0, (deadline - time.time()) * 1000))
        except PlaywrightTimeout:
            shown = []
            for i, p in enumerate(pages):
                readout = p.locator(READOUT)
                text = readout.first.inner_text() if readout.count() else "(no readout)"
                shown.append(f"page {i}: {key}={stamp(p, key)} drawn={stamp(p, 'bwDrawn')} "
                             f"mask cells={p.locator(MASK_CELLS).count()} readout={text!r}\n  console: "
                             + "\n  ".join(consoles[i][-8:]))
            raise AssertionError(f"{key} not set on every page within {timeout_ms / 1000:.0f} s:\n"
                                 + "\n".join(shown)) from None


def test_pages_at_once_each_settle_on_their_exact_score(default_model, voila_server, browser_root, chromium_browser):
    if not os.environ.get("BERTOLOGY_GLUE_DIR"):
        pytest.skip("needs GLUE data: set BERTOLOGY_GLUE_DIR")
    notebook = browser_root / "voila-load" / QUICKSTART.name
    notebook.parent.mkdir(exist_ok=True)
    notebook.write_bytes(QUICKSTART.read_bytes())
    if BASELINE_CACHED:
        subprocess.run([sys.executable, "-c", SHARE_BASELINE_SCRIPT], check=True, timeout=MODEL_TIMEOUT_MS / 1000)
    server = voila_server(notebook, *(["--preheat_kernel=True", f"--pool_size={PAGES}"] if PREHEAT else []))
    pool_ready_s = wait_until_idle(server.proc.pid, PAGES) if PREHEAT else None
    memory = MemoryPeak(server.proc.pid)
    memory.start()
    heads = [1 + i % (HEADS - 1) for i in range(PAGES)]
    contexts = [chromium_browser.new_context(viewport=h.VIEWPORT) for _ in range(PAGES)]
    pages, errors = [c.new_page() for c in contexts], [[] for _ in range(PAGES)]
    consoles = [[] for _ in range(PAGES)]
    try:
        start = time.time()
        for page, errs, console in zip(pages, errors, consoles):
            page.on("pageerror", lambda e, errs=errs: errs.append(e.stack or str(e)))
            page.on("console", lambda m, console=console: console.append(f"[{m.type}] {m.text}"[:300]))
            page.goto(server.base_url, timeout=MODEL_TIMEOUT_MS, wait_until="commit")
            page.evaluate(_WATCH_JS, [READOUT, [f"0 of {LAYERS * HEADS} heads masked", "exact"], "bwRendered"])
            page.evaluate(_DRAWN_JS, [ATTENTION_CELLS, "bwDrawn"])
        wait_for_stamps(pages, "bwRendered", MODEL_TIMEOUT_MS * PAGES, consoles)
        rendered = [(stamp(p, "bwRendered") / 1000 - start) for p in pages]
        drawn = [(stamp(p, "bwDrawn") / 1000 - start) for p in pages]

        clicked = []
        for page, head in zip(pages, heads):
            page.evaluate(_WATCH_JS, [READOUT, [f"1 of {LAYERS * HEADS} heads masked", "exact"], "bwExact"])
            page.locator(".bw-mask-grid .heatmaprow").nth(0).locator(".heatmapcell").nth(head).click()
            clicked.append(time.time())
        wait_for_stamps(pages, "bwExact", MODEL_TIMEOUT_MS * PAGES, consoles)
        exact = [stamp(p, "bwExact") / 1000 - t for p, t in zip(pages, clicked)]
        time.sleep(2.0)  # one more memory sample with every kernel settled
        readouts = [p.locator(READOUT).inner_text() for p in pages]
        texts = [p.locator("body").inner_text() for p in pages]
        assert all(p.locator(MASK_CELLS).count() == LAYERS * HEADS for p in pages)
    finally:
        memory.stop.set()
        memory.join()
        for context in contexts:
            context.close()

    figures = {"pages": PAGES, "preheat": PREHEAT, "baseline_cached": BASELINE_CACHED, "pool_ready_s": pool_ready_s,
               "first_drawn_s": {"median": sorted(drawn)[PAGES // 2], "max": max(drawn)},
               "first_render_s": {"median": sorted(rendered)[PAGES // 2], "max": max(rendered)},
               "click_to_exact_s": {"median": sorted(exact)[PAGES // 2], "max": max(exact)},
               "peak_rss_mib": round(memory.rss), "peak_uss_mib": round(memory.uss),
               "peak_uss_mib_per_page": round(memory.uss / PAGES)}
    print(f"\n[voila-load] {json.dumps(figures)}")
    assert server.proc.poll() is None, "the Voilà server went down"
    assert [h.unexpected_page_errors(e) for e in errors] == [[]] * PAGES
    for text in texts:
        assert not TRACEBACK.search(text), f"a traceback is on a page:\n{text}"
    want = expected_accuracies(sorted(set(heads)))
    got = [readout_numbers(r)[0] for r in readouts]
    assert got == [round(want[head], 4) for head in heads], (got, want, readouts)
