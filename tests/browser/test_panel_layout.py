"""Every panel as a teacher projects it: geometry measured in JupyterLab, at 1,400 px and 900 px.

Bounding boxes, not pixels. On the quickstart (nothing computed yet) and on a
small session with every fold computed (a tiny random model with MiniLM's
6 x 12 heads):

* every legend lies inside its figure, and off the plot's data area;
* no axis or colour-bar label overlaps a plot's data area or another text;
* no text of a figure leaves that figure;
* at 900 px (the file browser open) no element of the dashboard runs past the notebook's output area;
* a panel that has not computed draws no figure at all, and says what to press.

Screenshots of every panel go to ``docs/images/`` with ``BERTOLOGY_UPDATE_DOCS=1``
(``artifacts/browser/`` otherwise).
"""

from __future__ import annotations

import shutil

import pytest

from . import harness as h
from .test_dashboard import MODEL_TIMEOUT_MS, QUICKSTART, run_notebook
from .test_layout import open_file_browser

PlaywrightTimeout = pytest.importorskip("playwright.sync_api").TimeoutError

pytestmark = pytest.mark.browser

WIDTHS = (1400, 900)
# (dashboard attribute, fold title prefix, panel selector)
PANELS = (("importance", "Head importance", ".bw-importance-panel"),
          ("hidden_states", "Hidden states", ".bw-hidden-states"),
          ("probe", "Which layer", ".bw-layer-probe"),
          ("patching", "Patching", ".bw-patching-panel"),
          ("pipeline", "Pipeline", ".bw-pipeline"))
UNCOMPUTED = ("importance", "probe", "patching", "pipeline")  # hidden states follow the shown input

COMPUTED_CELLS = [
    ("markdown", "# Every fold computed, on a tiny model"),
    """\
from bertology_widgets import ModelSession, Dashboard
from bertology_widgets.testing import tiny_examples, tiny_model, tiny_tokenizer

model = tiny_model("bert", num_layers=6, num_heads=12, hidden=48, initializer_range=1.0)
session = ModelSession(model, tiny_tokenizer(), tiny_examples(48), task="sst2")
session.text = ("the cinematography is breathtaking and the breathtaking score carries a long, slow, "
                "charming film whose ending nobody in the theatre saw coming")
session.wait(120)
dashboard = Dashboard(session)
session.compute_importance(background=False)
session.compute_masking_curve(background=False, random_seeds=(0, 1))
session.compute_roles(background=False)
session.compute_patching(background=False)
dashboard.probe.train_examples = tiny_examples(96, seed=1)
dashboard.probe.run()
dashboard.pipeline.tasks = ("upos", "deprel")
dashboard.pipeline.options = {"max_sentences": 24, "max_iter": 5}
dashboard.pipeline.run()
session.mask_least_important(40)
session.wait(120)
dashboard.attention.show_all_heads = True
dashboard.mask_grid.colour_by = "role"
dashboard""",
]

# Problems of one figure: legends, labels and texts out of place.
_FIGURE_PROBLEMS_JS = """(fig) => {
  const problems = [];
  const shown = el => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'
      && getComputedStyle(el).display !== 'none'; };
  const inside = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1
    && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  if (fig.offsetParent === null || !shown(fig)) return problems;
  const box = fig.getBoundingClientRect();
  const name = (fig.querySelector('.mainheading')?.textContent || 'untitled').slice(0, 50);
  const plotEl = fig.querySelector('.plotarea_background');
  const plot = plotEl && shown(plotEl) ? plotEl.getBoundingClientRect() : null;
  for (const legend of fig.querySelectorAll('.g_legend')) {
    if (!shown(legend) || !legend.querySelector('text')) continue;
    const r = legend.getBoundingClientRect();
    if (!inside(r, box)) problems.push(`${name}: the legend leaves the figure`);
    if (plot && overlap(r, plot)) problems.push(`${name}: the legend covers the data`);
  }
  const texts = [...fig.querySelectorAll('svg text')].filter(t => t.textContent.trim() && shown(t));
  for (const t of texts) {
    if (!inside(t.getBoundingClientRect(), box))
      problems.push(`${name}: "${t.textContent.trim()}" leaves the figure`);
  }
  const labels = [...fig.querySelectorAll('.axislabel')].filter(l => l.textContent.trim() && shown(l));
  for (const label of labels) {
    const r = label.getBoundingClientRect();
    const what = `${name}: axis label "${label.textContent.trim()}"`;
    if (plot && overlap(r, plot)) problems.push(`${what} overlaps the data area`);
    for (const other of texts) {
      if (!other.contains(label) && overlap(r, other.getBoundingClientRect()))
        problems.push(`${what} overlaps "${other.textContent.trim()}"`);
    }
  }
  return [...new Set(problems)];
}"""

