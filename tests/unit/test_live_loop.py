"""The live loop at the comm level, without a browser: who assigns traits and sends messages, and how often.

The widgets get a comm that records every message it sends, with its
thread; every trait notification is recorded with its thread too (a wrapper
around ``HasTraits._notify_observers``). A live session (``live=True``) runs
its worker; everything must still happen on the main thread.
"""

from __future__ import annotations

import asyncio
import threading
import time

import comm
import numpy as np
import pytest
import traitlets
from comm.base_comm import BaseComm
from reference import faulty_batches

import bertology_widgets.session.dispatcher as dispatcher_module
import bertology_widgets.session.shown_input as shown_input_module
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import Dashboard

LAYERS, HEADS = 4, 4


class Recorder:
    """Trait notifications and comm messages, each with the thread it happened on."""

    def __init__(self):
        self.notifications, self.messages = [], []

    def clear(self):
        self.notifications.clear()
        self.messages.clear()

    def off_main(self):
        main = threading.main_thread()
        return ([n for n in self.notifications if n[-1] is not main],
                [m for m in self.messages if m[-1] is not main])

    def updates_of(self, widget, key=None):
        """``comm_msg`` updates sent for ``widget`` (that set ``key``, if given)."""
        return [m for m in self.messages if m[0] == widget.model_id and m[1].get("method") == "update"
                and (key is None or key in m[1].get("state", {}))]


@pytest.fixture()
def recorder(monkeypatch):
    record = Recorder()

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            record.messages.append((self.comm_id, data or {}, msg_type, threading.current_thread()))

    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))
    notify = traitlets.HasTraits._notify_observers

    def recording_notify(self, event):
        record.notifications.append((type(self).__name__, event.get("name"), threading.current_thread()))
        return notify(self, event)

    monkeypatch.setattr(traitlets.HasTraits, "_notify_observers", recording_notify)
    return record


@pytest.fixture()
def live_session(tokenizer):
    model = tiny_model("bert", num_layers=LAYERS, num_heads=HEADS, initializer_range=1.0)
    s = ModelSession(model, tokenizer, tiny_examples(160), task="sst2", batch_size=16, live=True)
    yield s
    s.close()


def burst(rng, n=50):
    return [(int(rng.integers(LAYERS)), int(rng.integers(HEADS))) for _ in range(n)]


def test_a_burst_of_50_toggles_stays_on_the_main_thread(recorder, live_session):
    s = live_session
    dashboard = Dashboard(s)
    assert s.wait(60)
    recorder.clear()
    start = time.perf_counter()
    for layer, head in burst(np.random.default_rng(0)):
        dashboard.mask_grid.grid.click(layer, head)  # the message a click on the grid sends
    kernel_s = time.perf_counter() - start
    assert s.wait(60)
    print(f"\nkernel-thread time for 50 toggles: {kernel_s * 1e3:.1f} ms ({kernel_s * 1e3 / 50:.2f} ms per toggle)")

    notes, messages = recorder.off_main()
    assert notes == [] and messages == [], "a worker assigned a trait or sent a widget message"
    assert len(recorder.messages) > 0 and len(recorder.notifications) > 0
    assert len(recorder.updates_of(dashboard.attention.grid.heat, "color")) <= 3
    reference = s.evaluate(s.mask)
    assert s.score == {"accuracy": reference["accuracy"]} and not s.score_is_estimate
    np.testing.assert_array_equal(s.predictions, reference["predictions"])
    assert f"{reference['accuracy']:.4f}" in dashboard.readout.html.value
    assert "exact" in dashboard.readout.html.value and s.score_error == s.capture_error == ""

    recorder.clear()  # one isolated toggle
    dashboard.mask_grid.grid.click(3, 1)
    assert s.wait(60)
    sent = [m for m in recorder.messages if m[2] == "comm_msg"]
    print(f"one isolated toggle: {len(sent)} widget messages")
    assert 0 < len(sent) <= 15
    dashboard.close()


def test_clicks_before_the_baseline_lands_stay_on_the_main_thread_and_settle_right(recorder, tokenizer):
    model = tiny_model("bert", num_layers=LAYERS, num_heads=HEADS, initializer_range=1.0)
    s = ModelSession(model, tokenizer, tiny_examples(160), task="sst2", batch_size=16, live=True)
    try:
        dashboard = Dashboard(s)  # drawn while the baseline is still on its way
        assert s.baseline_score == {} and "scoring the baseline" in dashboard.readout.html.value
        for layer, head in burst(np.random.default_rng(1), 20):
            dashboard.mask_grid.grid.click(layer, head)
        assert s.wait(60)
        notes, messages = recorder.off_main()
        assert notes == [] and messages == [], "a worker assigned a trait or sent a widget message"
        reference = s.evaluate(s.mask)
        assert s.score == {"accuracy": reference["accuracy"]} and not s.score_is_estimate
        np.testing.assert_array_equal(s.predictions, reference["predictions"])
        assert s.baseline_score == {"accuracy": s.evaluate(np.ones((LAYERS, HEADS)))["accuracy"]}
        assert f"{reference['accuracy']:.4f}" in dashboard.readout.html.value
        assert "exact" in dashboard.readout.html.value and s.score_error == s.capture_error == ""
        dashboard.close()
    finally:
        s.close()


