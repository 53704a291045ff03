"""Loading stays on the safe defaults: no checkpoint code runs, unsupported families are refused by name."""

from __future__ import annotations

import json

import pytest

from bertology_widgets.architectures import UnsupportedArchitectureError
from bertology_widgets.models import load_model
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
