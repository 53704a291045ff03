"""Layer probes: the pipeline's task row on a separable synthetic task, the centre of gravity, the LayerProbe view."""

from __future__ import annotations

import numpy as np
import pytest
from reference import HEADS, LAYERS, shared_model

from bertology_widgets.analyses.linear_probes import DEFAULT_L2, centre_of_gravity
from bertology_widgets.analyses.pipeline import pipeline_probe
from bertology_widgets.analyses.probe import ProbeResult, l2_from_C, layer_probe, subsample
from bertology_widgets.glue import Example
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets.layer_probe import LayerProbe

WORDS = "bad great awful film movie plot actors boring brilliant dull fun charming mess story".split()


def good_or_not(n: int, seed: int) -> list:
    """Random reviews; the label is whether the word "good" appears (separable from the tokens alone)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(3, 10))))
        label = int(rng.integers(2))
        if label:
            words.insert(int(rng.integers(len(words) + 1)), "good")
        out.append(Example(" ".join(words), None, label, i))
    return out


def test_centre_of_gravity_is_the_pipelines_over_the_cumulative_gains():
    accuracy, cumulative = np.array([0.5, 0.7, 0.6, 0.9, 0.85]), np.array([0.5, 0.6, 0.55, 0.8, 0.8])
    result = ProbeResult(accuracy=accuracy, majority_baseline=0.5, cumulative=cumulative,
                         mix_weights=np.array([0.1, 0.2, 0.3, 0.4, 0.0]))
    np.testing.assert_allclose(result.gains, np.diff(accuracy))  # the per-layer probes' gains, for reading
    # Delta(l) = P(l) - P(l - 1) = 0.1, -0.05, 0.25, 0.0, taken as they are (a loss pulls the centre away)
    assert result.center_of_gravity == pytest.approx((1 * 0.1 - 2 * 0.05 + 3 * 0.25) / (0.1 - 0.05 + 0.25))
    assert result.center_of_gravity == centre_of_gravity(cumulative)
    assert result.expected_layer == pytest.approx(1 * 0.2 + 2 * 0.3 + 3 * 0.4)
    falling = ProbeResult(accuracy=np.array([0.9, 0.8, 0.8]), majority_baseline=0.5,
                          cumulative=np.array([0.9, 0.8, 0.8]))
    assert np.isnan(falling.center_of_gravity)  # no gain in all
    bare = ProbeResult(accuracy=accuracy, majority_baseline=0.5)
    assert np.isnan(bare.center_of_gravity) and np.isnan(bare.expected_layer)


def test_C_maps_to_the_pipelines_l2(monkeypatch, tokenizer):
    assert l2_from_C(None, 500) == DEFAULT_L2
    assert l2_from_C(0.5, 200) == pytest.approx(1 / 100)
    with pytest.raises(ValueError, match="C must be positive"):
        l2_from_C(0.0, 10)
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr("bertology_widgets.analyses.probe.pipeline_probe", spy)
    with pytest.raises(RuntimeError, match="stop"):
        layer_probe(shared_model("bert"), tokenizer, good_or_not(50, seed=1), good_or_not(10, seed=2), C=0.5,
                    max_train=40)
    assert seen["l2"] == pytest.approx(1 / (0.5 * 40)) and seen["max_task_train"] is None


def test_the_layer_probe_is_the_pipelines_task_row(tokenizer):
    """One computation: layer_probe's numbers are pipeline_probe's "task" row on the same subsets, exactly."""
    model = shared_model("bert")
    train_pool, dev_pool = good_or_not(120, seed=5), good_or_not(60, seed=6)
    mask = np.ones((LAYERS, HEADS))
    mask[1, :2] = 0
    probe = layer_probe(model, tokenizer, train_pool, dev_pool, mask, "mean", max_train=80, seed=3, max_dev=40,
                        batch_size=16)
    train, dev = subsample(train_pool, 80, seed=3), subsample(dev_pool, 40, seed=4)
    pipeline = pipeline_probe(model, tokenizer, ("task",), task_train=train, task_test=dev, mask=mask,
                              max_task_train=None, task_pooling="mean", batch_size=16)  # default l2 = C=None
    np.testing.assert_array_equal(probe.accuracy, pipeline.accuracy[0])
    np.testing.assert_array_equal(probe.cumulative, pipeline.cumulative[0])
    np.testing.assert_array_equal(probe.mix_weights, pipeline.mix_weights[0])
    np.testing.assert_equal(probe.center_of_gravity, pipeline.centre_of_gravity[0])
    np.testing.assert_equal(probe.expected_layer, pipeline.expected_layer[0])
    assert probe.majority_baseline == pipeline.majority[0]
    assert (probe.n_train, probe.n_dev, probe.pooling, probe.heads_masked) == (80, 40, "mean", 2)
    np.testing.assert_array_equal(probe.mask, pipeline.mask)
    again = ProbeResult.from_pipeline(pipeline, seconds=probe.seconds)
    for name in ("accuracy", "cumulative", "mix_weights", "mask"):
        np.testing.assert_array_equal(getattr(again, name), getattr(probe, name))
    assert (again.n_train, again.n_dev, again.pooling, again.seconds) == (80, 40, "mean", probe.seconds)


def test_probe_reads_a_separable_label_and_respects_the_mask(tokenizer):
    model = shared_model("bert")
    train, dev = good_or_not(200, seed=1), good_or_not(80, seed=2)
    result = layer_probe(model, tokenizer, train, dev, pooling="mean", max_train=150)
    assert result.accuracy.shape == (LAYERS + 1,) and result.n_train == 150 and result.n_dev == 80
    assert 0.4 <= result.majority_baseline <= 0.6
    assert result.accuracy.max() > 0.8  # well above chance
    np.testing.assert_allclose(result.gains, np.diff(result.accuracy))
    assert result.heads_masked == 0 and result.seconds > 0
    fractions = []
    mask = np.ones((LAYERS, HEADS))
    mask[0] = 0
    masked = layer_probe(model, tokenizer, train, dev, mask=mask, pooling="mean", max_train=150,
                         progress=lambda done, total: fractions.append(done / total))
    assert masked.heads_masked == HEADS
    assert masked.accuracy[0] == result.accuracy[0]  # the embeddings come before any mask
    assert fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)


def test_probe_refuses_regression_and_one_class(tokenizer):
    model = shared_model("bert")
    scores = [Example("a good film", None, 3.4, 0), Example("a dull plot", None, 1.2, 1)]
    with pytest.raises(ValueError, match="classification tasks only"):
        layer_probe(model, tokenizer, scores, scores)
    same = [Example("good", None, 1, i) for i in range(4)]
    with pytest.raises(ValueError, match="two classes"):
        layer_probe(model, tokenizer, same, same)


def test_subsample_is_seeded_and_keeps_order():
    items = list(range(50))
    picked = subsample(items, 10, seed=3)
    assert picked == subsample(items, 10, seed=3) == sorted(picked) and len(set(picked)) == 10
    assert subsample(items, None, 0) == subsample(items, 80, 0) == items


@pytest.fixture()
def session(tokenizer):
    s = ModelSession(tiny_model("bert", num_layers=LAYERS, num_heads=HEADS), tokenizer, tiny_examples(30),
                     task="sst2", live=False)
    yield s
    s.close()


def test_view_run_fills_the_bars_under_the_current_mask(session):
    view = LayerProbe(session, good_or_not(60, seed=4), pooling="mean", background=False)
    result = view.run()
    assert view.result is result and result.n_dev == len(session.examples)
    np.testing.assert_array_equal(view.bars.y[:, 2], result.accuracy)
    assert view.baseline.visible and view.baseline.y[0] == result.majority_baseline
    assert view.centre.visible == (not np.isnan(result.center_of_gravity))
    assert f"0 of {LAYERS * HEADS} heads masked" in view.status.value
    assert not view.running and view.progress.value == pytest.approx(1.0)
    session.toggle_head(1, 2)
    assert "mask has changed" in view.status.value
    view.button.click()  # re-runs under the new mask
    assert view.result is not result and view.result.heads_masked == 1
    assert f"1 of {LAYERS * HEADS} heads masked" in view.status.value and "mask has changed" not in view.status.value
    np.testing.assert_array_equal(view.bars.y[:, 2], view.result.accuracy)


def test_view_reports_missing_training_data(session, tmp_path):
    view = LayerProbe(session, glue_dir=tmp_path, background=True)
    view.button.click()  # no SST-2/train.tsv there: an error box, never an exception
    assert view.wait(30)
    assert "GLUE file not found" in view.error and "GLUE file not found" in session.analysis_error
    assert view.result is None and not view.button.disabled
