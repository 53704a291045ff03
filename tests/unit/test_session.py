"""ModelSession: traits, live incremental re-scoring, cancellation, memoisation, state files."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from reference import faulty_batches, layers_run
from traitlets import TraitError

from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.core.layerwise import LayerwiseRunner
from bertology_widgets.session import ModelSession
from bertology_widgets.session.live import Cancelled
from bertology_widgets.testing import tiny_bound, tiny_model
from bertology_widgets.testing import tiny_examples as make_examples


@pytest.fixture()
def session(tokenizer):
    # A large initialiser makes single heads matter, so masks flip predictions.
    model = tiny_model("bert", initializer_range=1.0)
    s = ModelSession(model, tokenizer, make_examples(), task="sst2", batch_size=16)
    assert s.wait(60)  # the baseline lands through the dispatcher
    yield s
    s.close()


def predictions_of(session, mask):
    return evaluate(session.model, session.tokenizer, session.examples, mask, batch_size=16, task="sst2")


def test_initial_state(session):
    assert session.num_layers == 3 and session.num_heads == 4
    assert session.mask.shape == (3, 4) and (session.mask == 1).all()
    assert session.score == session.baseline_score == {"accuracy": predictions_of(session, None)["accuracy"]}
    assert session.attention.shape == (len(session.tokens),) * 2
    assert session.attentions.shape == (4, len(session.tokens), len(session.tokens))
    np.testing.assert_allclose(session.attention.sum(-1), 1, atol=1e-5)
    assert session.flipped == []


def test_toggling_changes_score_and_matches_evaluate(session):
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, :3] = 0
    mask[1, 1] = 0
    session.mask = mask
    assert session.wait(30)
    reference = predictions_of(session, mask)
    np.testing.assert_array_equal(session.predictions, reference["predictions"])
    assert session.score["accuracy"] == reference["accuracy"]
    base = predictions_of(session, None)["predictions"]
    assert session.flipped == np.nonzero(reference["predictions"] != base)[0].tolist()
    assert len(session.flipped) > 0, "this tiny model should flip some predictions under the mask"


def test_incremental_equals_scratch_for_50_random_sequences(tokenizer):
    model = tiny_model("bert", initializer_range=1.0, seed=1)
    examples = make_examples(48, seed=3)
    s = ModelSession(model, tokenizer, examples, task="sst2", batch_size=16, live=False)
    rng = np.random.default_rng(7)
    differing = 0
    try:
        for _ in range(50):
            for _ in range(int(rng.integers(1, 4))):
                s.toggle_head(int(rng.integers(3)), int(rng.integers(4)))
            ref = evaluate(model, tokenizer, examples, s.mask, batch_size=16, task="sst2")["predictions"]
            np.testing.assert_array_equal(s.predictions, ref)
            differing += int((ref != s.baseline_predictions).any())
    finally:
        s.close()
    assert differing > 10


def test_incremental_recomputes_only_changed_layers(tokenizer):
    model = tiny_model("bert", initializer_range=1.0)
    runner = LayerwiseRunner(tiny_bound(model))
    batch = dict(tokenizer(["good film", "a very long and boring movie"], padding=True, return_tensors="pt"))
    cache = runner.prepare(batch)
    import torch

    def layers_recomputed(mask):
        with layers_run(runner.layers) as ran:
            runner.run(cache, mask)
        return ran

    mask = torch.ones(3, 4)
    assert layers_recomputed(mask) == [0, 1, 2]
    mask[2, 1] = 0
    assert layers_recomputed(mask) == [2]
    mask[1, 0] = 0
    assert layers_recomputed(mask) == [1, 2]
    assert layers_recomputed(mask) == []  # nothing changed: nothing recomputed


def test_200_rapid_toggles_settle_on_the_final_mask(session, caplog):
    rng = np.random.default_rng(0)
    for _ in range(200):
        session.toggle_head(int(rng.integers(3)), int(rng.integers(4)))
    assert session.wait(60)
    reference = predictions_of(session, session.mask)
    np.testing.assert_array_equal(session.scored_mask, session.mask)
    assert session.score == {"accuracy": reference["accuracy"]}
    np.testing.assert_array_equal(session.predictions, reference["predictions"])
    assert session.score_error == ""
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_scorer_cancels_superseded_work(session):
    scorer = session.scorer
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, 0] = 0
    calls = []

    def is_current():
        calls.append(1)
        return len(calls) < 2  # superseded after the first batch

    with pytest.raises(Cancelled):
        scorer.score(mask, is_current=is_current)
    assert scorer.lru.get(mask) is None  # a cancelled run memoises nothing
    score, _ = scorer.score(mask)
    assert score["accuracy"] == predictions_of(session, mask)["accuracy"]


def test_no_stale_score_is_published(session):
    """A result for an older generation must never overwrite the score of the newer mask."""
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, 1] = 0
    old_generation = session.scorer.generation
    session.mask = mask
    assert session.wait(30)
    settled = dict(session.score)
    session.live.on_result(old_generation, (np.ones((3, 4)), {"accuracy": -1.0}, session.predictions))
    assert session.score == settled


def test_memoisation_returns_identical_dicts(session):
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1, 2] = 0
    session.mask = mask
    assert session.wait(30)
    first = session.scorer.lru.get(mask)
    session.reset_mask()
    assert session.wait(30)
    session.mask = mask  # back again: served from the LRU, synchronously
    assert not session.busy and session.score == first[0]
    assert session.scorer.lru.get(mask) is first


def test_lru_is_bounded(tokenizer):
    model = tiny_model("bert", initializer_range=1.0)
    s = ModelSession(model, tokenizer, make_examples(16), task="sst2", live=False, lru_size=4)
    try:
        for layer in range(3):
            for head in range(4):
                s.toggle_head(layer, head)
        assert len(s.scorer.lru) == 4
    finally:
        s.close()


def test_head_masked_follows_mask_and_selection(session):
    session.layer, session.head = 2, 3
    session.toggle_head(2, 3)
    assert session.mask[2, 3] == 0 and session.head_masked is True
    with pytest.raises(TraitError, match="read-only"):
        session.head_masked = False  # derived: toggle_head changes it
    session.head = 2
    assert session.head_masked is False
    session.head = 3
    assert session.head_masked is True
    session.reset_mask()
    assert session.head_masked is False


@pytest.mark.parametrize("trait, value", [("layer", -1), ("layer", 3), ("head", 4), ("example_index", 10_000)])
def test_bad_index_raises_trait_error_and_changes_nothing(session, trait, value):
    before = getattr(session, trait)
    with pytest.raises(TraitError, match="does not exist"):
        setattr(session, trait, value)
    assert getattr(session, trait) == before


@pytest.mark.parametrize("bad, message", [
    (np.ones((3, 5)), "shape"),
    (np.ones(3), "shape"),
    (np.full((3, 4), np.nan), "non-finite"),
    (np.full((3, 4), 2.0), r"\[0, 1\]"),
    (np.array([["a"] * 4] * 3), "dtype"),
])
def test_bad_mask_raises_trait_error_and_changes_nothing(session, bad, message):
    before = session.mask.copy()
    with pytest.raises(TraitError, match=message):
        session.mask = bad
    np.testing.assert_array_equal(session.mask, before)


def test_mask_is_read_only(session):
    with pytest.raises(ValueError):
        session.mask[0, 0] = 0


def test_state_round_trips(session, tmp_path, tokenizer):
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, 2] = 0
    mask[2, 1] = 0.25
    session.mask, session.layer, session.head, session.example_index = mask, 1, 3, 5
    path = tmp_path / "state.json"
    session.save_state(path)
    other = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, make_examples(), task="sst2",
                         batch_size=16, live=False)
    try:
        other.load_state(path)
        np.testing.assert_array_equal(other.mask, mask)
        assert (other.layer, other.head, other.example_index) == (1, 3, 5)
        assert other.text == session.text
    finally:
        other.close()


def test_state_of_custom_text_round_trips(session, tmp_path):
    session.text = "a sentence of my own"
    assert session.example_index == -1
    session.save_state(tmp_path / "s.json")
    session.example_index = 2
    session.load_state(tmp_path / "s.json")
    assert (session.example_index, session.text) == (-1, "a sentence of my own")


@pytest.mark.parametrize("content, message", [
    ("not json at all", "not a readable session file"),
    (json.dumps({"hello": 1}), "not a bertology-widgets session file"),
])
def test_bad_state_file_is_refused_and_changes_nothing(session, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    before = (session.mask.copy(), session.layer, session.head, session.example_index)
    with pytest.raises(ValueError, match=message):
        session.load_state(path)
    np.testing.assert_array_equal(session.mask, before[0])
    assert (session.layer, session.head, session.example_index) == before[1:]


def test_state_from_another_model_is_refused(session, tmp_path, tokenizer):
    other = ModelSession(tiny_model("bert", num_layers=2, initializer_range=1.0), tokenizer, make_examples(16),
                         task="sst2", live=False)
    try:
        other.save_state(tmp_path / "other.json")
    finally:
        other.close()
    before = session.mask.copy()
    with pytest.raises(ValueError, match="another model"):
        session.load_state(tmp_path / "other.json")
    np.testing.assert_array_equal(session.mask, before)


def test_worker_thread_ends_on_close(tokenizer):
    s = ModelSession(tiny_model("bert"), tokenizer, make_examples(16), task="sst2")
    thread = s.scorer._thread
    assert thread.is_alive()
    s.close()
    thread.join(5)
    assert not thread.is_alive()


def test_custom_text_shows_predictions_without_label(session):
    session.text = "brilliant charming fun"
    assert session.wait(30)
    assert session.example_index == -1
    assert session.example_label is None
    assert session.example_prediction in (0, 1) and session.example_baseline_prediction in (0, 1)
    session.example_index = 3
    assert session.example_label == session.examples[3].label


def test_empty_text_sets_error_and_clears_the_previous_input(session):
    session.text = "   "
    assert "empty" in session.capture_error
    assert session.attention is None and session.tokens == [] and session.notice == ""


def test_score_is_streamed_as_an_estimate_first(tokenizer):
    model = tiny_model("bert", initializer_range=1.0)
    s = ModelSession(model, tokenizer, make_examples(160), task="sst2", batch_size=8, live=False)
    seen = []
    try:
        mask = np.ones((3, 4), dtype=np.float32)
        mask[0, 0] = 0
        s.scorer.estimate_every_s = 0.0
        s.scorer.score(mask, on_estimate=lambda v, i, p: seen.append((v, i, p)))
    finally:
        s.close()
    assert len(seen) == 19  # every batch but the last
    values, intervals, progress = seen[0]
    low, high = intervals["accuracy"]
    assert low <= values["accuracy"] <= high and 0 < progress < 1
    widths = [i["accuracy"][1] - i["accuracy"][0] for _, i, _ in seen]
    assert widths[-1] < widths[0]  # the interval narrows as more of the set is seen


def test_session_on_pair_task_and_gpt2(tokenizer):
    model = tiny_model("gpt2", initializer_range=0.5)
    s = ModelSession(model, tokenizer, make_examples(24, pair=True), task="rte", live=False)
    try:
        s.toggle_head(1, 1)
        ref = evaluate(model, tokenizer, s.examples, s.mask, task="rte")
        assert s.score["accuracy"] == ref["accuracy"]
        assert np.allclose(np.triu(s.attention, 1), 0)  # causal
    finally:
        s.close()


def test_errors_in_scoring_are_shown_not_raised(session):
    def boom(number):
        if number == 1:
            raise RuntimeError("injected fault")

    with faulty_batches(session.scorer, boom):
        mask = np.ones((3, 4), dtype=np.float32)
        mask[2, 2] = 0
        session.mask = mask
        session.wait(30)
        assert "injected fault" in session.score_error and not session.busy
    session.toggle_head(0, 0)
    assert session.wait(30)
    assert session.score_error == ""
    assert session.score["accuracy"] == predictions_of(session, session.mask)["accuracy"]


def test_no_threads_leak_across_sessions(tokenizer):
    before = {t for t in threading.enumerate() if t.name == "bertology-live-scorer"}
    sessions = [ModelSession(tiny_model("bert"), tokenizer, make_examples(8), task="sst2") for _ in range(3)]
    for s in sessions:
        s.close()
    after = {t for t in threading.enumerate() if t.name == "bertology-live-scorer" and t.is_alive()}
    assert after <= before


def test_importance_and_masking_curve_run_in_the_background(tokenizer):
    model = tiny_model("bert", initializer_range=1.0)
    s = ModelSession(model, tokenizer, make_examples(24), task="sst2", batch_size=8)
    try:
        thread = s.compute_importance()
        s.toggle_head(0, 0)  # live scoring keeps working meanwhile
        thread.join(120)
        assert s.wait(30, analysis=True)
        assert s.analysis_error == "" and not s.analysis_busy and s.analysis_progress == 1.0
        assert s.importance.shape == (3, 4) and s.entropy.shape == (3, 4)
        assert s.wait(30)
        from reference import count_pre_hooks

        assert count_pre_hooks(s.model) == 0  # gradients were taken on a private copy
        s.mask_least_important(5)
        assert int((s.mask == 0).sum()) == 5
        order = np.argsort(s.importance.reshape(-1), kind="stable")
        assert (s.mask.reshape(-1)[order[:5]] == 0).all()
        seen = []
        s.observe(lambda change: seen.append(change["new"]), "analysis_progress")
        s.compute_masking_curve(background=False, masking_amount=0.25, masking_threshold=0.5, random_seeds=(0, 1))
        assert any(0 < p < 0.5 for p in seen), seen  # the bar moves with the curve's steps, not only at the end
        steps = s.curve["steps"]
        assert steps[0]["heads_masked"] == 0 and "random_baseline" in s.curve
        assert [st["heads_masked"] for st in steps] == sorted(st["heads_masked"] for st in steps)
    finally:
        s.close()


@pytest.mark.parametrize("layer, head, match", [
    (3, 0, "layer 3 does not exist; this model has layers 0..2"),
    (0, 4, "head 4 does not exist; this model has heads 0..3 per layer"),
    (-1, 0, "layer -1 does not exist"),
    (0.5, 0, "layer must be an integer index"),
])
def test_toggling_a_head_that_does_not_exist_says_which_exist(session, layer, head, match):
    before = session.mask.copy()
    with pytest.raises(TraitError, match=match):
        session.toggle_head(layer, head)
    with pytest.raises(TraitError, match=match):
        session.set_head(layer, head, 0.0)
    np.testing.assert_array_equal(session.mask, before)


def test_data_source_says_where_the_examples_came_from(tokenizer, tmp_path):
    from bertology_widgets.glue import load_glue

    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood fun\t1\na dull mess\t0\n")
    model = tiny_model("bert")
    s = ModelSession(model, tokenizer, load_glue("sst2", glue_dir=tmp_path), live=False)
    assert s.data_source == f"SST-2 dev: {tmp_path / 'SST-2' / 'dev.tsv'} (2 examples)"
    with pytest.raises(TraitError):
        s.data_source = "elsewhere"
    assert ModelSession(model, tokenizer, make_examples(8), task="sst2", live=False).data_source == ""
