"""The views, without a browser: set traits (as the front end would) and assert traits."""

from __future__ import annotations

import json

import ipywidgets
import numpy as np
import pytest

from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import (
    AttentionGrid,
    Controls,
    Dashboard,
    ExampleView,
    HeadMaskGrid,
    ScoreReadout,
    load_mask,
    save_mask,
)
from bertology_widgets.widgets._grid import label_step
from bertology_widgets.widgets.tokens import display_tokens

LAYERS, HEADS = 4, 4


@pytest.fixture()
def session(tokenizer):
    # A large initialiser makes single heads matter, so masks flip predictions.
    model = tiny_model("bert", num_layers=LAYERS, num_heads=HEADS, initializer_range=1.0)
    s = ModelSession(model, tokenizer, tiny_examples(40, pair=True), task="mrpc", batch_size=16, live=False)
    yield s
    s.close()


def test_layer_and_head_dropdowns_set_the_session(session):
    controls = Controls(session)
    assert controls.layer.options == tuple((f"Layer L{i}", i) for i in range(LAYERS))
    assert controls.head.label == "Head 0"
    controls.layer.value = 3
    assert session.layer == 3
    session.head = 2
    assert controls.head.value == 2


def test_mask_toggle_follows_and_sets_the_mask(session):
    controls = Controls(session)
    controls.layer.value, controls.head.value = 3, 1
    controls.mask_head.value = True
    assert session.mask[3, 1] == 0 and session.head_masked
    assert controls.mask_head.button_style == "danger"
    controls.mask_head.value = False
    assert session.mask[3, 1] == 1
    session.toggle_head(3, 1)
    assert controls.mask_head.value is True
    controls.reset.click()
    assert (session.mask == 1).all() and controls.mask_head.value is False


def test_mask_grid_click_toggles_that_head(session):
    grid = HeadMaskGrid(session)
    grid.grid.click(2, 3)  # the message a click on cell (layer 2, head 3) sends
    assert session.mask[2, 3] == 0
    np.testing.assert_array_equal(grid.grid.heat.color, session.mask)
    grid._on_cell_click(2, 3)
    assert session.mask[2, 3] == 1


def test_mask_grid_frames_the_selected_head_and_colours_by_scores(session):
    grid = HeadMaskGrid(session)
    session.layer, session.head = 1, 2
    frame = grid.grid.overlays["selected"]
    assert frame.visible and (frame.x.min(), frame.x.max(), frame.y.min(), frame.y.max()) == (2, 3, 1, 2)
    grid.colour_by = "importance"
    assert "not computed" in grid.note.value
    importance = np.arange(LAYERS * HEADS, dtype=float).reshape(LAYERS, HEADS)
    session.importance = importance
    np.testing.assert_array_equal(grid.grid.heat.color, importance)
    assert grid.colours.min is None and grid.note.value == ""
    session.toggle_head(0, 1)
    assert grid.grid.overlays["masked"].visible  # masked heads keep their corner mark
    grid.colour_selector.value = "mask"
    assert grid.colour_by == "mask" and grid.colours.max == 1.0
    np.testing.assert_array_equal(grid.grid.heat.color, session.mask)


def test_attention_grid_shows_the_session_attention(session):
    view = AttentionGrid(session)
    np.testing.assert_allclose(view.grid.heat.color, session.attention)
    session.head = 3
    np.testing.assert_allclose(view.grid.heat.color, session.attention)
    session.text, session.text_pair = "a brilliant film", "the plot was dull"
    assert view.grid.heat.color.shape == (len(session.tokens),) * 2
    np.testing.assert_allclose(view.grid.heat.color, session.attention)
    labels = view.grid.axes[0].tick_labels
    assert sorted(labels.values()) == sorted(session.tokens) and labels["0.5"] == session.tokens[0]
    separators = view.grid.overlays["separators"]
    boundary = session.tokens.index("[SEP]") + 1
    assert separators.visible and boundary in separators.x
    assert "L0 head 3" in view.grid.fig.title and "causal" not in view.grid.fig.title
    # Per head by default: the head's largest weight is full colour, and the colour bar says so.
    colours = view.grid.heat.scales["color"]
    assert view.scale == "head" and (colours.min, colours.max) == (0, pytest.approx(session.attention.max()))
    assert view.grid.colour_axis.scale is colours and view.grid.colour_axis.visible


