"""``bertology bench --lm --json`` runs on a tiny saved language model and prints every figure (never timed here)."""

from __future__ import annotations

import json

from reference import shared_lm

from bertology_widgets.benchmark.lm_live import spread_layers
from bertology_widgets.cli import main

FIGURES = {"lazy_imports_s", "load_s", "full_pass_s", "first_estimate_median_s", "exact_median_s",
           "exact_to_full_pass", "peak_scoring_mb", "model_mb", "cache_mb", "precision", "n", "timed_layers"}


def test_bench_lm_json_prints_every_figure(tmp_path, tokenizer, capsys):
    folder = tmp_path / "gpt2-lm"
    shared_lm("gpt2").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert main(["bench", "--lm", "--model", str(folder), "--max-examples", "6", "--repeats", "1", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert FIGURES <= set(result)
    assert result["n"] == 6 and result["precision"] == "fp32" and result["timed_layers"] == [0, 1, 2]
    assert all(result[k] > 0 for k in ("load_s", "full_pass_s", "exact_median_s", "exact_to_full_pass", "model_mb"))
    assert result["first_estimate_median_s"] <= result["exact_median_s"]
    assert "UD English-EWT test" in captured.err


def test_the_timed_layers_are_spread_from_the_first_to_the_last():
    assert spread_layers(30) == [0, 6, 12, 17, 23, 29]
    assert spread_layers(3) == [0, 1, 2]
