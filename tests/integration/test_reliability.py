"""Reliability: random trait sequences, load, faults, bad input and atomic saves (issue 8)."""

from __future__ import annotations

import gc
import json
import threading
import time

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import count_pre_hooks, faulty_batches
from traitlets import TraitError

from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.core.architectures import UnsupportedArchitectureError
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model

LAYERS, HEADS = 3, 4


@pytest.fixture(scope="module")
def shared_session(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(40), task="sst2",
                     batch_size=8, lru_size=16)
    yield s
    s.close()


def scorer_threads():
    return [t for t in threading.enumerate() if t.name == "bertology-live-scorer" and t.is_alive()]


def assert_settled_and_right(session):
    assert session.wait(60), session.score_error
    reference = evaluate(session.model, session.tokenizer, session.examples, session.mask,
                         batch_size=session.batch_size, task=session.task)
    assert session.score == {k: reference[k] for k in session.metric_names}
    np.testing.assert_array_equal(session.predictions, reference["predictions"])


# -- property-based state tests ------------------------------------------------------------------
actions = st.one_of(
    st.tuples(st.just("layer"), st.integers(0, LAYERS - 1)),
    st.tuples(st.just("head"), st.integers(0, HEADS - 1)),
    st.tuples(st.just("head_masked"), st.booleans()),
    st.tuples(st.just("toggle"), st.tuples(st.integers(0, LAYERS - 1), st.integers(0, HEADS - 1))),
    st.tuples(st.just("mask"), st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=LAYERS * HEADS,
                                         max_size=LAYERS * HEADS)),
    st.tuples(st.just("reset"), st.none()),
    st.tuples(st.just("example_index"), st.integers(0, 39)),
    st.tuples(st.just("text"), st.sampled_from(["good film", "a dull and long movie", "fun", "  "])),
    st.tuples(st.just("bad_layer"), st.integers(LAYERS, 10)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(actions, min_size=1, max_size=25))
def test_random_trait_sequences_keep_the_session_consistent(shared_session, steps):
    s = shared_session
    for name, value in steps:
        if name == "toggle":
            s.toggle_head(*value)
        elif name == "mask":
            s.mask = np.array(value, dtype=np.float32).reshape(LAYERS, HEADS)
        elif name == "reset":
            s.reset_mask()
        elif name == "head_masked":  # read-only: the mask button asks for it by toggling the shown head
            if s.head_masked != value:
                s.toggle_head(s.layer, s.head)
        elif name == "bad_layer":
            with pytest.raises(TraitError, match="does not exist"):
                s.layer = value
        else:
            setattr(s, name, value)
    assert_settled_and_right(s)
    assert 0 <= s.layer < LAYERS and 0 <= s.head < HEADS
    assert s.mask.shape == (LAYERS, HEADS) and np.isfinite(s.mask).all()
    assert ((s.mask >= 0) & (s.mask <= 1)).all()
    assert s.head_masked == bool(s.mask[s.layer, s.head] == 0)
    assert count_pre_hooks(s.model) == 0
    assert len(s.scorer.lru) <= s.scorer.lru.size
    assert s.scorer.alive


# -- load --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_5000_toggles_and_20_sessions_stay_bounded(tokenizer):
    process = psutil.Process()
    gc.collect()
    threads_before = len(scorer_threads())
    rss_before = process.memory_info().rss
    sessions = [ModelSession(tiny_model("bert", initializer_range=1.0, seed=i), tokenizer, tiny_examples(24, seed=i),
                             task="sst2", batch_size=8, lru_size=32) for i in range(20)]
    assert len(scorer_threads()) == threads_before + 20
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(5000):
        s = sessions[i % 20]
        s.toggle_head(int(rng.integers(LAYERS)), int(rng.integers(HEADS)))
    loop_seconds = time.perf_counter() - start
    peak_rss = process.memory_info().rss
    for s in sessions:
        assert_settled_and_right(s)
        assert len(s.scorer.lru) <= 32
    for s in sessions[:10]:
        s.close()
    del s
    sessions = sessions[10:]  # the other ten are dropped without close(): garbage collection ends them
    sessions.clear()
    gc.collect()
    for t in [t for t in threading.enumerate() if t.name == "bertology-live-scorer"]:
        t.join(5)
    assert len(scorer_threads()) == threads_before
    gc.collect()
    rss_after = process.memory_info().rss
    print(f"\n5000 toggles in {loop_seconds:.2f} s ({5000 / loop_seconds:.0f} toggles/s) over 20 live sessions; "
          f"RSS before {rss_before / 2**20:.0f} MiB, peak {peak_rss / 2**20:.0f} MiB, "
          f"after {rss_after / 2**20:.0f} MiB")
    assert peak_rss - rss_before < 600 * 2**20