def test_all_heads_grid_click_selects_the_head(session):
    view = AttentionGrid(session, show_all_heads=True)
    assert len(view.small) == HEADS and view._small_box.layout.display is None
    for head, small in enumerate(view.small):
        np.testing.assert_allclose(small.heat.color, session.attentions[head])
    view.small[2].click(0, 1)
    assert session.head == 2
    assert "e6550d" in view.small[2].fig.layout.border
    view.toggle_all.value = False
    assert view._small_box.layout.display == "none"


def test_causal_models_say_so_and_one_layer_grids_stay_2d(tokenizer):
    model = tiny_model("gpt2", num_layers=1, num_heads=2)
    s = ModelSession(model, tokenizer, tiny_examples(8), task="sst2", live=False)
    try:
        assert s.causal and s.layer_notes == [""]
        view = AttentionGrid(s)
        assert "causal" in view.grid.fig.title
        assert np.allclose(np.triu(view.grid.heat.color, k=1), 0)
        grid = HeadMaskGrid(s)
        assert grid.grid.heat.color.shape == (1, 2)  # bqplot would squeeze it to (2,)
        grid.grid.click(0, 1)
        assert s.mask[0, 1] == 0
    finally:
        s.close()


def test_readout_follows_score_estimate_and_error(session):
    readout = ScoreReadout(session)
    assert f"{session.baseline_score['accuracy']:.4f}" in readout.html.value
    assert "0 of 16 heads masked" in readout.html.value and "exact" in readout.html.value
    session.toggle_head(0, 0)
    assert "1 of 16 heads masked" in readout.html.value
    with session.hold_trait_notifications():
        session.score = {"accuracy": 0.123, "f1": 0.456}
        session.score_interval = {"accuracy": (0.1, 0.15), "f1": (0.4, 0.5)}
        session.score_is_estimate, session.busy, session.progress = True, True, 0.4
    assert "0.1230" in readout.html.value and "[0.100, 0.150]" in readout.html.value
    assert "estimate" in readout.html.value and "40%" in readout.html.value
    assert readout.progress.value == pytest.approx(0.4) and readout.progress.layout.visibility == "visible"
    delta = 0.123 - session.baseline_score["accuracy"]
    assert f"{delta:+.4f}" in readout.html.value
    session.busy = False
    assert readout.progress.layout.visibility == "hidden"
    assert readout.error.layout.display == "none"
    session.score_error = "scoring failed: RuntimeError: out of memory"
    assert "out of memory" in readout.error.value and readout.error.layout.display is None
    session.capture_error = "text is empty"
    assert "out of memory" in readout.error.value and "text is empty" in readout.error.value
    session.score_error = ""  # each source clears its own line
    assert "out of memory" not in readout.error.value and "text is empty" in readout.error.value
    session.capture_error = ""
    assert readout.error.layout.display == "none"
    assert session.precision in readout.html.value
    # The table reserves room for a two-line status: an estimate does not push the views below.
    assert int(readout.html.layout.min_height.removesuffix("px")) >= 22 * (len(session.baseline_score) + 1) + 40


def test_failing_callbacks_land_in_session_error(session):
    controls = Controls(session)
    session.close()  # a dead scorer: toggling still works, scoring synchronously
    grid = HeadMaskGrid(session)
    grid.grid.on_cell_click(grid._guarded(lambda row, col: session.toggle_head(row, 99)))
    grid.grid.click(0, 0)  # must not raise
    assert "TraitError: head 99 does not exist" in session.error
    session.error = ""
    box = ipywidgets.IntText()
    controls._link((session, "layer"), (box, "value"))
    box.value = 9  # the session refuses: the box goes back
    assert "layer 9 does not exist" in session.error and session.layer == 0 and box.value == 0


