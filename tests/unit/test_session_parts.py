"""Each part of a session on its own, without a session: it owns its traits and gets callables, not the session."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from traitlets import HasTraits, Int, TraitError, observe

from bertology_widgets.core.bound import bind
from bertology_widgets.session.analysis import AnalysisData, AnalysisResults, AnalysisRunner
from bertology_widgets.session.dispatcher import Dispatcher
from bertology_widgets.session.explanation_part import ExplanationPart, ShownForExplanation
from bertology_widgets.session.head_analyses import HeadAnalyses, ShownText
from bertology_widgets.session.jobs import Lane, LatestWorker
from bertology_widgets.session.live import LiveScorer
from bertology_widgets.session.live_score import LiveScore
from bertology_widgets.session.part import Forwarding, SessionPart, mirror, part_traits
from bertology_widgets.session.pipeline_part import PipelinePart
from bertology_widgets.session.shown_input import ShownInput, ShownState
from bertology_widgets.testing import tiny_examples, tiny_model

TEXT = "a charming and affecting journey"


# -- the part protocol ---------------------------------------------------------------------
class Counter(SessionPart):
    count = Int(0)
    twice = Int(0)

    @observe("count")
    def _double(self, change):  # a part's own reaction: it writes its own traits
        self.twice = 2 * change["new"]


class Facade(HasTraits):
    count = mirror(Counter, "count")
    twice = mirror(Counter, "twice")
    seen: list

    @observe("count", "twice")
    def _record(self, change):
        self.seen.append((change["name"], self.count, self.twice))


def test_a_part_publishes_together_and_the_facade_mirrors_it_both_ways():
    facade = Facade()
    facade.seen = []
    part = Counter(hold=facade.hold_trait_notifications)
    assert part_traits(Counter) == ["count", "twice"]
    forwarding = Forwarding(part, facade, part_traits(Counter))
    part.publish(count=3)
    # the facade's observers ran once everything published together had landed
    assert (facade.count, facade.twice) == (3, 6) and all(seen[1:] == (3, 6) for seen in facade.seen)
    facade.count = 5  # a write to the mirror is the part's
    assert (part.count, part.twice, facade.twice) == (5, 10, 10)
    forwarding.unlink()
    part.publish(count=1)
    assert facade.count == 5


def test_a_mirror_validates_as_the_part_does():
    class Bounded(SessionPart):
        value = Int(0, min=0)

    class Front(HasTraits):
        value = mirror(Bounded, "value")

    part, front = Bounded(), Front()
    Forwarding(part, front, ["value"])
    with pytest.raises(TraitError):
        front.value = -1
    assert front.value == part.value == 0


def test_a_lane_drops_stale_work_and_hands_results_to_the_owner_thread():
    dispatcher = Dispatcher(loop=None)
    lane, got = Lane(dispatcher.post), []
    first = lane.request()
    second = lane.request()
    assert not lane.is_current(first) and lane.is_current(second)
    worker = threading.Thread(target=lambda: [lane.deliver(g, got.append, g) for g in (first, second)])
    worker.start()
    worker.join()
    assert got == []  # nothing runs off the owner thread
    dispatcher.drain()
    assert got == [second]
    lane.close()
    lane.deliver(second, got.append, "late")
    dispatcher.drain()
    assert got == [second] and not lane.is_current(lane.generation)


def test_a_latest_worker_runs_the_newest_job_and_skips_the_ones_it_replaced():
    release, ran = threading.Event(), []

    def run(job):
        if job == "first":
            release.wait(10)
        ran.append(job)

    worker = LatestWorker(run, "test-worker")
    worker.submit("first")
    for job in ("second", "third"):
        worker.submit(job)
    release.set()
    Dispatcher(loop=None).wait(lambda: not worker.pending(), 10)
    worker.close()
    assert ran in (["first", "third"], ["third"])


# -- the parts on a tiny model -----------------------------------------------------------------
@pytest.fixture(scope="module")
def setting(tokenizer):
    bound = bind(tiny_model("bert", initializer_range=1.0), tokenizer, "sst2")
    eval_set = bound.encode(tiny_examples(16), 64)
    labels = eval_set.require_labels()
    lock = threading.RLock()
    scorer = LiveScorer(bound, eval_set, lock, batch_size=8)
    yield bound, eval_set, labels, lock, scorer
    scorer.close()


def test_live_score_owns_the_score_and_busy(setting):
    _bound, _eval_set, labels, _lock, scorer = setting
    scored = []
    mask = np.ones(scorer.shape, dtype=np.float32)
    live = LiveScore(scorer, on_scored=lambda: scored.append(1), current_mask=lambda: mask, baseline_key=dict)
    assert np.array_equal(live.labels, labels) and live.score == {} and not live.busy
    live.open_baseline(background=False)
    assert live.baseline_score and live.score == live.baseline_score and live.flipped == [] and scored
    masked = mask.copy()
    masked[0] = 0
    generation = scorer.supersede()
    live.rescore(masked)  # not live: scored at once
    assert np.array_equal(live.scored_mask, masked) and not live.busy and live.progress == 1.0
    live.on_result(generation, (mask, {"accuracy": -1.0}, live.predictions))  # stale: dropped
    assert live.score["accuracy"] >= 0


def test_shown_input_captures_what_it_is_told_to_show(setting):
    bound, _eval_set, _labels, lock, scorer = setting
    state = ShownState(TEXT, None, np.ones(scorer.shape, dtype=np.float32), -1, 1, 2)
    shown_calls = []
    shown = ShownInput(lambda: state, bound, lock, 64, worker=scorer, is_live=lambda: False,
                       baseline_predictions=lambda: None, is_regression=False, notices=lambda: ["a notice"],
                       on_shown=lambda: shown_calls.append(1))
    shown.recapture()
    assert shown.tokens[1:-1] == TEXT.split() and shown.attention.shape == (7, 7) and shown_calls
    assert np.array_equal(shown.attention, shown.current.attentions[1, 2]) and shown.notice == "a notice"
    assert shown.example_label is None and shown.example_prediction in (0, 1)
    state = state._replace(text="   ")
    shown.recapture()
    assert shown.tokens == [] and shown.attention is None and shown.capture_error


def analysis_data(tokenizer, bound, eval_set):
    return AnalysisData(tokenizer, tiny_examples(16), eval_set, "sst2", ["negative", "positive"],
                        bound.shape, 8, 64)


def test_the_runner_and_the_results_own_their_traits(setting, tokenizer):
    bound, eval_set, _labels, lock, _scorer = setting
    dispatcher = Dispatcher(loop=None)
    runner = AnalysisRunner(dispatcher.post, dispatcher.drain, bound, lock)
    masks = []
    results = AnalysisResults(runner, analysis_data(tokenizer, bound, eval_set),
                              lambda: np.ones(bound.shape, dtype=np.float32), masks.append)
    results.compute_importance(background=False)
    assert results.importance.shape == bound.shape and runner.analysis_status == "head importance: done"
    assert not runner.analysis_busy and runner.analysis_progress == 1.0
    results.mask_least_important(2)
    assert (masks[-1] == 0).sum() == 2
    runner.run("broken", lambda model, report: 1 / 0, lambda value: None, background=False)
    assert runner.analysis_error.startswith("broken failed: ZeroDivisionError")


def test_a_closed_runner_publishes_nothing(setting):
    bound, _eval_set, _labels, lock, _scorer = setting
    dispatcher, release, applied = Dispatcher(loop=None), threading.Event(), []
    runner = AnalysisRunner(dispatcher.post, dispatcher.drain, bound, lock)
    thread = runner.run("slow", lambda model, report: release.wait(10), applied.append)
    runner.close()
    release.set()
    thread.join(10)
    dispatcher.drain()
    assert applied == [] and runner.analysis_busy  # the result of a closed session is dropped


def test_head_analyses_suggest_a_partner_and_ask_for_the_ablation(setting, tokenizer):
    bound, eval_set, _labels, lock, _scorer = setting
    dispatcher, asked = Dispatcher(loop=None), []
    runner = AnalysisRunner(dispatcher.post, dispatcher.drain, bound, lock)
    heads = HeadAnalyses(runner, analysis_data(tokenizer, bound, eval_set),
                         lambda: np.ones(bound.shape, dtype=np.float32),
                         lambda: ShownText("a good film", None, -1, None), lambda mode, means: asked.append(mode))
    assert heads.suggest_corrupted() == "a bad film"
    heads.on_text_for_patching()
    assert heads.corrupted_text == "a bad film"
    heads.ablation = "mean"  # computes the head means first (a worker), then asks for mean ablation
    assert dispatcher.wait(lambda: heads.head_means is not None and not runner.analysis_busy, 60)
    assert heads.head_means.shape[:2] == bound.shape and asked == ["mean"]


def test_the_explanation_part_explains_what_it_is_shown(setting):
    bound, _eval_set, _labels, lock, _scorer = setting
    from bertology_widgets.core.capturing import capture

    mask = np.ones(bound.shape, dtype=np.float32)
    shown = ShownForExplanation(TEXT, None, mask, capture(bound, None, TEXT, None, mask, 64), True)
    part = ExplanationPart(bound=lambda: bound, model_lock=lock, post=lambda fn, *args: fn(*args),
                           shown=lambda: shown, work_generation=lambda: 0, ablation=lambda: ("zero", None),
                           max_length=64, live=False)
    part.explain_method = "ig"  # off: nothing is computed, the name is still checked and completed
    assert part.explain_method == "integrated_gradients" and part.token_scores == {}
    with pytest.raises(TraitError, match="unknown attribution method"):
        part.explain_method = "lime"
    part.explain_method = "grad_x_input"
    part.explain = True  # its own setting: it explains at once (not live)
    assert part.token_scores["words"] == TEXT.split() and part.token_scores["method"] == "grad_x_input"
    assert part.rollout.shape[0] == bound.shape[0] and not part.explanation_busy and part.explanation_error == ""
    part.close()


def test_the_pipeline_part_says_when_its_result_is_stale(tokenizer):
    mask = np.ones((3, 4), dtype=np.float32)
    part = PipelinePart(lambda *args: None, tokenizer, lambda: mask, lambda: ([], []))
    part.mask_changed(mask)
    assert not part.pipeline_stale  # nothing computed: nothing stale
    part.publish(pipeline_mask=mask)
    part.pipeline = object.__new__(PipelinePart.class_traits()["pipeline"].klass)
    masked = mask.copy()
    masked[0, 0] = 0
    part.mask_changed(masked)
    assert part.pipeline_stale
    part.mask_changed(mask)
    assert not part.pipeline_stale
