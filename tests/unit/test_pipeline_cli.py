"""``bertology pipeline`` end to end on a tiny saved model, and its bad-input errors (in-process CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import saved_tiny_model

from bertology_widgets.cli import main

ROWS = [("the", "DET", 2, "det"), ("film", "NOUN", 3, "nsubj"), ("was", "AUX", 4, "cop"),
        ("good", "ADJ", 0, "root"), (".", "PUNCT", 4, "punct")]


def conllu(n: int) -> str:
    out = []
    for s in range(n):
        out.append(f"# sent_id = {s}")
        out.extend(f"{i}\t{w}\t{w}\t{p}\t_\t_\t{h}\t{r}\t_\t_" for i, (w, p, h, r) in enumerate(ROWS, start=1))
        out.append("")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("pipeline_cli")
    saved_tiny_model(root, tokenizer, seed=1, num_layers=2)
    (root / "train.conllu").write_text(conllu(12), encoding="utf-8")
    (root / "test.conllu").write_text(conllu(6), encoding="utf-8")
    lines = conllu(3).splitlines()
    lines[8] = "2\tfilm\tfilm\tNOUN"  # line 9: a row cut short
    (root / "broken.conllu").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def argv(root, *extra):
    return ["pipeline", "--model", str(root / "model"), "--train", str(root / "train.conllu"), "--test",
            str(root / "test.conllu"), "--tasks", "upos,deprel", "--out", str(root / "out"), *extra]


def test_writes_the_three_files_and_prints_the_table(files, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", str(tmp_path / "cache"))
    mask = np.ones((2, 4), dtype=np.float32)
    mask[1, :2] = 0
    np.save(files / "mask.npy", mask)
    assert main(argv(files, "--mask", str(files / "mask.npy"), "--format", "svg")) == 0
    printed = capsys.readouterr().out
    assert "2 of 8 heads masked" in printed and "upos" in printed and "deprel" in printed
    data = json.loads((files / "out" / "pipeline.json").read_text())
    assert data["tasks"] == ["upos", "deprel"] and data["layers"] == 2 and data["ablation"] == "zero"
    assert all(len(data["accuracy"][t]) == 3 for t in data["tasks"]) and data["mask"][1][:2] == [0, 0]
    assert (files / "out" / "pipeline.npz").is_file() and (files / "out" / "pipeline.svg").is_file()


@pytest.mark.parametrize("case, extra, words", [
    ("missing file", ["--test", "nowhere.conllu"], ["--test nowhere.conllu", "no such file"]),
    ("broken line", ["--train", "BROKEN"], ["broken.conllu, line 9", "10 tab-separated"]),
    ("train without test", None, ["--train and --test go together"]),
])
def test_bad_input_gets_one_line_naming_it(files, capsys, case, extra, words):
    if extra is None:
        args = ["pipeline", "--model", str(files / "model"), "--train", str(files / "train.conllu"),
                "--out", str(files / "out2")]
    else:
        extra = [str(files / "broken.conllu") if e == "BROKEN" else e for e in extra]
        args = argv(files, *extra)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertology pipeline: error:") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err


def test_an_unknown_task_is_refused_before_any_work(files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv(files, "--tasks", "upos,ner"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown probing task 'ner'; choose from upos, deprel" in err
