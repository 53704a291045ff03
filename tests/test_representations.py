"""Hidden-state analysis: norms, cosine, PCA, pooled states, and the HiddenStatesView."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets.glue import Example
from bertology_widgets.analyses.representations import layer_to_layer_cosine, pca_2d, pooled_states, token_norms
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets.hidden_states import HiddenStatesView

from bertology_widgets.testing_reference import HEADS, LAYERS, model_inputs, shared_model

TEXTS = ["good film", "a long and boring plot with dull actors and a sad ending", "fun", "great music , bad story"]


def random_states(seed=0, shape=(4, 7, 16)):
    return np.random.default_rng(seed).normal(size=shape)


def test_token_norms_and_cosine_match_a_loop():
    hs = random_states()
    hs[2, 3] = 0.0  # a zero vector: similarity 0, not NaN
    norms, cosine = token_norms(hs), layer_to_layer_cosine(hs)
    assert norms.shape == (4, 7) and cosine.shape == (3, 7)
    for layer in range(4):
        for pos in range(7):
            assert norms[layer, pos] == pytest.approx(np.sqrt(sum(v * v for v in hs[layer, pos])))
    for layer in range(3):
        for pos in range(7):
            a, b = hs[layer + 1, pos], hs[layer, pos]
            denom = np.linalg.norm(a) * np.linalg.norm(b)
            assert cosine[layer, pos] == pytest.approx(a @ b / denom if denom else 0.0)
    np.testing.assert_allclose(layer_to_layer_cosine(np.stack([hs[0], 3 * hs[0]])), 1.0)
    with pytest.raises(ValueError, match="layers \\+ 1, pos, hidden"):
        token_norms(hs[0])


def test_pca_matches_sklearn_up_to_sign_and_has_a_fixed_sign():
    from sklearn.decomposition import PCA

    x = random_states(1, (9, 16)) * np.linspace(3, 0.1, 16)
    points = pca_2d(x)
    reference = PCA(n_components=2).fit_transform(x)
    np.testing.assert_allclose(np.abs(points), np.abs(reference), atol=1e-8)
    np.testing.assert_allclose(pca_2d(-x), points, atol=1e-8)  # the sign convention, not the data's sign
    perm = np.random.default_rng(2).permutation(9)
    np.testing.assert_allclose(pca_2d(x[perm]), points[perm], atol=1e-8)
    assert (points[np.argmax(np.abs(points), axis=0), [0, 1]] > 0).all()
    np.testing.assert_array_equal(pca_2d(x[:1]), np.zeros((1, 2)))  # one token: nothing to spread
    assert (pca_2d(np.stack([x[0], x[1]]))[:, 1] == 0).all()  # two tokens: one component


def examples_of(texts):
    return [Example(text, None, i % 2, i) for i, text in enumerate(texts)]


@torch.no_grad()
def unpadded_states(model, arch, tokenizer, text):
    """Reference: ``(layers + 1, pos, hidden)`` of one text run alone (no padding anywhere)."""
    batch = model_inputs(arch, tokenizer(text, return_tensors="pt"))
    return torch.stack(model(**batch, output_hidden_states=True).hidden_states)[:, 0].numpy()


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_pooling_ignores_padding(arch, tokenizer):
    model = shared_model(arch)
    examples = examples_of(TEXTS)
    mean = pooled_states(model, tokenizer, examples, pooling="mean", batch_size=4)
    cls = pooled_states(model, tokenizer, examples, pooling="cls", batch_size=4)
    assert mean.shape == cls.shape == (LAYERS + 1, len(TEXTS), model.config.hidden_size)
    for i, text in enumerate(TEXTS):
        alone = unpadded_states(model, arch, tokenizer, text)
        np.testing.assert_allclose(mean[:, i], alone.mean(axis=1), atol=1e-5)
        # "cls": the first token of an encoder, the last token of a decoder.
        np.testing.assert_allclose(cls[:, i], alone[:, -1 if arch == "gpt2" else 0], atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        pooled_states(model, tokenizer, examples, pooling="max")


def test_masking_changes_later_layers_only(tokenizer):
    model = shared_model("bert")
    examples = examples_of(TEXTS)
    mask = np.ones((LAYERS, HEADS))
    mask[1] = 0  # every head of layer 1
    plain = pooled_states(model, tokenizer, examples, pooling="mean")
    masked = pooled_states(model, tokenizer, examples, mask=mask, pooling="mean")
    np.testing.assert_array_equal(masked[:2], plain[:2])  # embeddings and layer 0 come before the mask
    for layer in range(2, LAYERS + 1):
        assert np.abs(masked[layer] - plain[layer]).max() > 1e-3


@pytest.fixture()
def session(tokenizer):
    s = ModelSession(tiny_model("bert", num_layers=LAYERS, num_heads=HEADS), tokenizer, tiny_examples(12),
                     task="sst2", live=False)
    yield s
    s.close()


def assert_view_shows(view, session):
    hs = session.hidden_states
    np.testing.assert_allclose(view.norms.heat.color, token_norms(hs), rtol=1e-6)
    np.testing.assert_allclose(view.cosine.heat.color, layer_to_layer_cosine(hs), rtol=1e-6)
    points = pca_2d(hs[view.pca_layer])
    np.testing.assert_allclose(np.c_[view.scatter.x, view.scatter.y], points, rtol=1e-6)
    assert list(view.scatter.names) == session.tokens
    frame_rows = view.norms.overlays["selected"].y
    assert frame_rows.min() == session.layer + 1 and frame_rows.max() == session.layer + 2


def test_view_follows_example_text_and_layer(session):
    view = HiddenStatesView(session)
    assert view.pca_layer == session.layer + 1 == 1
    assert_view_shows(view, session)
    session.example_index = 5
    assert_view_shows(view, session)
    session.text = "a brilliant and charming film"
    assert session.tokens[1:3] == ["a", "brilliant"]
    assert_view_shows(view, session)
    session.layer = 2
    assert view.pca_layer == 3 and view.slider.value == 3
    assert_view_shows(view, session)
    view.slider.value = 0  # the embeddings
    assert view.pca_layer == 0 and view.pca_fig.title.endswith("emb")
    assert_view_shows(view, session)
    assert session.error == ""
    view.close()
    session.layer = 1
    assert view.pca_layer == 0  # a closed view no longer follows


def test_cosine_colours_fit_the_data():
    from bertology_widgets.widgets.hidden_states import cosine_colours

    near_one = cosine_colours(np.array([[0.93, 0.99], [0.97, 1.0]]))
    assert (near_one["min"], near_one["max"]) == (0.93, 1.0) and near_one["mid"] is None
    both = cosine_colours(np.array([[-0.2, 0.9]]))
    assert both["scheme"] == "RdBu" and both["mid"] == 0.0 and (both["min"], both["max"]) == (-0.2, 0.9)
