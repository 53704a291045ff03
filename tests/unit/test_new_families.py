"""DeBERTa-v2/v3 and ModernBERT: gating, importance, capture, layer-by-layer scoring, CLI, session.

The references here are written against transformers' own module names
(``value_proj``, the fused ``Wqkv``), not the package's architecture table.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from reference import (
    HEAD_DIM,
    HEADS,
    HIDDEN,
    INIT_STD,
    LAYERS,
    SENTENCES,
    count_pre_hooks,
    last_layer_output,
    layers_run,
)

from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.cli import main
from bertology_widgets.core.architectures import adapter_for
from bertology_widgets.core.capturing import capture
from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.layerwise import LayerwiseRunner
from bertology_widgets.core.pruning import prune_heads
from bertology_widgets.glue import Example
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import TINY_EXTRA_ARCHITECTURES, tiny_bound, tiny_examples, tiny_model

FAMILIES = TINY_EXTRA_ARCHITECTURES
NAMES = {"deberta-v2": "DeBERTa-v2/v3", "modernbert": "ModernBERT"}
MASK = torch.tensor([[0.0, 1.0, 0.5, 1.0], [1.0, 0.0, 1.0, 0.25], [1.0, 1.0, 1.0, 0.0]])


@functools.lru_cache(maxsize=None)
def family_model(arch: str):
    return tiny_model(arch, num_layers=LAYERS, num_heads=HEADS, hidden=HIDDEN, initializer_range=INIT_STD)


def batch_of(tokenizer, texts=SENTENCES) -> dict:
    batch = dict(tokenizer(list(texts), padding=True, return_tensors="pt"))
    batch.pop("token_type_ids")  # neither family has token-type embeddings here
    return batch


def value_reference(model, arch: str, mask):
    """A copy whose value projections are scaled per head: what a gate on the head's output does."""
    ref = copy.deepcopy(model)
    for layer in range(LAYERS):
        if arch == "deberta-v2":
            proj, offset = ref.deberta.encoder.layer[layer].attention.self.value_proj, 0
        else:  # ModernBERT: Wqkv rows are [Q | K | V], heads of HEAD_DIM each
            proj, offset = ref.model.layers[layer].attn.Wqkv, 2 * HIDDEN
        for head in range(HEADS):
            rows = slice(offset + head * HEAD_DIM, offset + (head + 1) * HEAD_DIM)
            proj.weight.data[rows] *= float(mask[layer, head])
            if proj.bias is not None:
                proj.bias.data[rows] *= float(mask[layer, head])
    return ref


@pytest.mark.parametrize("arch", FAMILIES)
def test_resolves_with_the_right_geometry(arch):
    model = family_model(arch)
    adapter = adapter_for(model)
    assert adapter.name == NAMES[arch] and adapter.is_task_model(model)
    assert tiny_bound(model).shape == (LAYERS, HEADS) and adapter.head_dim(model) == HEAD_DIM
    assert not adapter.causal and not adapter.prunable


@pytest.mark.parametrize("arch", FAMILIES)
def test_gating_equals_scaling_the_value_projection(arch, tokenizer):
    model, batch = family_model(arch), batch_of(tokenizer)
    with torch.no_grad():
        plain = model(**batch).logits
        with mask_heads(tiny_bound(model), MASK):
            gated = model(**batch).logits
        expected = value_reference(model, arch, MASK)(**batch).logits
    assert count_pre_hooks(model) == 0
    torch.testing.assert_close(gated, expected, atol=1e-5, rtol=1e-4)
    assert (gated - plain).abs().max() > 1e-3  # the mask really changes something


@pytest.mark.parametrize("arch", FAMILIES)
def test_classifier_head_reproduces_the_models_logits(arch, tokenizer):
    model, batch = family_model(arch), batch_of(tokenizer)
    adapter = adapter_for(model)
    hidden, expected = last_layer_output(model, adapter.layer_modules(model)[-1], batch)
    with torch.no_grad():
        logits = adapter.classifier_head(model, hidden, batch)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", FAMILIES)