def test_analyses_and_the_probe_stay_on_the_main_thread(recorder, live_session):
    s = live_session
    dashboard = Dashboard(s)
    dashboard.panels.selected_index = 0  # the importance panel is open, so it redraws
    assert s.wait(60)
    recorder.clear()
    rng = np.random.default_rng(1)
    dashboard.importance.importance_button.click()
    for layer, head in burst(rng, 10):
        s.toggle_head(layer, head)
    assert s.wait(120, analysis=True)
    assert s.importance is not None and s.analysis_error == ""
    s.compute_masking_curve(max_examples=32, masking_amount=0.25, masking_threshold=0.5, random_seeds=(0,))
    for layer, head in burst(rng, 10):
        s.toggle_head(layer, head)
    assert s.wait(120, analysis=True)
    assert s.curve and s.analysis_error == ""

    dashboard.panels.selected_index = 2
    probe = dashboard.probe
    probe.train_examples = tiny_examples(60, seed=5)
    probe.button.click()
    assert probe.running
    for layer, head in burst(rng, 10):
        s.toggle_head(layer, head)
    assert probe.wait(120) and s.wait(60)
    assert s.probe is not None and probe.result is s.probe and s.analysis_error == ""
    np.testing.assert_array_equal(probe.bars.y[:, 2], s.probe.accuracy)

    notes, messages = recorder.off_main()
    assert notes == [] and messages == [], "a worker assigned a trait or sent a widget message"
    dashboard.close()


def test_wait_applies_queued_results_on_the_main_thread(live_session):
    s = live_session
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[1, 2] = 0
    s.mask = mask
    deadline = time.monotonic() + 60
    while s.busy and s._dispatcher.pending() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # the worker finished, but nobody applied its results yet
    assert s.busy and s._dispatcher.pending() > 0
    assert s.wait(5)
    assert s._dispatcher.pending() == 0 and not s.busy
    np.testing.assert_array_equal(s.scored_mask, mask)


def test_in_a_kernel_results_arrive_through_the_event_loop(tokenizer, monkeypatch):
    """The session's own thread runs an event loop, as a kernel's does; results arrive through it, no wait().

    The "kernel" is a thread of its own: in the full suite the browser tests' Playwright keeps an event loop
    running on pytest's main thread, where another loop cannot run.
    """
    loop = asyncio.new_event_loop()
    monkeypatch.setattr(dispatcher_module, "kernel_event_loop", lambda: loop)
    outcome = {}

    def kernel():
        s = ModelSession(tiny_model("bert", num_layers=LAYERS, num_heads=HEADS, initializer_range=1.0), tokenizer,
                         tiny_examples(48), task="sst2", batch_size=16)
        try:
            outcome["loop"] = s._dispatcher.loop
            s.toggle_head(0, 1)
            s.text = "a charming and funny film"

            async def until_settled():
                while not s.settled():
                    await asyncio.sleep(0.01)

            loop.run_until_complete(asyncio.wait_for(until_settled(), 60))  # no wait(): the loop applies
            outcome["token"], outcome["score"] = s.tokens[1], dict(s.score)
            outcome["expected"] = {"accuracy": s.evaluate()["accuracy"]}
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            outcome["error"] = exc
        finally:
            s.close()
            loop.close()

    thread = threading.Thread(target=kernel, name="kernel")
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["loop"] is loop and outcome["token"] == "a" and outcome["score"] == outcome["expected"]


@pytest.fixture()
def count_captures(monkeypatch):
    calls = []
    real = shown_input_module.capture

    def counting(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(shown_input_module, "capture", counting)
    return calls


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("live", [False, True], ids=["sync", "live"])
def test_choosing_an_example_runs_one_capture(tokenizer, count_captures, pair, live):
    s = ModelSession(tiny_model("bert", num_layers=LAYERS, num_heads=HEADS), tokenizer,
                     tiny_examples(24, pair=pair), task="mrpc" if pair else "sst2", batch_size=8, live=live)
    try:
        count_captures.clear()
        s.example_index = 5
        assert s.wait(30)
        assert len(count_captures) == 1
        assert s.text == s.examples[5].text_a and s.text_pair == s.examples[5].text_b
        s.toggle_head(1, 1)
        assert s.wait(30) and len(count_captures) == 2
        s.toggle_head(1, 1)  # back again: from the capture cache, no model run
        assert s.wait(30) and len(count_captures) == 2
        if live:
            assert set(count_captures) == {"bertology-live-scorer"}
    finally:
        s.close()


def test_a_burst_runs_one_capture(tokenizer, count_captures, live_session):
    s = live_session
    assert s.wait(60)  # the opening capture (and baseline) are in: what follows counts the burst's alone
    count_captures.clear()
    for layer, head in burst(np.random.default_rng(3)):
        s.toggle_head(layer, head)
    assert s.wait(60)
    assert len(count_captures) <= 2  # one, or two if the worker started before the burst ended


def test_errors_stay_with_their_source(live_session):
    s = live_session
    s.text = "   "
    assert "empty" in s.capture_error and s.score_error == ""

    def boom(number):
        raise RuntimeError("injected fault")

    with faulty_batches(s.scorer, boom):
        s.toggle_head(0, 0)
        s.wait(30)
        assert "injected fault" in s.score_error and "empty" in s.capture_error
    s.text = "good fun"
    s.wait(30)  # False: the score failed; but the capture recovered ...
    assert s.capture_error == "" and "injected fault" in s.score_error  # ... scoring has not yet
    s.toggle_head(0, 0)
    assert s.wait(30) and s.score_error == ""


def test_score_lru_clear_forgets_every_mask():
    from bertology_widgets.session.live import ScoreLRU

    lru = ScoreLRU(size=4)
    masks = [np.ones((2, 3), dtype=np.float32), np.zeros((2, 3), dtype=np.float32)]
    for i, mask in enumerate(masks):
        lru.put(mask, (float(i), None))
    assert len(lru) == 2 and lru.get(masks[1]) == (1.0, None)
    lru.clear()
    assert len(lru) == 0 and lru.get(masks[0]) is None and lru.get(masks[1]) is None