def test_example_view_picks_examples_and_custom_text(session):
    view = ExampleView(session)
    view.index.value = 5
    assert session.example_index == 5 and view.text.value == session.examples[5].text_a
    assert view.text_pair.value == session.examples[5].text_b
    assert "label: <b>" in view.prediction.value
    view.text.value, view.text_pair.value = "good fun", "dull"
    view.analyse.click()
    assert session.example_index == -1 and view.index.value == -1
    assert (session.text, session.text_pair) == ("good fun", "dull")
    assert "your own text" in view.source.value and "label:" not in view.prediction.value
    assert view.text_pair.layout.display is None  # MRPC has pairs
    view.text_pair.value = ""
    assert session.text_pair is None
    session.notice = "the text was truncated to 128 tokens"
    assert "truncated" in view.notice.value and view.notice.layout.display is None


def test_flipped_examples_are_listed_and_selectable(session):
    view = ExampleView(session)
    session.mask = np.zeros((LAYERS, HEADS), dtype=np.float32)  # drastic enough to flip something
    assert session.flipped, "masking every head should flip some predictions"
    assert [value for _label, value in view.flipped.options] == session.flipped
    target = session.flipped[-1]
    view.flipped.value = target
    assert session.example_index == target and "(flipped)" in view.prediction.value


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_mask_export_round_trips(session, tmp_path, suffix):
    session.toggle_head(1, 2)
    session.toggle_head(3, 0)
    dashboard = Dashboard(session, export_dir=tmp_path)
    path = dashboard.save_mask(tmp_path / f"mask{suffix}")
    np.testing.assert_array_equal(load_mask(path), session.mask)
    if suffix == ".json":
        assert json.loads(path.read_text())["mask"] == session.mask.tolist()
    session.reset_mask()
    session.mask = load_mask(path)
    assert session.mask[1, 2] == 0 and session.mask[3, 0] == 0 and session.mask.sum() == LAYERS * HEADS - 2


def test_mask_export_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match=r"\.npy or \.json"):
        save_mask(np.ones((2, 2)), tmp_path / "mask.txt")
    (tmp_path / "bad.json").write_text('{"gates": []}')
    with pytest.raises(ValueError, match="mask"):
        load_mask(tmp_path / "bad.json")


def test_dashboard_composes_the_views_and_its_buttons_work(session, tmp_path):
    dashboard = Dashboard(session, export_dir=tmp_path)
    assert {type(v).__name__ for v in (dashboard.controls, dashboard.attention, dashboard.mask_grid,
                                       dashboard.readout, dashboard.example)} == {
        "Controls", "AttentionGrid", "HeadMaskGrid", "ScoreReadout", "ExampleView"}
    dashboard.controls.mask_head.value = True
    buttons = {b.description: b for b in dashboard.exports.children if hasattr(b, "click")}
    buttons["Mask .json"].click()
    assert load_mask(tmp_path / "head_mask.json")[0, 0] == 0
    buttons["Attention PNG"].click()  # sends a message to the (absent) front end; must not fail
    assert session.error == ""
    dashboard.close()
    session.toggle_head(1, 1)  # closed views no longer follow the session
    assert dashboard.mask_grid.grid.heat.color[1, 1] == 1


@pytest.mark.parametrize("view", [Dashboard, AttentionGrid, ScoreReadout])
def test_a_view_of_a_task_name_says_to_open_a_session(view):
    with pytest.raises(ValueError, match=r"shows a ModelSession, not str 'sst2'; open one first: "
                                         r".*\(ModelSession.from_pretrained\(task='sst2'\)\)"):
        view("sst2")


def test_refused_text_empties_the_attention_map(session):
    grid = AttentionGrid(session)
    session.text = ""
    assert "empty" in session.capture_error
    assert grid.grid.heat.color.shape == (1, 1) and grid.grid.fig.title == "no input to show"
    session.text = "a fine film"
    session.wait()
    assert grid.grid.heat.color.shape == (len(session.tokens),) * 2


