"""``bertology explain`` and ``bertology agreement`` on a tiny saved model: output, and bad input (exit 2, one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import run_cli, saved_tiny_model

SENTENCES = ["a fine film", "a dull mess", "i loved it", "no point at all", "charming and affecting"]


@pytest.fixture(scope="module")
def root(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("explain")
    saved_tiny_model(folder, tokenizer, seed=1, initializer_range=0.1)
    (folder / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES))
    (folder / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, 1] = 0
    np.save(folder / "mask.npy", mask)
    np.save(folder / "wrong_shape.npy", np.ones((2, 2), dtype=np.float32))
    return folder


def model(root):
    return ["--model", str(root / "model")]


def test_explain_json_has_words_scores_and_completeness(root, capsys):
    code, out, err = run_cli(["explain", *model(root), "--text", "a charming and affecting journey", "--method", "ig",
                          "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["words"] == ["a", "charming", "and", "affecting", "journey"]
    assert result["method"] == "integrated_gradients" and result["target"] in (0, 1)
    assert result["completeness_gap"] < 0.05
    assert sum(result["scores"]) == pytest.approx(result["difference"], rel=0.05, abs=0.02)


@pytest.mark.parametrize("method", ["grad_x_input", "occlusion", "rollout"])
def test_explain_prints_words_in_order(root, capsys, method):
    code, out, err = run_cli(["explain", *model(root), "--text", "a dull mess", "--method", method,
                          "--mask", str(root / "mask.npy")], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "1 heads masked" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["a", "dull", "mess"]


def test_explain_with_mean_ablation(root, capsys, monkeypatch):
    monkeypatch.delenv("BERTOLOGY_GLUE_DIR", raising=False)
    code, out, err = run_cli(["explain", *model(root), "--text", "a dull mess", "--mask", str(root / "mask.npy"),
                          "--ablation", "mean", "--task", "sst2", "--glue-dir", str(root / "glue"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["ablation"] == "mean"


def test_agreement_writes_the_table(root, capsys, monkeypatch):
    monkeypatch.delenv("BERTOLOGY_GLUE_DIR", raising=False)
    code, out, err = run_cli(["agreement", *model(root), "--task", "sst2", "--glue-dir", str(root / "glue"),
                          "--methods", "grad_x_input,rollout", "--out", str(root / "agree")], capsys)
    assert code == 0, err
    written = json.loads((root / "agree" / "agreement.json").read_text())
    assert set(written["summary"]) == {"grad_x_input", "rollout"} and written["n_examples"] == len(SENTENCES)
    assert "attention rollout" in (root / "agree" / "agreement.txt").read_text()


CASES = [
    ("empty-text", lambda r: ["explain", *model(r), "--text", "  "], ["text is empty"]),
    ("unknown-method", lambda r: ["explain", *model(r), "--text", "a film", "--method", "lime"],
     ["--method", "'lime'"]),
    ("target-out-of-range", lambda r: ["explain", *model(r), "--text", "a film", "--target", "7"],
     ["target 7 does not exist"]),
    ("mask-wrong-shape", lambda r: ["explain", *model(r), "--text", "a film", "--mask", str(r / "wrong_shape.npy")],
     ["wrong_shape.npy", "shape (2, 2)"]),
    ("mask-missing", lambda r: ["explain", *model(r), "--text", "a film", "--mask", str(r / "nope.npy")],
     ["no mask file at", "nope.npy"]),
    ("mean-ablation-without-task", lambda r: ["explain", *model(r), "--text", "a film", "--ablation", "mean"],
     ["--ablation mean", "--task"]),
    ("steps-0", lambda r: ["explain", *model(r), "--text", "a film", "--steps", "0"], ["--steps", "got 0"]),
    ("agreement-unknown-method", lambda r: ["agreement", *model(r), "--task", "sst2", "--glue-dir", str(r / "glue"),
                                            "--methods", "lime", "--out", str(r / "x")],
     ["unknown attribution method 'lime'"]),
    ("agreement-occlusion-itself", lambda r: ["agreement", *model(r), "--task", "sst2", "--glue-dir",
                                              str(r / "glue"), "--methods", "occlusion", "--out", str(r / "x")],
     ["occlusion is the reference"]),
    ("agreement-out-is-a-file", lambda r: ["agreement", *model(r), "--task", "sst2", "--out", str(r / "mask.npy")],
     ["mask.npy"]),
]


@pytest.mark.parametrize("argv, words", [pytest.param(build, words, id=name) for name, build, words in CASES])
def test_bad_input_exits_2_with_one_line(root, argv, words, capsys, monkeypatch):
    monkeypatch.delenv("BERTOLOGY_GLUE_DIR", raising=False)
    code, _, err = run_cli(argv(root), capsys)
    lines = [line for line in err.splitlines() if line.strip() and "examples)" not in line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