def test_toggle_storm_on_one_session_settles_on_the_last_mask(shared_session):
    rng = np.random.default_rng(1)
    for _ in range(1000):
        shared_session.toggle_head(int(rng.integers(LAYERS)), int(rng.integers(HEADS)))
    assert_settled_and_right(shared_session)


# -- faults -----------------------------------------------------------------------------------------
def test_exception_inside_a_forward_is_shown_and_the_next_toggle_works(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(24), task="sst2",
                     batch_size=8)
    try:
        layer = s.scorer.runner.layers[1]

        def broken_forward(module, args):
            raise RuntimeError("injected fault in layer 1")

        handle = layer.register_forward_pre_hook(broken_forward)
        s.toggle_head(0, 0)
        s.wait(30)
        assert "injected fault in layer 1" in s.score_error and not s.busy
        handle.remove()
        s.toggle_head(0, 1)
        assert_settled_and_right(s)
        assert s.score_error == ""
        assert count_pre_hooks(s.model) == 0
    finally:
        s.close()


def test_keyboard_interrupt_while_scoring_leaves_the_session_usable(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(24), task="sst2",
                     batch_size=8, live=False)
    try:
        def interrupt(number):
            if number == 1:
                raise KeyboardInterrupt

        mask = np.ones((LAYERS, HEADS), dtype=np.float32)
        mask[0, 2] = 0
        with faulty_batches(s.scorer, interrupt), pytest.raises(KeyboardInterrupt):
            s.scorer.score(mask)
        assert count_pre_hooks(s.model) == 0
        s.mask = mask
        assert_settled_and_right(s)
    finally:
        s.close()


def test_keyboard_interrupt_in_the_worker_is_reported_not_fatal(tokenizer):
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(24), task="sst2",
                     batch_size=8)
    try:
        assert s.wait(30)  # the baseline first: the interrupt is meant for a toggle's scoring
        with faulty_batches(s.scorer, lambda number: (_ for _ in ()).throw(KeyboardInterrupt())):
            s.toggle_head(1, 1)
            s.wait(30)
            assert "KeyboardInterrupt" in s.score_error
        s.toggle_head(2, 2)
        assert_settled_and_right(s)
        assert s.scorer.alive
    finally:
        s.close()


def _fake_build(model_dir, tokenizer):
    """Stand-in for the 3-minute fine-tune: saves a tiny classifier where the real build would."""
    def build(model, task, out, glue_dir=None, config=None, progress=True):
        net = tiny_model("bert")
        net.config.bertology_task = task
        net.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return {"task": task, "accuracy": 0.5}
    return build


def test_corrupt_or_partial_default_model_cache_is_detected_and_rebuilt(tmp_path, monkeypatch, tokenizer):
    from bertology_widgets.models import default_model

    monkeypatch.setenv("BERTOLOGY_CACHE_DIR", str(tmp_path))
    builds = []
    fake = _fake_build(tmp_path, tokenizer)
    monkeypatch.setattr(default_model, "finetune", lambda *a, **k: builds.append(1) or fake(*a, **k))
    folder = default_model.ensure_default_model(progress=False)
    assert default_model.cache_problem(folder) is None and len(builds) == 1
    assert default_model.ensure_default_model(progress=False) == folder and len(builds) == 1  # reused

    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated download / disk full
    assert "bytes" in default_model.cache_problem(folder)
    with pytest.warns(default_model.CorruptModelCacheWarning, match="unusable"):
        default_model.ensure_default_model(progress=False)
    assert len(builds) == 2 and default_model.cache_problem(folder) is None

    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF  # same size, flipped bits
    weights.write_bytes(bytes(data))
    assert "SHA-256" in default_model.cache_problem(folder)

    (folder / default_model.MANIFEST).unlink()  # an interrupted build never wrote its manifest
    assert "missing" in default_model.cache_problem(folder)
    with pytest.warns(default_model.CorruptModelCacheWarning):
        default_model.ensure_default_model(progress=False)
    assert len(builds) == 3 and default_model.cache_problem(folder) is None