def _figures(widget):
    """Every bqplot ``Figure`` under ``widget`` (children, accordion panels)."""
    from bqplot import Figure

    if isinstance(widget, Figure):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from _figures(child)


def test_every_heat_map_of_the_dashboard_has_a_colour_bar(session):
    from bqplot import ColorAxis, GridHeatMap

    dashboard = Dashboard(session)
    dashboard.attention.show_all_heads = True
    session.importance = np.ones((LAYERS, HEADS))
    for index in range(len(dashboard.panels.children)):  # every fold opened once: its panel is built
        dashboard.panels.selected_index = index
    # The pipeline's figures join the page with a result (the last fold, open).
    dashboard.pipeline.tasks, dashboard.pipeline.options = ("upos",), {"max_sentences": 12, "max_iter": 5}
    dashboard.pipeline.run()
    heat_figures = [f for f in _figures(dashboard) if any(isinstance(m, GridHeatMap) for m in f.marks)]
    # main attention map, the small maps, the mask grid, the importance map, norms and cosine, patching,
    # the pipeline panel's mix weights
    assert len(heat_figures) == 1 + HEADS + 1 + 1 + 2 + 1 + 1
    for fig in heat_figures:
        heat = next(m for m in fig.marks if isinstance(m, GridHeatMap))
        bars = [a for a in fig.axes if isinstance(a, ColorAxis)]
        assert len(bars) == 1 and bars[0].scale is heat.scales["color"], fig.title
        assert fig.title, "every heat map says what it shows"
    # bqplot draws a colour bar 100 px short of each end of the plot: thumbnails hide theirs
    # (the all-heads caption states their scale); every full-size map shows its bar, but for the
    # mask's 0 / 1 gates, which a legend of two swatches tells.
    thumbnails = {small.fig for small in dashboard.attention.small}
    for fig in heat_figures:
        bar = next(a for a in fig.axes if isinstance(a, ColorAxis))
        assert bar.visible == (fig not in thumbnails and fig is not dashboard.mask_grid.grid.fig), fig.title
        if fig not in thumbnails:
            margin, height = fig.fig_margin, int(fig.layout.height.removesuffix("px"))
            assert height - margin["top"] - margin["bottom"] >= 300, f"{fig.title}: too short for a colour bar"


def test_attention_scale_picker_and_token_tooltip(session):
    view = AttentionGrid(session)
    attention, colours = session.attention, view.grid.heat.scales["color"]
    view.scale_picker.value = "fixed"
    assert (colours.min, colours.max) == (0, 1)
    np.testing.assert_allclose(view.grid.heat.color, attention)
    view.scale_picker.value = "row"
    np.testing.assert_allclose(view.grid.heat.color.max(axis=1), 1.0)
    np.testing.assert_allclose(view.grid.heat.color, attention / attention.max(axis=1, keepdims=True), atol=1e-6)
    # The tooltip names the tokens and prints the raw weight with three decimals.
    view.grid.heat._handle_custom_msgs(None, {"event": "hover", "point": {"rowNum": 1, "columnNum": 0}})
    tip = view.grid.tooltip.value
    assert f"<b>{session.tokens[1]}</b>" in tip and f"<b>{session.tokens[0]}</b>" in tip
    assert f"<b>{attention[1, 0]:.3f}</b>" in tip


def test_long_sentences_thin_their_tick_labels(session):
    view = AttentionGrid(session)
    session.text = " ".join(["cinematography breathtaking"] * 30)
    n = len(session.tokens)
    shown = view.grid.axes[0].tick_labels
    room = 460 + 70 - 100 - 80  # the figure is 530 px wide, margins 100 + 80
    step = label_step(n, room)
    assert step > 1 and len(shown) == len(range(0, n, step))
    assert len(shown) * 14 <= room  # at least 14 px per label: no overlap
    assert label_step(8, 300) == 1


