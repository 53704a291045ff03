"""Layer probes: the engine on a synthetic separable task, the centre of gravity, and the LayerProbe view."""

from __future__ import annotations

import numpy as np
import pytest

from bertology_widgets.glue import Example
from bertology_widgets.analyses.probe import ProbeResult, layer_probe, subsample
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets.layer_probe import LayerProbe

from bertology_widgets.testing_reference import HEADS, LAYERS, shared_model

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


def test_centre_of_gravity_follows_the_formula():
    result = ProbeResult(accuracy=np.array([0.5, 0.6, 0.55, 0.8, 0.8]), majority_baseline=0.5)
    np.testing.assert_allclose(result.gains, [0.1, -0.05, 0.25, 0.0])
    assert result.center_of_gravity == pytest.approx((1 * 0.1 + 3 * 0.25) / (0.1 + 0.25))
    assert np.isnan(ProbeResult(accuracy=np.array([0.9, 0.8, 0.8]), majority_baseline=0.5).center_of_gravity)


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
    np.testing.assert_array_equal(view.bars.y, result.accuracy)
    assert view.baseline.visible and view.baseline.y[0] == result.majority_baseline
    assert view.centre.visible == (not np.isnan(result.center_of_gravity))
    assert f"0 of {LAYERS * HEADS} heads masked" in view.status.value
    assert not view.running and view.progress.value == pytest.approx(1.0)
    session.toggle_head(1, 2)
    assert "mask has changed" in view.status.value
    view.button.click()  # re-runs under the new mask
    assert view.result is not result and view.result.heads_masked == 1
    assert f"1 of {LAYERS * HEADS} heads masked" in view.status.value and "mask has changed" not in view.status.value
    np.testing.assert_array_equal(view.bars.y, view.result.accuracy)


def test_view_reports_missing_training_data(session, tmp_path):
    view = LayerProbe(session, glue_dir=tmp_path, background=True)
    view.button.click()  # no SST-2/train.tsv there: an error box, never an exception
    assert view.wait(30)
    assert "GLUE file not found" in view.error and "GLUE file not found" in session.analysis_error
    assert view.result is None and not view.button.disabled
