"""``bertology lens`` and ``bertology roles --task lm`` on tiny saved language models: output, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import run_cli

from bertology_widgets.testing import tiny_lm, tiny_model

LAYERS, HEADS = 3, 4


@pytest.fixture(scope="module")
def root(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("lens")
    for name, model in (("gpt2", tiny_lm("gpt2")), ("bert", tiny_lm("bert")), ("classifier", tiny_model("gpt2"))):
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[2, 1] = 0
    np.save(folder / "mask.npy", mask)
    np.save(folder / "wrong_shape.npy", np.ones((2, 2), dtype=np.float32))
    return folder


@pytest.mark.parametrize("name", ["gpt2", "bert"])
def test_json_has_tokens_top_tokens_and_final_rank_in_their_shapes(root, capsys, name):
    text = "a charming [MASK] film" if name == "bert" else "a charming film"
    code, out, err = run_cli(["lens", "--model", str(root / name), "--text", text, "--json", "--top-k", "3"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["tokens"][:2] == ["[CLS]", "a"]
    pos = len(result["tokens"])
    assert np.array(result["top_tokens"]).shape == (LAYERS + 1, pos, 3)
    assert all(isinstance(t, str) for t in np.array(result["top_tokens"]).ravel())
    ranks = np.array(result["final_rank"])
    assert ranks.shape == (LAYERS + 1, pos) and (ranks[-1] == 1).all() and (ranks >= 1).all()
    assert result["kind"] == ("masked" if name == "bert" else "causal")


def test_the_mask_changes_only_the_rows_after_its_layer(root, capsys):
    args = ["lens", "--model", str(root / "gpt2"), "--text", "a charming film", "--json"]
    plain = json.loads(run_cli(args, capsys)[1])
    masked = json.loads(run_cli(args + ["--mask", str(root / "mask.npy")], capsys)[1])
    assert masked["top_probs"][:3] == plain["top_probs"][:3]
    assert masked["top_probs"][3] != plain["top_probs"][3]


def test_the_table_shows_a_row_per_layer_and_the_final_prediction(root, capsys):
    code, out, err = run_cli(["lens", "--model", str(root / "gpt2"), "--text", "a charming film"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "[CLS]" in lines[1] and "charming" in lines[1]
    assert [line.split("|")[0].strip() for line in lines[3:3 + LAYERS + 1]] == ["emb", "0", "1", "2"]
    assert lines[-1].startswith("final prediction at the last position")


@pytest.mark.parametrize("argv, message", [
    (["--model", "{root}/classifier", "--text", "a film"], "needs a language-model head"),
    (["--model", "{root}/missing", "--text", "a film"], "missing"),
    (["--text", "a film"], "--model"),
    (["--model", "{root}/gpt2", "--text", "  "], "empty"),
    (["--model", "{root}/gpt2", "--text", "good " * 200], "at most 128"),
    (["--model", "{root}/gpt2", "--text", "a film", "--mask", "{root}/wrong_shape.npy"], "shape"),
])
def test_bad_input_gets_one_line_and_exit_2(root, capsys, argv, message):
    code, out, err = run_cli(["lens", *[a.format(root=root) for a in argv]], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and err.startswith("bertology lens: error:")


def test_roles_task_lm_writes_induction_and_the_in_context_loss(root, tmp_path, capsys):
    code, out, err = run_cli(["roles", "--task", "lm", "--model", str(root / "gpt2"), "--out", str(tmp_path),
                          "--max-examples", "8"], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "head_roles.json").read_text())
    assert np.array(data["induction"]).shape == (LAYERS, HEADS)
    assert data["in_context_loss"] > 0 and data["n_examples"] == 8
    assert "UD English-EWT test texts" in out and "Induction" in out