def test_byte_level_markers_become_visible_characters(tokenizer):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from bertology_widgets.widgets.tokens import is_byte_level

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(), decoders.ByteLevel()
    assert is_byte_level(PreTrainedTokenizerFast(tokenizer_object=bpe)) and not is_byte_level(tokenizer)
    assert display_tokens(["\u0120charming", "film", "\u010a"], byte_level=True) == ["\u2423charming", "film", "\u21b5"]
    assert display_tokens(["\u0120charming"], byte_level=False) == ["\u0120charming"]


def test_masked_heads_are_outlined_in_every_colouring(session):
    grid = HeadMaskGrid(session)
    session.toggle_head(1, 2)
    for colour_by in ("mask", "importance"):
        grid.colour_by = colour_by
        outline = grid.grid.overlays["masked"]
        assert outline.visible and (outline.x.min(), outline.y.min()) == (2, 1)
    session.importance = np.ones((LAYERS, HEADS))
    assert grid.grid.overlays["masked"].visible and "importance" in grid.grid.fig.title.lower()
    assert grid.grid.colour_axis.visible and "corner mark" in grid.legend.value
    assert grid.grid.colour_axis.label == "importance"
    session.reset_mask()
    assert not grid.grid.overlays["masked"].visible


def test_toggle_says_what_it_will_do_and_single_sentence_tasks_hide_the_pair(session, tokenizer):
    controls = Controls(session)
    assert controls.mask_head.description == "Mask head"
    controls.mask_head.value = True
    assert controls.mask_head.description == "Unmask head"
    single = ModelSession(tiny_model("bert", num_layers=1, num_heads=2), tokenizer, tiny_examples(8), task="sst2",
                          live=False)
    try:
        view = ExampleView(single)
        assert view.text_pair.layout.display == "none"
        assert "dev example 0 of 8" in view.source.value
    finally:
        single.close()


def test_view_links_report_failures_take_refused_values_back_and_unlink(session):
    controls = Controls(session)
    shown = ipywidgets.IntText()
    one_way = controls._dlink((session, "layer"), (shown, "value"), lambda layer: 10 // (2 - layer))
    assert shown.value == 5
    session.layer = 2  # the transform fails: reported, and the session keeps its value
    assert "ZeroDivisionError" in session.error and session.layer == 2 and shown.value == 5
    session.error = ""
    picker = ipywidgets.IntText()
    two_ways = controls._link((session, "head"), (picker, "value"))
    picker.value = 3
    assert session.head == 3 and session.error == ""
    one_way.unlink()
    two_ways.unlink()
    session.layer, session.head = 1, 1
    picker.value = 2
    assert shown.value == 5 and picker.value == 2 and session.head == 1


def test_dashboard_builds_a_folded_panel_only_when_it_is_opened_or_read(session):
    from bertology_widgets.widgets.dashboard import PANELS
    from bertology_widgets.widgets.importance_panel import ImportancePanel
    from bertology_widgets.widgets.pipeline_panel import PipelinePanel

    dashboard = Dashboard(session)
    folds = dashboard.panels.children
    assert len(folds) == len(PANELS) and all(fold.children == () for fold in folds)
    assert [dashboard.panels.get_title(i) for i in range(len(PANELS))] == [title for _, title, _ in PANELS]
    dashboard.panels.selected_index = 0  # opening a fold builds its panel, active
    importance = folds[0].children[0]
    assert isinstance(importance, ImportancePanel) and dashboard.importance is importance and importance._active
    assert all(fold.children == () for fold in folds[1:])
    pipeline = dashboard.pipeline  # read before it is opened: built, but inactive while folded
    assert isinstance(pipeline, PipelinePanel) and folds[4].children == (pipeline,) and not pipeline._active
    dashboard.panels.selected_index = 4
    assert pipeline._active and not importance._active and dashboard.pipeline is pipeline
    dashboard.close()  # closes the panels it built: they no longer follow the session
    assert importance._observers == [] and pipeline._observers == [] and pipeline._links == []
