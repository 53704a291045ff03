"""pipeline_probe on tiny random models: pooling, formulas, masking, reproducibility (unit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.linear_probes import (
    ProbeData,
    centre_of_gravity,
    expected_layer,
    score_task,
    standardise,
)
from bertology_widgets.analyses.pipeline import PipelineResult, check_tasks, pipeline_probe
from bertology_widgets.analyses.pipeline_states import (
    encode_sentences,
    encode_words,
    sentence_positions,
    unit_states,
    word_tokenizer,
)
from bertology_widgets.analyses.ud import UDSentence
from bertology_widgets.testing import tiny_examples, tiny_model

DETS, NOUNS, ADJS = ("the", "a", "this"), ("film", "movie", "plot", "story", "ending"), ("good", "dull", "charming")


def toy_treebank(n: int, seed: int) -> list[UDSentence]:
    """'the film was good .' and 'a plot was really dull .': POS and arcs a probe can learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [str(rng.choice(DETS)), str(rng.choice(NOUNS)), "was"]
        upos, heads, rels = ["DET", "NOUN", "AUX"], [1, -2, -1], ["det", "nsubj", "cop"]
        if rng.random() < 0.5:
            words.append("really"), upos.append("ADV"), heads.append(-1), rels.append("advmod")
        words += [str(rng.choice(ADJS)), "."]
        upos += ["ADJ", "PUNCT"]
        adj = len(words) - 2
        heads = [h if h >= 0 else adj for h in (1, adj, adj)] + ([adj] if len(words) == 6 else []) + [-1, adj]
        rels += ["root", "punct:x"]
        out.append(UDSentence(tuple(words), tuple(upos), tuple(heads), tuple(rels)))
    return out


TRAIN, TEST = toy_treebank(40, 0), toy_treebank(30, 1)


@pytest.fixture(scope="module")
def model():
    return tiny_model("bert", seed=3, num_layers=2)


def run(model, tokenizer, **kwargs):
    kwargs.setdefault("max_iter", 20)
    kwargs.setdefault("train", TRAIN)
    kwargs.setdefault("test", TEST)
    return pipeline_probe(model, tokenizer, ("upos", "deprel"), **kwargs)


def test_word_vectors_are_the_mean_of_their_subword_states(model, tokenizer):
    sentences = [UDSentence(("unbelievably", "charming", "films"), ("ADV", "ADJ", "NOUN"), (1, -1, 1),
                            ("advmod", "root", "nsubj"))]
    units = encode_words(tokenizer, sentences)
    states = unit_states(model, tokenizer, units)
    # A hand loop: tokenize word by word, build [CLS] pieces [SEP], average each word's span.
    pieces = [tokenizer.tokenize(w) for w in sentences[0].words]
    assert max(len(p) for p in pieces) > 1  # at least one word is split into sub-words
    ids = [tokenizer.cls_token_id] + [i for p in pieces for i in tokenizer.convert_tokens_to_ids(p)] + [
        tokenizer.sep_token_id]
    with torch.no_grad():
        hidden = torch.stack(model(torch.tensor([ids]), output_hidden_states=True).hidden_states)[:, 0]
    start = 1
    for w, p in enumerate(pieces):
        expected = hidden[:, start:start + len(p)].mean(dim=1).numpy()
        np.testing.assert_allclose(states[:, w], expected, atol=1e-5)
        start += len(p)


def test_byte_level_tokenizers_get_a_prefix_space_on_a_copy():
    from bertology_widgets.models.small_gpt2 import train_bpe_tokenizer

    bpe = train_bpe_tokenizer(["the film was good .", "a plot was really dull ."] * 30, 300)
    words = word_tokenizer(bpe)
    assert words is not bpe and not bpe.backend_tokenizer.pre_tokenizer.add_prefix_space
    ids = words([["the", "film"]], is_split_into_words=True)["input_ids"][0]
    assert "".join(words.convert_ids_to_tokens(ids)) == "\u0120the\u0120film"  # each word as in running text
    gpt2 = tiny_model("gpt2", num_layers=2)
    result = pipeline_probe(gpt2, bpe, ("upos",), train=TRAIN, test=TEST, max_iter=10)
    assert result.accuracy.shape == (1, 3) and np.isfinite(result.accuracy).all()


