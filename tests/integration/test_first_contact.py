"""What a first-time user runs into in Python: each bad input raises one clear error naming the fix."""

from __future__ import annotations

import inspect
import json

import pytest

from bertology_widgets.glue import load_glue


def write_sst2(glue_dir, body: bytes) -> None:
    (glue_dir / "SST-2").mkdir(parents=True, exist_ok=True)
    (glue_dir / "SST-2" / "dev.tsv").write_bytes(body)


def test_capture_is_the_function_after_importing_the_session():
    from bertology_widgets import (
        ModelSession,  # noqa: F401  (it imports the capturing module)
        capture,
    )

    assert inspect.isfunction(capture) and capture.__name__ == "capture"


def test_a_header_only_tsv_names_the_file(tmp_path):
    write_sst2(tmp_path, b"sentence\tlabel\n")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'SST-2' / 'dev.tsv'} holds no examples"):
        load_glue("sst2", glue_dir=tmp_path)


def test_a_tsv_that_is_not_utf8_names_the_file_and_the_fix(tmp_path):
    write_sst2(tmp_path, "sentence\tlabel\nun film réussi\t1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"dev.tsv is not UTF-8 text \(it holds the byte 0xe9\); save it as UTF-8"):
        load_glue("sst2", glue_dir=tmp_path)


def test_a_glue_dir_that_is_a_file_says_so(tmp_path):
    (tmp_path / "glue").write_text("")
    with pytest.raises(FileNotFoundError, match=r"glue is a file, not a folder; the folder came from glue_dir= "
                                                r"\(--glue-dir on the command line\)"):
        load_glue("sst2", glue_dir=tmp_path / "glue")


@pytest.mark.parametrize("content", ['{"mask": [[1, 0], [1]]}', '[["yes", "no"]]', '[[1, {"a": 1}]]'])
def test_a_ragged_or_non_numeric_json_mask_names_the_file(tmp_path, content):
    from bertology_widgets.core.mask_files import load_mask

    (tmp_path / "m.json").write_text(content)
    with pytest.raises(ValueError, match=r"m.json must hold a \(layers, heads\) grid of numbers"):
        load_mask(tmp_path / "m.json")


def test_an_empty_model_folder_says_it_holds_no_model(tmp_path):
    from bertology_widgets.models.loading import load_model

    with pytest.raises(FileNotFoundError, match=rf"the model folder {tmp_path} has no config.json"):
        load_model(str(tmp_path))


def test_an_unknown_hub_name_offline_fails_in_one_line_without_retries(monkeypatch):
    from huggingface_hub import constants

    from bertology_widgets.models.loading import load_model

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match=r"'nobody/no-such-model' is not a local folder, and hub access "
                                                r"is off \(HF_HUB_OFFLINE\)"):
        load_model("nobody/no-such-model")


def test_the_hub_probe_names_an_unreachable_host(monkeypatch):
    import socket

    from bertology_widgets.models.loading import hub_unreachable

    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hub_unreachable("nobody/no-such-model") == \
        "the Hugging Face hub (huggingface.co) cannot be reached: Name or service not known"


@pytest.mark.parametrize("field, value", [("epochs", 0), ("epochs", -1), ("learning_rate", 0.0), ("batch_size", 0),
                                          ("max_train_examples", 0)])
def test_finetune_refuses_settings_that_train_nothing(field, value):
    from bertology_widgets.models.finetune import FinetuneConfig

    with pytest.raises(ValueError, match=rf"{field} must be"):
        FinetuneConfig(**{field: value})


def test_bench_text_output_rounds_its_figures(monkeypatch, capsys):
    from bertology_widgets.benchmark import live_scoring as bench
    from bertology_widgets.cli import main

    monkeypatch.setattr(bench, "run_benchmark", lambda *a, **k: {"task": "sst2", "n": 872,
                                                                 "exact_median_s": 1.2345678912})
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert "exact_median_s" in out and "1.235" in out and "1.2345678" not in out
    assert main(["bench", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_median_s"] == 1.2345678912


def test_the_output_check_leaves_an_existing_folder_untouched(tmp_path):
    from bertology_widgets.runtime.files import output_folder

    (tmp_path / "kept.txt").write_text("x")
    assert output_folder(tmp_path) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]
