"""The small GPT-2 built from a config, and the one model cache it shares with the default model."""

from __future__ import annotations

import json
import os

import pytest

from bertology_widgets.models import default_model
from bertology_widgets.models.default_model import MANIFEST, CorruptModelCacheWarning, build_cached_model, cache_problem
from bertology_widgets.models.loading import load_model
from bertology_widgets.models.small_gpt2 import ensure_scratch_model, scratch_builder

GLUE_DIR = os.environ.get("BERTOLOGY_GLUE_DIR")


def test_unknown_config_names_the_known_ones():
    with pytest.raises(ValueError, match="gpt2-small-config"):
        scratch_builder("gpt2-huge-config")


def test_build_cached_model_builds_once_and_rebuilds_a_damaged_cache(tmp_path, tokenizer):
    from bertology_widgets.testing import tiny_model

    builds = []

    def build(staging):
        builds.append(staging)
        tiny_model("bert").save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        return {"build": {"n": len(builds)}}

    folder = tmp_path / "some-model"
    assert build_cached_model(folder, build) == folder and cache_problem(folder) is None
    assert build_cached_model(folder, build) == folder and len(builds) == 1  # reused
    assert builds[0] == tmp_path / "some-model.building" and not builds[0].exists()
    (folder / "config.json").write_text("{}")
    with pytest.warns(CorruptModelCacheWarning, match="unusable"):
        build_cached_model(folder, build)
    assert len(builds) == 2 and json.loads((folder / MANIFEST).read_text())["build"] == {"n": 2}
    build_cached_model(folder, build, rebuild=True)  # asked for: no warning
    assert len(builds) == 3 and (tmp_path / ".some-model.lock").exists()


def test_the_tiny_gpt2_is_trained_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTOLOGY_CACHE_DIR", str(tmp_path))
    calls = []
    finetune = default_model.finetune

    def counted(*args, **kwargs):
        calls.append(1)
        return finetune(*args, **kwargs)

    monkeypatch.setattr("bertology_widgets.models.finetune.finetune", counted)
    folder = ensure_scratch_model("gpt2-tiny-config", glue_dir=GLUE_DIR, max_train_examples=64, progress=False)
    assert folder == tmp_path / "gpt2-tiny-config-sst2" and cache_problem(folder) is None
    assert json.loads((folder / MANIFEST).read_text())["origin"].startswith("a tiny GPT-2")
    assert ensure_scratch_model("gpt2-tiny-config", glue_dir=GLUE_DIR, progress=False) == folder
    assert len(calls) == 1
    model, _ = load_model(str(folder))
    assert model.config.model_type == "gpt2" and model.config.n_layer == 2


@pytest.mark.parametrize("flags", [[], ["--gpt2"], ["--gpt2", "--rebuild"]])
def test_bertology_default_model_builds_notebook_04s_gpt2_when_asked(flags, monkeypatch, capsys):
    from bertology_widgets import cli
    from bertology_widgets.models import small_gpt2

    built = []
    monkeypatch.setattr(default_model, "ensure_default_model",
                        lambda glue_dir=None, rebuild=False: built.append(("default", rebuild)) or "default-folder")
    monkeypatch.setattr(small_gpt2, "ensure_scratch_model",
                        lambda name, task, glue_dir=None, rebuild=False: built.append((f"{name}-{task}", rebuild))
                        or "gpt2-folder")
    assert cli.main(["default-model", *flags]) == 0
    rebuild = "--rebuild" in flags
    assert built == [("default", rebuild)] + ([("gpt2-small-config-sst2", rebuild)] if flags else [])
    assert capsys.readouterr().out.split() == ["default-folder"] + (["gpt2-folder"] if flags else [])
