"""``bertology evaluate --task lm`` on a tiny saved language model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import shared_lm

from bertology_widgets.analyses.lm_evaluation import evaluate_lm
from bertology_widgets.analyses.lm_texts import load_lm_texts
from bertology_widgets.cli import main


@pytest.fixture(scope="module")
def saved_lm(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("gpt2-lm")
    shared_lm("gpt2").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_evaluate_json_prints_perplexity_accuracy_tokens_and_precision(saved_lm, tokenizer, capsys):
    assert main(["evaluate", "--model", saved_lm, "--task", "lm", "--max-examples", "6", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    expected = evaluate_lm(shared_lm("gpt2"), tokenizer, load_lm_texts(max_examples=6))
    assert result["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    assert result["token_accuracy"] == pytest.approx(expected["token_accuracy"])
    assert result["tokens"] == expected["tokens"] > 0 and result["n"] == 6
    assert result["precision"] == "fp32" and result["task"] == "causal_lm"
    assert "UD English-EWT test: embedded copy (first 6 of 2077 texts)" in captured.err


def test_evaluate_under_a_mask_file_and_a_text_file(saved_lm, tokenizer, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\nA dog barked at the moon.\n", encoding="utf-8")
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1, 2] = mask[0, 0] = 0
    np.save(tmp_path / "mask.npy", mask)
    assert main(["evaluate", "--model", saved_lm, "--task", "causal_lm", "--text-file", str(texts),
                 "--mask", str(tmp_path / "mask.npy"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = evaluate_lm(shared_lm("gpt2"), tokenizer, load_lm_texts(texts), mask=mask)
    assert result["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    assert result["heads_masked"] == 2 and result["n"] == 2
    assert main(["evaluate", "--model", saved_lm, "--task", "lm", "--text-file", str(texts)]) == 0
    assert "perplexity" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--text-file", "EMPTY"], "holds no text"),
    (["--task", "masked_lm"], 'task="masked_lm" needs a masked LM head'),
    (["--mask", "MASK"], "this model has 3 layers x 4 heads"),
])
def test_evaluate_refuses_bad_lm_input_with_one_line(args, message, saved_lm, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    np.save(tmp_path / "mask.npy", np.ones((2, 2)))
    given = {"EMPTY": str(empty), "MASK": str(tmp_path / "mask.npy")}
    argv = ["evaluate", "--model", saved_lm, "--task", "lm"] + [given.get(a, a) for a in args]
    if "--task" in args:
        argv = ["evaluate", "--model", saved_lm] + args
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0]
