"""Loading stays on the safe defaults: no checkpoint code runs, unsupported families are refused by name."""

from __future__ import annotations

import json

import pytest

from bertology_widgets.core.architectures import UnsupportedArchitectureError
from bertology_widgets.models.loading import load_model
from bertology_widgets.testing import tiny_model


def test_a_checkpoint_that_needs_its_own_code_is_refused_without_running_it(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "mybert", "architectures": ["MyBert"],
        "auto_map": {"AutoConfig": "configuration_mybert.MyBertConfig",
                     "AutoModelForSequenceClassification": "modeling_mybert.MyBert"},
    }))
    ran = tmp_path / "ran"
    (tmp_path / "configuration_mybert.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("transformers asked whether to run the code"))
    with pytest.raises(UnsupportedArchitectureError) as info:
        load_model(str(tmp_path), device="cpu")
    message = str(info.value)
    assert "never runs code from a checkpoint" in message
    assert "DeBERTa-v2/v3" in message and "ModernBERT" in message
    assert not ran.exists()


@pytest.mark.parametrize("arch,attention", [("deberta-v2", "eager"), ("modernbert", "sdpa"), ("bert", "sdpa")])
def test_saved_tiny_models_load_with_the_attention_their_family_supports(arch, attention, tmp_path, tokenizer):
    tiny_model(arch).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert sorted(p.suffix for p in tmp_path.glob("model*")) == [".safetensors"]
    model, _ = load_model(str(tmp_path), device="cpu")
    assert model.config._attn_implementation == attention


def test_load_model_needs_a_name_and_says_where_the_default_model_is():
    from bertology_widgets.models.loading import load_model

    with pytest.raises(ValueError, match="default_model.load_default_or"):
        load_model(None)


def test_none_means_the_default_model_only_in_default_model(monkeypatch, tmp_path):
    from bertology_widgets import default_model

    monkeypatch.setattr(default_model, "ensure_default_model", lambda: tmp_path)
    assert default_model.resolve_model(None) == str(tmp_path)
    assert default_model.resolve_model("some/model") == "some/model"
    seen = {}
    monkeypatch.setattr(default_model, "load_model", lambda path, **kw: seen.update(path=path, **kw))
    default_model.load_default_or(None, device="cpu")
    assert seen == {"path": str(tmp_path), "device": "cpu"}


def test_minilm_dir_is_production_code_and_testing_re_exports_it():
    from bertology_widgets import models, testing

    assert testing.minilm_dir is models.minilm_dir


def test_eval_mode_restores_the_mode_the_model_was_in_even_after_an_error():
    import torch

    from bertology_widgets.models.loading import eval_mode

    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    with eval_mode(model) as same:
        assert same is model and not model[0].training
    assert model.training
    model.eval()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert not model.training
    model.train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training
