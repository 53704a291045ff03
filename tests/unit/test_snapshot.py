"""The HTML snapshot without a browser: what its state holds, which JavaScript it inlines, its size."""

from __future__ import annotations

import importlib.util
import json
import re
import sysconfig
from pathlib import Path

import bqplot
import ipywidgets as w
import numpy as np
import pytest
from ipywidgets import _version as ipywidgets_version

from bertology_widgets.session import ModelSession
from bertology_widgets.snapshot import (
    collect,
    inlined_versions,
    save_snapshot,
    snapshot_page,
)
from bertology_widgets.snapshot.page import check_writable, json_for_script, static_dir, widget_state
from bertology_widgets.snapshot.views import snapshot_view
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import Dashboard

LAYERS, HEADS = 2, 4
XSS = "</script><script>document.title='x'</script><img src=x onerror=alert(1)>"
SHARE = Path(sysconfig.get_paths()["data"]) / "share" / "jupyter"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def session(tokenizer):
    model = tiny_model("bert", num_layers=LAYERS, num_heads=HEADS, initializer_range=1.0)
    s = ModelSession(model, tokenizer, tiny_examples(12), task="sst2", batch_size=12, live=False)
    s.curve = {"metric": "accuracy", "threshold_score": 0.4, "steps": [
        {"step": i, "fraction_masked": i / 8, "score": {"accuracy": 0.5}, "kept": True,
         "mask": (np.arange(LAYERS * HEADS).reshape(LAYERS, HEADS) >= i).astype(float).tolist()}
        for i in (0, 2, 4)]}
    s.importance = np.linspace(0, 1, LAYERS * HEADS).reshape(LAYERS, HEADS)
    yield s
    s.close()


def _models(state: dict, name: str) -> list[dict]:
    return [m for m in state.values() if m["model_name"] == name]


def test_collect_scores_each_slider_position_and_captures_every_head(session):
    session.toggle_head(1, 2)
    session.layer, session.head = 1, 1
    data = collect(session)
    assert data.attentions.shape[:2] == (LAYERS, HEADS) and data.attentions.dtype == np.float32
    # The session's mask first (scored as the session scores it), then the curve's three steps.
    assert len(data.states) == 4 and data.states[0].mask[1, 2] == 0
    assert data.states[0].score["accuracy"] == pytest.approx(session.score["accuracy"])
    assert data.states[1].flipped == 0 and data.states[1].score == data.baseline  # step 0 masks nothing
    for state in data.states:
        assert state.flipped == int((session.evaluate(state.mask)["predictions"]
                                     != session.evaluate(np.ones((LAYERS, HEADS)))["predictions"]).sum())
    assert (data.layer, data.head) == (1, 1)


def test_state_holds_only_the_snapshot_widgets_and_their_links(session):
    dashboard = Dashboard(session)  # a live dashboard's widgets exist meanwhile; none may leak into the page
    stray = w.IntSlider()
    data = collect(session)
    root = snapshot_view(data)
    state = widget_state(root)["state"]
    live_ids = {stray.model_id, dashboard.model_id, dashboard.mask_grid.grid.fig.model_id}
    assert not live_ids & set(state)
    assert len(_models(state, "GridHeatMapModel")) == LAYERS * HEADS + len(data.states) + 1  # maps, masks, importance
    links = _models(state, "LinkModel")
    assert len(links) == LAYERS + 1 + 2  # head -> each layer's stack, layer -> stack, slider -> readout and grid
    # Every model is reachable from the root through the state's own references, or is a link between two.
    refs = {root.model_id}
    text = {k: json.dumps(v) for k, v in state.items()}
    for _ in range(20):
        refs |= {k for k in state if any(f"IPY_MODEL_{k}" in text[r] for r in refs)}
    assert set(state) - refs == {m for m, v in state.items() if v["model_name"] == "LinkModel"}
    dashboard.close()
    stray.close()