def test_words_past_max_length_are_dropped_and_counted(model, tokenizer):
    units = encode_words(tokenizer, TRAIN[:3], max_length=4)  # [CLS] w w [SEP]: 2 words fit per sentence
    assert units.dropped == sum(len(s) for s in TRAIN[:3]) - 6
    result = run(model, tokenizer, max_length=5)
    assert result.dropped_words > 0 and result.n_train[0] == 3 * len(TRAIN)


def test_formulas_find_a_label_written_into_layer_two_only():
    rng = np.random.default_rng(0)
    layers, n, hidden, classes = 5, 400, 12, 3

    def split():
        y = rng.integers(classes, size=n)
        states = rng.normal(size=(layers, n, hidden)).astype(np.float32)
        states[2, :, :classes] += 3 * np.eye(classes)[y]
        return states, y

    (train, train_y), (test, test_y) = split(), split()
    standardise(train, test)
    rows = np.arange(n)[:, None]
    scores = score_task(ProbeData(train, rows, train_y, test, rows, test_y, ["a", "b", "c"]))
    assert np.argmax(scores.accuracy) == 2 and scores.accuracy[2] > 0.9 > 0.5 > scores.accuracy[[0, 1, 3, 4]].max()
    assert abs(expected_layer(scores.mix_weights) - 2) < 0.3
    assert abs(centre_of_gravity(scores.cumulative) - 2) < 0.2
    assert centre_of_gravity([0.5, 0.5, 0.9, 0.9]) == pytest.approx(2.0)
    assert expected_layer([0, 0.5, 0.5]) == pytest.approx(1.5)


def test_a_mix_of_copies_of_one_layer_is_that_layer_s_probe():
    """The mix is regularised like a single layer: mixing copies of a layer gains nothing and loses nothing."""
    rng = np.random.default_rng(1)
    n, hidden, classes = 300, 40, 4
    y = rng.integers(classes, size=2 * n)
    layer = (rng.normal(size=(2 * n, hidden)) + 1.2 * np.eye(classes, hidden)[y]).astype(np.float32)
    states = np.repeat(layer[None], 4, axis=0)  # four identical layers
    train, test = states[:, :n].copy(), states[:, n:].copy()
    standardise(train, test)
    rows = np.arange(n)[:, None]
    scores = score_task(ProbeData(train, rows, y[:n], test, rows, y[n:], ["a", "b", "c", "d"]))
    assert 0.4 < scores.accuracy[0] < 1.0  # noisy enough that over-fitting would show
    np.testing.assert_allclose(scores.accuracy, scores.accuracy[0], atol=1e-9)
    np.testing.assert_allclose(scores.cumulative, scores.accuracy[0], atol=1e-9)
    assert scores.mix_accuracy == scores.cumulative[-1] and scores.mix_gamma == 1.0


def contextual(sentences):
    """Every word tagged with its sentence's noun: only attention carries that to the other words."""
    return [UDSentence(s.words, (s.words[1],) * len(s), s.heads, (s.words[1],) * len(s)) for s in sentences]


def test_masking_every_head_changes_layers_above_the_embeddings_only(tokenizer):
    model = tiny_model("bert", seed=3, num_layers=2, initializer_range=0.1)  # heads with a visible effect
    train, test = contextual(TRAIN), contextual(TEST)
    plain = run(model, tokenizer, train=train, test=test)
    masked = run(model, tokenizer, train=train, test=test, mask=np.zeros((2, 4)))
    np.testing.assert_array_equal(masked.accuracy[:, 0], plain.accuracy[:, 0])
    units = encode_words(tokenizer, TEST[:5])
    before, after = unit_states(model, tokenizer, units), unit_states(model, tokenizer, units, np.zeros((2, 4)))
    np.testing.assert_array_equal(before[0], after[0])
    assert all(np.abs(before[layer] - after[layer]).max() > 1e-3 for layer in (1, 2))
    # Without attention no word hears of its sentence's noun: every layer above 0 falls back to chance.
    assert all((masked.accuracy[:, layer] < plain.accuracy[:, layer] - 0.1).all() for layer in (1, 2))
    assert masked.heads_masked == 8 and plain.mask is None


def test_mean_ablation_goes_through_the_same_gates(model, tokenizer):
    from bertology_widgets.analyses.ablation import head_output_means

    means = head_output_means(model, tokenizer, tiny_examples(16))
    units = encode_words(tokenizer, TEST[:5])
    zero = unit_states(model, tokenizer, units, np.zeros((2, 4)))
    mean = unit_states(model, tokenizer, units, np.zeros((2, 4)), "mean", means)
    np.testing.assert_array_equal(zero[0], mean[0])
    assert np.abs(zero[1] - mean[1]).max() > 1e-4