def test_importance_matches_finite_differences(arch, tokenizer):
    model = family_model(arch)
    examples = tiny_examples(12, seed=2)
    base = torch.full((LAYERS, HEADS), 0.9)  # the gradient is taken there; +-eps stays inside [0, 1]
    result = head_importance(model, tokenizer, examples, base, per_example=False, batch_size=len(examples),
                             compute_entropy=False, normalize_by_layer=False, normalize_global=False,
                             task="sst2")
    batch = batch_of(tokenizer, [ex.text_a for ex in examples])
    labels = torch.tensor([ex.label for ex in examples])

    def loss(mask) -> float:
        with torch.no_grad(), mask_heads(tiny_bound(model), mask):
            logits = model(**batch).logits.double()
            return float(torch.nn.functional.cross_entropy(logits, labels))

    eps = 1e-2
    for layer, head in [(0, 1), (1, 3), (2, 0)]:
        up, down = base.clone(), base.clone()
        up[layer, head], down[layer, head] = 0.9 + eps, 0.9 - eps
        finite = abs(loss(up) - loss(down)) / (2 * eps)
        assert result.raw_importance[layer, head] == pytest.approx(finite, rel=0.03, abs=1e-6)


@pytest.mark.parametrize("arch", FAMILIES)
def test_capture_shapes_row_sums_and_masked_heads(arch, tokenizer):
    model = family_model(arch)
    mask = torch.ones(LAYERS, HEADS)
    mask[1, 2] = 0
    cap = capture(model, tokenizer, SENTENCES[1], mask=mask)
    pos = len(cap.tokens)
    assert cap.attentions.shape == (LAYERS, HEADS, pos, pos)
    assert cap.hidden_states.shape == (LAYERS + 1, pos, HIDDEN)
    np.testing.assert_allclose(cap.attentions.sum(-1), 1, atol=1e-5)
    assert model.config._attn_implementation == ("eager" if arch == "deberta-v2" else "sdpa")  # restored
    with torch.no_grad():
        direct = model(**batch_of(tokenizer, [SENTENCES[1]])).logits[0].numpy()
    unmasked = capture(model, tokenizer, SENTENCES[1])
    np.testing.assert_allclose(unmasked.logits, direct, atol=1e-5)


def test_modernbert_capture_shows_the_sliding_window_and_names_it(tokenizer):
    model = family_model("modernbert")
    cap = capture(model, tokenizer, SENTENCES[1])
    pos, half = len(cap.tokens), model.config.local_attention // 2
    distance = np.abs(np.arange(pos)[:, None] - np.arange(pos)[None, :])
    assert model.config.layer_types[:2] == ["full_attention", "sliding_attention"]
    assert (cap.attentions[0] > 0).all()  # global
    assert (cap.attentions[1][:, distance > half] == 0).all()  # local: nothing beyond the window
    assert (cap.attentions[1][:, distance <= half] > 0).all()
    assert tiny_bound(model).layer_note(0) == "global"
    assert tiny_bound(model).layer_note(1) == f"local ±{half} tokens"
    assert tiny_bound(family_model("deberta-v2")).layer_note(1) == ""


def test_deberta_capture_shows_the_disentangled_weights(tokenizer):
    """The captured weights include the relative-position terms, not only content-to-content."""
    model = family_model("deberta-v2")
    batch = batch_of(tokenizer, [SENTENCES[0]])
    cap = capture(model, tokenizer, SENTENCES[0])
    attn = model.deberta.encoder.layer[0].attention.self
    with torch.no_grad():
        h = model.deberta.embeddings(input_ids=batch["input_ids"], mask=batch["attention_mask"])
        q = attn.query_proj(h).view(1, -1, HEADS, HEAD_DIM).transpose(1, 2)
        k = attn.key_proj(h).view(1, -1, HEADS, HEAD_DIM).transpose(1, 2)
        content_only = torch.softmax(q @ k.transpose(-1, -2) / (HEAD_DIM * 3) ** 0.5, -1)[0].numpy()
    assert np.abs(cap.attentions[0] - content_only).max() > 1e-3