# Visible elements of the dashboard whose right edge passes the notebook's output area.
_PAST_OUTPUT_JS = """() => {
  const dashboard = document.querySelector('.bw-dashboard');
  const column = dashboard.closest('.jp-OutputArea-output') || dashboard.parentElement;
  const limit = column.getBoundingClientRect().right + 1;
  const selector = '.bqplot, .widget-button, .widget-toggle-button, .widget-toggle-buttons, .widget-dropdown, '
    + '.widget-text, .widget-slider, .widget-html, .widget-progress, .widget-select, .widget-label, .widget-hbox, '
    + '.widget-inline-hbox, .widget-checkbox';
  return [...dashboard.querySelectorAll(selector)]
    .filter(el => el.offsetParent !== null && el.getBoundingClientRect().width > 0)
    .filter(el => el.getBoundingClientRect().right > limit)
    .map(el => `${el.className.split(' ').slice(0, 2).join('.')} right=${el.getBoundingClientRect().right.toFixed(0)}`
      + ` limit=${limit.toFixed(0)} "${(el.querySelector('.mainheading')?.textContent || el.innerText || '')
        .replace(/\\s+/g, ' ').slice(0, 40)}"`);
}"""

# Visible figures of a panel (a panel that has not computed shows none).
_FIGURES_JS = """(sel) => [...document.querySelectorAll(`${sel} .bqplot`)]
  .filter(f => f.offsetParent !== null && f.getBoundingClientRect().height > 0)
  .map(f => f.querySelector('.mainheading')?.textContent || 'untitled')"""


def fold_titles(page):
    return page.locator(".bw-dashboard .jupyter-widget-Collapse-header, .bw-dashboard .lm-AccordionPanel-title")


def open_fold(page, title: str, selector: str) -> None:
    """Open the fold whose title starts with ``title`` (the others close: an accordion shows one)."""
    fold = fold_titles(page).filter(has_text=title).first
    if not page.locator(selector).is_visible():
        fold.click()
    page.locator(selector).wait_for(state="visible", timeout=h.ROUNDTRIP_TIMEOUT_MS)


