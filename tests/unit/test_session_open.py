"""Opening a live session before its baseline is scored, and the baseline shared through the results cache.

A live session returns with the shape, tokens and the shown example's
attention; the baseline arrives through the dispatcher (``wait()`` applies
it). Until then the baseline-dependent traits are empty, and a mask changed
meanwhile is scored once the baseline has landed. The baseline is stored in
the shared results cache: a second session takes it from there, sessions
that open together compute it once, and a corrupt entry is rebuilt.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import ScoreReadout


def open_session(tokenizer, **options):
    model = tiny_model("bert", initializer_range=1.0)  # the same weights each time: one cache key
    return ModelSession(model, tokenizer, tiny_examples(40), task="sst2", batch_size=8, **options)


def reference(session, mask=None):
    return evaluate(session.model, session.tokenizer, session.examples, mask, batch_size=8, task="sst2")


def baseline_entries() -> list[Path]:
    return sorted(Path(os.environ["BERTOLOGY_RESULTS_DIR"]).glob("baseline-*.json"))


def test_a_live_session_opens_before_its_baseline_and_wait_brings_it(tokenizer):
    s = open_session(tokenizer)
    try:
        readout = ScoreReadout(s)
        assert s.tokens and s.attention.shape == (len(s.tokens),) * 2  # the shown example is there at once
        assert s.baseline_score == {} and s.score == {} and s.predictions is None and s.flipped == []
        assert s.busy and not s.settled()
        assert "scoring the baseline" in readout.html.value
        assert s.wait(60)
        expected = reference(s)
        assert s.baseline_score == s.score == {"accuracy": expected["accuracy"]}
        np.testing.assert_array_equal(s.baseline_predictions, expected["predictions"])
        assert s.example_baseline_prediction == expected["predictions"][0]
        assert "exact" in readout.html.value and "scoring the baseline" not in readout.html.value
        readout.close()
    finally:
        s.close()


def test_toggles_before_the_baseline_lands_are_scored_once_it_has(tokenizer):
    s = open_session(tokenizer)
    try:
        s.toggle_head(0, 1)
        s.toggle_head(2, 3)
        s.toggle_head(0, 1)
        assert s.wait(60)
        expected, base = reference(s, s.mask), reference(s)
        assert s.masked_count == 1 and s.score == {"accuracy": expected["accuracy"]}
        np.testing.assert_array_equal(s.scored_mask, s.mask)
        assert s.baseline_score == {"accuracy": base["accuracy"]}
        assert s.flipped == np.nonzero(expected["predictions"] != base["predictions"])[0].tolist()
    finally:
        s.close()


def test_a_view_shown_under_voila_waits_for_the_baseline_and_elsewhere_does_not(tokenizer, monkeypatch):
    from bertology_widgets.widgets import Dashboard

    s = open_session(tokenizer)
    try:
        board = Dashboard(s)
        monkeypatch.delenv("VOILA_BASE_URL", raising=False)
        assert "application/vnd.jupyter.widget-view+json" in board._repr_mimebundle_()
        assert s.baseline_score == {} and not s.settled()  # JupyterLab: shown at once, the baseline follows
        monkeypatch.setenv("VOILA_BASE_URL", "/")  # what Voila sets in the kernels it starts
        assert "application/vnd.jupyter.widget-view+json" in board._repr_mimebundle_()
        assert s.settled() and s.baseline_score == {"accuracy": reference(s)["accuracy"]}
        assert "exact" in board.readout.html.value
        board.close()
    finally:
        s.close()


def test_a_non_live_session_scores_its_baseline_before_it_returns(tokenizer):
    s = open_session(tokenizer, live=False)
    try:
        assert s.settled() and s.score == s.baseline_score == {"accuracy": reference(s)["accuracy"]}
    finally:
        s.close()


def test_a_second_session_takes_its_baseline_from_the_shared_cache(tokenizer):
    first = open_session(tokenizer)
    assert first.wait(60) and not first.live.baseline_from_cache
    first.close()
    assert len(baseline_entries()) == 1
    second = open_session(tokenizer)
    try:
        assert second.wait(60) and second.live.baseline_from_cache
        assert second.baseline_score == first.baseline_score
        np.testing.assert_array_equal(second.baseline_predictions, first.baseline_predictions)
        second.toggle_head(1, 2)  # scored right whether or not the layer caches are built yet
        assert second.wait(60)
        assert second.score == {"accuracy": second.evaluate()["accuracy"]}
    finally:
        second.close()


def test_a_cached_baseline_builds_the_layer_caches_only_after_the_warm_delay(tokenizer, monkeypatch):
    from bertology_widgets.session import live_score

    first = open_session(tokenizer)
    assert first.wait(60) and first.scorer.warm  # it computed the baseline: the caches came with it
    first.close()
    monkeypatch.setattr(live_score, "WARM_DELAY_S", 3600.0)  # not due while this test runs
    second = open_session(tokenizer)
    try:
        assert second.wait(60) and second.live.baseline_from_cache
        second.example_index = 1  # a capture on the worker: it has been idle since, with the warming not due
        assert second.wait(60) and not second.scorer.warm  # the page is being drawn: nothing runs yet
        second.toggle_head(1, 2)  # scored right without the caches
        assert second.wait(60) and second.score == {"accuracy": second.evaluate()["accuracy"]}
    finally:
        second.close()
    monkeypatch.setattr(live_score, "WARM_DELAY_S", 0.0)  # due at once: the idle worker builds them unasked
    third = open_session(tokenizer)
    try:
        assert third.wait(60) and third.live.baseline_from_cache
        deadline = time.monotonic() + 60
        while not third.scorer.warm and time.monotonic() < deadline:
            time.sleep(0.05)
        assert third.scorer.warm
    finally:
        third.close()


def test_sessions_that_open_together_compute_the_baseline_once(tokenizer):
    sessions = [open_session(tokenizer) for _ in range(3)]
    try:
        assert all(s.wait(60) for s in sessions)
        assert sum(not s.live.baseline_from_cache for s in sessions) == 1
        assert len({json.dumps(s.baseline_score) for s in sessions}) == 1
    finally:
        for s in sessions:
            s.close()


@pytest.mark.parametrize("damage", ["not json", "wrong predictions"])
def test_a_corrupt_cache_entry_is_rebuilt_not_trusted(tokenizer, damage):
    first = open_session(tokenizer)
    assert first.wait(60)
    first.close()
    (entry,) = baseline_entries()
    if damage == "not json":
        entry.write_text("{ half a file")
    else:
        data = json.loads(entry.read_text())
        data["value"]["predictions"]["__ndarray__"] = [1 - p for p in data["value"]["predictions"]["__ndarray__"]]
        entry.write_text(json.dumps(data))
    second = open_session(tokenizer)
    try:
        assert second.wait(60) and not second.live.baseline_from_cache  # recomputed
        assert second.baseline_score == first.baseline_score
        np.testing.assert_array_equal(second.baseline_predictions, first.baseline_predictions)
    finally:
        second.close()
    third = open_session(tokenizer)  # the rebuilt entry is good again
    try:
        assert third.wait(60) and third.live.baseline_from_cache
    finally:
        third.close()


def test_the_bench_times_opening_cold_and_warm(tokenizer):
    from bertology_widgets.benchmark.live_scoring import time_open

    figures = time_open(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(40), "sst2")
    names = ("open", "first_capture", "baseline")
    assert set(figures) == ({f"{name}_s" for name in names} | {f"{name}_warm_s" for name in names}
                            | {"baseline_from_cache", "baseline_warm_from_cache"})
    assert figures["first_capture_s"] <= figures["open_s"] <= figures["baseline_s"]
    assert not figures["baseline_from_cache"] and figures["baseline_warm_from_cache"]


def test_closing_before_the_baseline_lands_stops_the_worker(tokenizer):
    s = open_session(tokenizer)
    s.close()
    assert not s.scorer.alive
    assert s.baseline_score == {} and s.score_error == ""
