"""The architecture table: each supported family resolves, anything else is refused by name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from reference import (
    ARCHS,
    HEAD_DIM,
    HEADS,
    HIDDEN,
    LAYERS,
    last_layer_output,
    layer_module,
    shared_model,
)
from torch import nn

from bertology_widgets.core.architectures import (
    UnsupportedArchitectureError,
    adapter_for,
    get_submodule,
    supported_architectures,
)
from bertology_widgets.core.capturing import capture
from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.pruning import prune_heads
from bertology_widgets.testing import tiny_bound

NAMES = {"bert": "BERT", "roberta": "RoBERTa", "distilbert": "DistilBERT", "electra": "ELECTRA",
         "gpt2": "GPT-2", "llama": "Llama"}


def projection_dims(module) -> tuple[int, int]:
    """``(in, out)`` of an ``nn.Linear`` or a GPT-2 ``Conv1D`` (weight stored ``(in, out)``)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return tuple(module.weight.shape)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_tiny_model_resolves_with_the_right_geometry(arch):
    model = shared_model(arch)
    adapter = adapter_for(model)
    assert adapter.name == NAMES[arch]
    assert adapter_for(getattr(model, model.base_model_prefix)) is adapter
    assert adapter.is_task_model(model)
    assert tiny_bound(model).shape == (LAYERS, HEADS) and adapter.head_dim(model) == HEAD_DIM
    assert adapter.causal == (arch in ("gpt2", "llama"))
    assert adapter.prunable == (arch != "llama")
    layers = adapter.layer_modules(model)
    assert len(layers) == LAYERS
    for layer in layers:
        assert projection_dims(adapter.out_projection(layer)) == (HEADS * HEAD_DIM, HIDDEN)
        qkv_out = sum(projection_dims(get_submodule(layer, path))[1] for path in adapter.qkv)
        assert qkv_out == 3 * HEADS * HEAD_DIM
        assert adapter.out_proj.startswith(adapter.attention_core.rpartition(".")[0])
        core = get_submodule(layer, adapter.attention_core)
        for attr in adapter.head_count_attrs:
            assert getattr(core, attr) == HEADS


@pytest.mark.parametrize("arch", ARCHS)
def test_classifier_head_reproduces_the_models_logits(arch, batch_for):
    model, batch = shared_model(arch), batch_for(arch)
    adapter = adapter_for(model)
    # the head's input is the last layer's output, before any final norm (GPT-2's ln_f, Llama's norm)
    hidden, expected = last_layer_output(model, layer_module(model, arch, LAYERS - 1), batch)
    with torch.no_grad():
        logits = adapter.classifier_head(model, hidden, batch)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def tiny_t5():
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("t5", vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1,
                                  num_decoder_layers=1, num_heads=4)
    return AutoModel.from_config(config)


class PlainModule(nn.Module):
    def __init__(self, model_type):
        super().__init__()
        self.config = SimpleNamespace(model_type=model_type)
        self.linear = nn.Linear(2, 2)


def assert_names_the_supported_architectures(error: Exception, model_type: str):
    message = str(error)
    assert isinstance(error, ValueError)
    assert repr(model_type) in message
    for name in ("BERT", "GPT-2", "RoBERTa", "DistilBERT", "ELECTRA", "Llama", "DeBERTa-v2/v3", "ModernBERT"):
        assert name in message


@pytest.mark.parametrize("make,model_type", [
    pytest.param(tiny_t5, "t5", id="tiny-t5"),
    pytest.param(lambda: PlainModule("t5"), "t5", id="plain-module-t5"),
    pytest.param(lambda: PlainModule("mamba"), "mamba", id="plain-module-mamba"),
    pytest.param(lambda: nn.Linear(2, 2), None, id="no-config"),
])
def test_unsupported_architectures_are_refused_by_name(make, model_type, tokenizer):
    model = make()
    for action in (
        lambda: adapter_for(model),
        lambda: tiny_bound(model).shape,
        lambda: mask_heads(tiny_bound(model), None).__enter__(),
        lambda: prune_heads(tiny_bound(model), None),
        lambda: capture(model, tokenizer, "Hello there."),
    ):
        with pytest.raises(UnsupportedArchitectureError) as info:
            action()
        assert_names_the_supported_architectures(info.value, model_type)


def test_supported_architectures_lists_every_family():
    listed = supported_architectures().split(", ")
    assert listed == ["BERT", "RoBERTa", "DistilBERT", "ELECTRA", "GPT-2", "GPT", "Llama", "DeBERTa-v2/v3",
                      "ModernBERT"]