def set_width(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_function(f"() => window.innerWidth === {width}", timeout=h.UI_TIMEOUT_MS)


def when_settled(page, js: str, arg=None) -> list[str]:
    """``js``'s problems once the page has had time to relayout (bqplot redraws a moment after a resize)."""
    try:
        page.wait_for_function(f"(arg) => ({js})(arg).length === 0", arg=arg, timeout=h.ROUNDTRIP_TIMEOUT_MS // 3)
    except PlaywrightTimeout:
        pass  # what is still wrong is reported
    return page.evaluate(js, arg)


def figure_problems(page, selector: str) -> list[str]:
    """The problems of every shown figure under ``selector``, each first scrolled into view (bqplot lays out
    a figure again after a resize once it is on screen)."""
    problems: list[str] = []
    figures = page.locator(f"{selector} .bqplot")
    for index in range(figures.count()):
        figure = figures.nth(index)
        if not figure.is_visible():
            continue
        figure.scroll_into_view_if_needed()
        problems += [p for p in when_settled(page, _FIGURE_PROBLEMS_JS, figure.element_handle()) if p not in problems]
    return problems


def layout_problems(page, width: int, selector: str) -> list[str]:
    problems = [f"{width} px: {p}" for p in figure_problems(page, selector)]
    if width <= 900:
        problems += [f"{width} px: past the output area: {p}" for p in when_settled(page, _PAST_OUTPUT_JS)]
    return problems


def shoot(page, selector: str, name: str, width: int) -> None:
    """A picture of one element, for the docs (``docs/images/`` with ``BERTOLOGY_UPDATE_DOCS=1``).

    The notebook scrolls inside its panel, so the window is made tall enough for the whole element first.
    """
    element = page.locator(selector).first
    to_top = "el => el.scrollIntoView({block: 'start'})"
    element.evaluate(to_top)
    box = element.bounding_box()
    page.set_viewport_size({"width": width, "height": max(1000, int(box["y"] + box["height"]) + 60)})
    element.evaluate(to_top)
    page.mouse.move(0, 0)  # no hover toolbar or tooltip in the picture
    element.screenshot(path=str(h.docs_screenshot(name)), animations="disabled")
    page.set_viewport_size({"width": width, "height": 1000})


def test_the_quickstart_panels_are_empty_until_computed_and_fit(default_model, jupyter_server, browser_root, page,
                                                                 browser_log):
    notebook = browser_root / "panel_layout" / QUICKSTART.name
    notebook.parent.mkdir(exist_ok=True)
    shutil.copyfile(QUICKSTART, notebook)
    run_notebook(page, "lab", jupyter_server("lab"), browser_root, notebook, MODEL_TIMEOUT_MS)
    open_file_browser(page)  # as a teacher's window has it: the notebook's column is narrower
    page.wait_for_selector(".bw-attention-grid .bqplot .heatmapcell", timeout=MODEL_TIMEOUT_MS)
    problems, drawn, silent = [], [], []
    for width in WIDTHS:
        set_width(page, width)
        problems += layout_problems(page, width, ".bw-dashboard")
        for name, title, selector in PANELS:
            open_fold(page, title, selector)
            problems += layout_problems(page, width, selector)
            if name in UNCOMPUTED:
                figures = page.evaluate(_FIGURES_JS, selector)
                if figures:
                    drawn.append(f"{width} px: {name} draws {figures} before it has computed")
                if "press" not in page.locator(selector).inner_text().lower():
                    silent.append(f"{width} px: {name} does not say what to press")
                if width == 1400 and name in ("pipeline", "patching"):
                    shoot(page, selector, f"panel-{name}-empty.png", width)
    assert not drawn + silent + problems, "\n".join(drawn + silent + problems)
    assert browser_log.unexpected_page_errors() == []


def test_every_panel_computed_fits_its_figures(jupyter_server, browser_root, page, browser_log):
    notebook = h.write_notebook(browser_root / "panel_layout" / "computed.ipynb", COMPUTED_CELLS)
    run_notebook(page, "lab", jupyter_server("lab"), browser_root, notebook, 3 * h.KERNEL_TIMEOUT_MS)
    open_file_browser(page)
    page.wait_for_function("() => document.querySelectorAll('.bw-all-heads .bqplot').length === 12",
                           timeout=h.KERNEL_TIMEOUT_MS)
    problems = []
    for width in WIDTHS:
        set_width(page, width)
        problems += layout_problems(page, width, ".bw-dashboard")
        shoot(page, ".bw-attention-grid", f"attention-{width}.png", width)
        shoot(page, ".bw-mask-grid", f"roles-{width}.png", width)
        for name, title, selector in PANELS:
            open_fold(page, title, selector)
            # Every fold computed: a figure with its cells or marks, and no "press" left unanswered.
            assert page.evaluate(_FIGURES_JS, selector), f"{name} shows no figure once computed"
            problems += layout_problems(page, width, selector)
            shoot(page, selector, f"panel-{name}-{width}.png", width)
    assert not problems, "\n".join(problems)
    assert browser_log.unexpected_page_errors() == []