@pytest.mark.parametrize("arch", FAMILIES)
def test_layerwise_incremental_equals_the_full_forward(arch, tokenizer):
    model, batch = family_model(arch), batch_of(tokenizer)
    runner = LayerwiseRunner(tiny_bound(model))
    cache = runner.prepare(batch)
    mask = torch.ones(LAYERS, HEADS)
    runner.run(cache, mask)
    for layer, head in [(2, 1), (1, 0), (0, 3)]:
        mask[layer, head] = 0
        with layers_run(runner.layers) as ran:
            logits = runner.run(cache, mask)
        assert ran == list(range(layer, LAYERS))
        with torch.no_grad(), mask_heads(tiny_bound(model), mask):
            full = model(**batch).logits
        torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", FAMILIES)
def test_session_live_score_equals_full_evaluation(arch, tokenizer):
    model = tiny_model(arch, num_layers=LAYERS, num_heads=HEADS, hidden=HIDDEN, initializer_range=1.0)
    examples = tiny_examples(32, seed=4)
    session = ModelSession(model, tokenizer, examples, task="sst2", batch_size=8, live=False)
    try:
        for layer, head in [(1, 2), (0, 0), (2, 3)]:
            session.toggle_head(layer, head)
            batch = batch_of(tokenizer, [ex.text_a for ex in examples])
            with torch.no_grad(), mask_heads(tiny_bound(model), session.mask):
                full = model(**batch).logits.argmax(-1).numpy()
            np.testing.assert_array_equal(session.predictions, full)
    finally:
        session.close()


@pytest.mark.parametrize("arch,reason", [("deberta-v2", "relative-position"), ("modernbert", "Wqkv")])
def test_pruning_is_refused_with_the_reason(arch, reason):
    model = copy.deepcopy(family_model(arch))
    with pytest.raises(ValueError, match=f"pruning is not implemented for {NAMES[arch]}.*{reason}"):
        prune_heads(tiny_bound(model), MASK)


def test_deberta_with_a_convolution_is_refused_by_name():
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(family_model("deberta-v2").config)
    config.conv_kernel_size = 3
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    with pytest.raises(ValueError, match="conv_kernel_size"):
        LayerwiseRunner(tiny_bound(model))


@pytest.mark.parametrize("arch", FAMILIES)
def test_cli_evaluate_importance_and_mask(arch, tokenizer, tmp_path, capsys):
    model = family_model(arch)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    texts = [ex.text_a for ex in tiny_examples(16, seed=5)]
    unlabelled = [Example(t, None, 0, i) for i, t in enumerate(texts)]
    labels = predict(model, tokenizer, unlabelled, reduce=False).argmax(-1)
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{t}\t{label}\n" for t, label in zip(texts, labels))
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    common = ["--model", str(tmp_path / "model"), "--task", "sst2", "--glue-dir", str(tmp_path / "glue")]
    assert main(["evaluate", *common, "--json"]) == 0
    assert '"accuracy": 1.0' in capsys.readouterr().out
    assert main(["importance", *common, "--out", str(tmp_path / "imp")]) == 0
    assert main(["mask", *common, "--out", str(tmp_path / "mask"), "--masking-threshold", "0.5"]) == 0
    assert (tmp_path / "imp").is_dir() and (tmp_path / "mask").is_dir()
    reloaded = evaluate(model, tokenizer, [Example(t, None, int(y), i) for i, (t, y) in
                                           enumerate(zip(texts, labels))], task="sst2")
    assert reloaded["accuracy"] == 1.0


def test_attention_view_title_names_modernbert_local_and_global_layers(tokenizer):
    from bertology_widgets.widgets import AttentionGrid

    session = ModelSession(family_model("modernbert"), tokenizer, tiny_examples(8), task="sst2", live=False)
    try:
        view = AttentionGrid(session)
        assert view.grid.fig.title == "L0 head 0 · global: attention, query → key"
        session.layer = 1
        half = session.model.config.local_attention // 2
        assert view.grid.fig.title == f"L1 head 0 · local ±{half} tokens: attention, query → key"
    finally:
        session.close()


def test_cli_prune_refuses_before_any_work(tokenizer, tmp_path, capsys):
    family_model("modernbert").save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n")
    code = main(["prune", "--model", str(tmp_path / "model"), "--task", "sst2", "--glue-dir", str(tmp_path / "glue"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "pruning is not implemented for ModernBERT" in capsys.readouterr().err
    assert not (tmp_path / "out" / "head_importance.npy").exists()