def test_glue_file_with_a_bad_row_names_file_and_line(tmp_path):
    from bertology_widgets.glue import load_glue

    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood film \t1\nno label here\n")
    with pytest.raises(ValueError, match=r"SST-2/dev\.tsv.*line 3"):
        load_glue("sst2", "validation", glue_dir=tmp_path)


def test_checkpoint_of_an_unsupported_architecture_fails_at_load_time(tmp_path):
    from transformers import T5Config

    from bertology_widgets.models.loading import load_model

    T5Config(d_model=16, num_layers=1, num_heads=2, d_kv=8, d_ff=32, vocab_size=100).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match="BERT.*GPT-2"):
        load_model(tmp_path)


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["good 😀 film 🎬", "فيلم رائع جدا", "שלום עולם", "tab\there\x00\x07 bell\u200b"])
def test_unusual_text_is_analysed(shared_session, text):
    s = shared_session
    s.text = text
    assert s.wait(60)
    assert s.capture_error == "" and s.tokens[0] == "[CLS]"
    assert s.attention.shape == (len(s.tokens), len(s.tokens))
    np.testing.assert_allclose(s.attention.sum(-1), 1, atol=1e-5)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused_visibly(shared_session, text):
    s = shared_session
    s.text = "good " * 10_000  # truncated: a notice on screen
    assert s.wait(60) and s.notice
    s.text = text
    assert "empty" in s.capture_error
    # Nothing of the previous text stays on screen.
    assert s.tokens == [] and s.attention is None and s.hidden_states is None
    assert not s.truncated and s.notice == "" and s.example_prediction is None
    s.example_index = 1
    assert s.wait(60) and s.capture_error == "" and s.tokens[0] == "[CLS]"


def test_very_long_text_is_truncated_with_a_notice(shared_session):
    s = shared_session
    s.text = "good " * 10_000
    assert s.wait(60)
    assert s.truncated and "truncated" in s.notice
    assert len(s.tokens) == s.max_length
    s.example_index = 2
    assert s.wait(60)
    assert not s.truncated and s.notice == ""


@pytest.mark.parametrize("mask", [
    np.full((LAYERS, HEADS), np.nan), np.ones((HEADS, LAYERS)), np.ones((LAYERS, HEADS, 1)),
    np.array([["x"] * HEADS] * LAYERS), np.full((LAYERS, HEADS), 1 + 0j), [[1, 1], [1]],
])
def test_bad_masks_leave_the_session_unchanged(shared_session, mask):
    before = shared_session.mask.copy()
    with pytest.raises(TraitError, match="mask"):
        shared_session.mask = mask
    np.testing.assert_array_equal(shared_session.mask, before)


def test_integer_and_boolean_masks_are_accepted(shared_session):
    shared_session.mask = np.ones((LAYERS, HEADS), dtype=bool)
    shared_session.mask = np.ones((LAYERS, HEADS), dtype=np.int64)
    assert shared_session.mask.dtype == np.float32


# -- nothing lost -------------------------------------------------------------------------------
def test_a_crash_during_save_never_leaves_a_half_written_state(shared_session, tmp_path, monkeypatch):
    s = shared_session
    path = tmp_path / "state.json"
    s.reset_mask()
    s.save_state(path)
    good = path.read_text()

    import bertology_widgets.runtime.files as atomic_io  # where every atomic write lives

    def crash(src, dst):
        raise OSError("power cut during rename")

    s.toggle_head(0, 3)
    monkeypatch.setattr(atomic_io.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        s.save_state(path)
    monkeypatch.undo()
    assert path.read_text() == good  # the old state is intact
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
    s.load_state(path)
    assert (s.mask == 1).all()


def test_a_half_written_state_file_is_refused(shared_session, tmp_path):
    s = shared_session
    path = tmp_path / "state.json"
    s.save_state(path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    before = s.mask.copy()
    with pytest.raises(ValueError, match="not a readable session file"):
        s.load_state(path)
    np.testing.assert_array_equal(s.mask, before)


def test_state_with_a_bad_mask_is_refused_whole(shared_session, tmp_path):
    s = shared_session
    s.save_state(tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    data["mask"][0][0] = float("nan")
    data["layer"] = 2
    (tmp_path / "s.json").write_text(json.dumps(data))
    before = (s.mask.copy(), s.layer)
    with pytest.raises(ValueError, match="non-finite"):
        s.load_state(tmp_path / "s.json")
    np.testing.assert_array_equal(s.mask, before[0])
    assert s.layer == before[1]