def test_page_is_data_not_markup(session):
    session.text = XSS
    page = snapshot_page(collect(session, with_curve=False))
    assert XSS not in page and "<img src=x" not in page
    # state, view, require.js, bqplot, bqscales, the manager: no script element of the text's
    assert len(re.findall(r"^<script", page, re.MULTILINE)) == 6 and "<script>document" not in page
    state = json.loads(re.search(r'widget-state\+json">(.*?)</script>', page, re.DOTALL).group(1))
    headers = [m["state"]["value"] for m in _models(state["state"], "HTMLModel") if "bw-snapshot-header" in
               m["state"].get("value", "")]
    assert len(headers) == 1 and "&lt;/script&gt;&lt;script&gt;" in headers[0]
    assert json_for_script({"a": "</script>&"}) == '{"a":"\\u003c/script\\u003e\\u0026"}'


def test_snapshot_closes_the_widgets_it_made(session, tmp_path):
    before = set(w.widgets.widget._instances)
    assert save_snapshot(session, tmp_path / "page.html").stat().st_size > 0
    assert set(w.widgets.widget._instances) == before


def test_arrays_go_in_as_float32(session):
    state = widget_state(snapshot_view(collect(session)))["state"]
    heat = _models(state, "GridHeatMapModel")[0]["state"]["color"]
    assert heat["dtype"] == "float32"


def test_unwritable_out_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="missing does not exist; create it first"):
        check_writable(tmp_path / "missing" / "page.html")
    with pytest.raises(ValueError, match="is a folder"):
        check_writable(tmp_path)


def test_save_snapshot_and_dashboard_button_write_a_page(session, tmp_path):
    dashboard = Dashboard(session, export_dir=tmp_path)
    button = next(b for b in dashboard.exports.children if getattr(b, "description", "") == "Snapshot (HTML)")
    button.click()
    page = (tmp_path / "dashboard_snapshot.html").read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in page and "dashboard_snapshot.html" in \
        dashboard.export_status.value
    dashboard.close()


# -- the inlined JavaScript ---------------------------------------------------------------------
def _caret_allows(spec: str, version: str) -> bool:
    """Whether ``version`` satisfies the npm range ``spec`` (``^x.y.z`` or an exact version)."""
    want = [int(p) for p in spec.lstrip("^~").split(".")]
    have = [int(p) for p in version.split(".")]
    if not spec.startswith("^"):
        return have == want
    lead = next((i for i, p in enumerate(want) if p), len(want) - 1)  # ^0.6.1 pins 0.6, ^1.0.1 pins 1
    return have[: lead + 1] == want[: lead + 1] and have >= want


def _fetch_script():
    spec = importlib.util.spec_from_file_location("fetch_snapshot_js", REPO / "scripts" / "fetch_snapshot_js.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inlined_versions_match_the_installed_front_ends():
    versions = inlined_versions()
    assert _caret_allows(ipywidgets_version.__html_manager_version__, versions["@jupyter-widgets/html-manager"])
    manager = json.loads((SHARE / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager" /
                          "package.json").read_text())
    for package, wanted in versions["html-manager dependencies"].items():
        assert manager["dependencies"][package] == wanted, package
    assert _caret_allows(bqplot._version.__frontend_version__, versions["bqplot"])
    for name in ("bqplot", "bqscales"):
        installed = json.loads((SHARE / "labextensions" / name / "package.json").read_text())["version"]
        assert versions[name] == installed, f"inlined {name} {versions[name]}, installed {installed}: " \
                                            "run scripts/fetch_snapshot_js.py"
        inlined = (static_dir() / f"{name}.js").read_text(encoding="utf-8")
        assert inlined == _fetch_script().named_module(name, SHARE / "nbextensions" / name / "index.js")


def test_inlined_scripts_carry_their_licences_and_ask_for_no_file():
    folder = static_dir()
    for stem in ("embed-amd", "require", "bqplot", "bqscales"):
        assert (folder / f"{stem}.LICENSE.txt").is_file()
    manager = (folder / "embed-amd.js").read_text(encoding="utf-8")
    assert 'define("@jupyter-widgets/base7"' not in manager
    assert not re.search(r"^//# sourceMappingURL=", manager, re.MULTILINE)  # no map file is shipped
    assert not re.search(r'\.p\+"[0-9a-f]{20}\.(woff2?|ttf|eot|svg)"', manager)  # fonts are data: URIs