def test_reproducible_and_independent_of_the_batch_size(model, tokenizer):
    first, again = run(model, tokenizer, batch_size=8), run(model, tokenizer, batch_size=8)
    np.testing.assert_array_equal(first.accuracy, again.accuracy)
    np.testing.assert_array_equal(first.cumulative, again.cumulative)
    other = run(model, tokenizer, batch_size=1)
    np.testing.assert_allclose(other.accuracy, first.accuracy, atol=1e-3)
    np.testing.assert_allclose(other.cumulative, first.cumulative, atol=1e-3)
    np.testing.assert_allclose(other.mix_weights, first.mix_weights, atol=1e-3)


def test_the_task_row_and_the_saved_files(model, tokenizer, tmp_path):
    result = pipeline_probe(model, tokenizer, ("upos", "task"), train=TRAIN, test=TEST,
                            task_train=tiny_examples(60, seed=1), task_test=tiny_examples(30, seed=2), max_iter=10)
    assert result.tasks == ("upos", "task") and result.accuracy.shape == (2, 3)
    assert result.n_train[1] == 60 and result.classes["task"] == ["0", "1"]
    result.save(tmp_path)
    import json

    data = json.loads((tmp_path / "pipeline.json").read_text())
    for key in ("tasks", "layers", "mask", "ablation", "accuracy", "majority", "mix_weights", "expected_layer",
                "cumulative", "centre_of_gravity"):
        assert key in data
    assert len(data["accuracy"]["upos"]) == 3 and data["layers"] == 2
    back = PipelineResult.load(tmp_path)
    np.testing.assert_array_equal(back.accuracy, result.accuracy)
    np.testing.assert_allclose(back.expected_layer, result.expected_layer)
    with np.load(tmp_path / "pipeline.npz") as arrays:
        assert arrays["accuracy"].shape == (2, 3) and list(arrays["tasks"]) == ["upos", "task"]
    result.plot(tmp_path / "chart.svg")
    assert (tmp_path / "chart.svg").read_text().lstrip().startswith("<?xml")
    assert "upos" in result.table()


def test_the_task_row_pools_sentences_as_pooled_states_does(model, tokenizer):
    from bertology_widgets.analyses.representations import pooled_states

    assert sentence_positions(5, "cls", causal=False) == [0] and sentence_positions(5, "cls", causal=True) == [4]
    assert sentence_positions(5, "mean", causal=True) == [0, 1, 2, 3, 4]
    examples = tiny_examples(12)
    for pooling in ("cls", "mean"):
        units = encode_sentences(tokenizer, examples, False, pooling=pooling)
        if pooling == "mean":  # every token of the sentence, never a padding position
            assert units.units == [[list(range(len(ids)))] for ids in units.encoded.input_ids]
        states = unit_states(model, tokenizer, units, batch_size=4)
        pooled = pooled_states(model, tokenizer, examples, pooling=pooling, batch_size=4)
        np.testing.assert_allclose(states, pooled, atol=1e-5)
    with pytest.raises(ValueError, match="pooling must be one of"):
        encode_sentences(tokenizer, examples, False, pooling="max")
    with pytest.raises(ValueError, match="task_pooling must be one of"):
        pipeline_probe(model, tokenizer, ("task",), task_train=examples, task_test=examples, task_pooling="max")
    result = pipeline_probe(model, tokenizer, ("task",), task_train=tiny_examples(40, seed=1),
                            task_test=examples, task_pooling="mean", max_iter=10)
    assert result.options["task_pooling"] == "mean"


def test_unknown_tasks_and_missing_data_are_named():
    with pytest.raises(ValueError, match="unknown probing task 'ner'; choose from upos, deprel"):
        check_tasks(["upos", "ner"])
    with pytest.raises(ValueError, match="task_train"):
        pipeline_probe(None, None, ("task",))


def test_results_are_shared_through_the_cache(model, tokenizer, monkeypatch, tmp_path):
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", str(tmp_path))
    first = run(model, tokenizer, cache=True)
    assert len(list(tmp_path.glob("pipeline-*.json"))) == 1
    again = run(model, tokenizer, cache=True)
    np.testing.assert_array_equal(first.accuracy, again.accuracy)
    run(model, tokenizer, cache=True, mask=np.zeros((2, 4)))
    assert len(list(tmp_path.glob("pipeline-*.json"))) == 2
