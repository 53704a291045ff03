"""``bertology importance / mask / prune / roles / patch`` (and ``--ablation mean``) end to end on a tiny saved
model and a tiny GLUE folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import HEADS, LAYERS, saved_tiny_model

from bertology_widgets.analyses.ablation import head_output_means
from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.head_roles import head_roles
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.analyses.masking_curve import masking_curve
from bertology_widgets.analyses.patching import patch_heads
from bertology_widgets.cli import build_parser, main
from bertology_widgets.core.bound import bind
from bertology_widgets.glue import Example, load_glue
from bertology_widgets.models.loading import load_model

SENTENCES = [
    "the movie was wonderful and moving", "a dull , lifeless mess", "i loved every minute of it",
    "the plot makes no sense at all", "brilliant acting from the whole cast", "boring",
    "an instant classic that will be remembered", "the worst film of the year , by far",
    "funny , warm and clever", "it drags on forever without a point", "hello there", "what a ride !",
]
FLAGS = ["--masking_amount", "0.25", "--masking-threshold", "0.6", "--random-seeds", "0,1"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """``(model_dir, glue_dir)``: a tiny BERT saved with its tokenizer; SST-2 dev labelled with its predictions."""
    root = tmp_path_factory.mktemp("cli")
    model = saved_tiny_model(root, tokenizer, seed=1, initializer_range=1.0)
    unlabelled = [Example(s, None, 0, i) for i, s in enumerate(SENTENCES)]
    labels = predict(model, tokenizer, unlabelled, reduce=False).argmax(-1)
    (root / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{s}\t{label}\n" for s, label in zip(SENTENCES, labels))
    (root / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return root / "model", root / "glue"


def cli(saved, command, out, *extra):
    model_dir, glue_dir = saved
    code = main([command, "--model", str(model_dir), "--task", "sst2", "--glue-dir", str(glue_dir),
                 "--out", str(out), *extra])
    assert code == 0


def api_inputs(saved):
    model, tokenizer = load_model(str(saved[0]))
    return model, tokenizer, load_glue("sst2", "validation", glue_dir=saved[1])


@pytest.mark.parametrize("name", ["importance", "mask", "prune"])
def test_subcommands_are_registered(name, capsys):
    """Each sub-command parses and prints its own usage (the top-level help mentions the words anyway)."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([name, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: bertology {name} ")


def test_a_sub_command_that_fails_to_import_is_an_error_not_a_missing_command(monkeypatch):
    from bertology_widgets import cli

    monkeypatch.setattr(cli, "SUBCOMMANDS", (*cli.SUBCOMMANDS, "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli.build_parser()


def test_importance_files_round_trip(saved, tmp_path, capsys):
    cli(saved, "importance", tmp_path, "--compat", "--dont_normalize_importance_by_layer",
        "--dont-normalize-global-importance")
    model, tokenizer, examples = api_inputs(saved)
    expected = head_importance(model, tokenizer, examples, compat=True, normalize_by_layer=False,
                               normalize_global=False)
    importance, entropy = np.load(tmp_path / "head_importance.npy"), np.load(tmp_path / "attn_entropy.npy")
    assert importance.shape == entropy.shape == (LAYERS, HEADS) and importance.dtype == np.float32
    np.testing.assert_allclose(importance, expected.raw_importance, rtol=1e-5)
    np.testing.assert_allclose(entropy, expected.entropy, rtol=1e-5)
    table = (tmp_path / "importance.txt").read_text()
    assert "Attention entropies\nlayer, head (from 0) >\t0\t1\t2\t3\nlayer 0:" in table
    assert "Head ranked by importance scores" in table and "compat" in table
    assert "Head importance scores" in capsys.readouterr().out


def test_mask_writes_curve_and_mask(saved, tmp_path):
    cli(saved, "mask", tmp_path, *FLAGS)
    model, tokenizer, examples = api_inputs(saved)
    expected = masking_curve(model, tokenizer, examples, masking_amount=0.25, masking_threshold=0.6)
    record = json.loads((tmp_path / "curve.json").read_text())
    head_mask = np.load(tmp_path / "head_mask.npy")
    assert head_mask.dtype == np.float32 and set(np.unique(head_mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(head_mask, record["final_mask"])
    np.testing.assert_array_equal(head_mask, expected.final_mask)
    assert record["original_score"] == expected.original_score and record["masking_threshold"] == 0.6
    assert [(s["heads_masked"], s["score"], s["kept"]) for s in record["steps"]] == \
        [(s["heads_masked"], s["score"], s["kept"]) for s in expected.curve]
    assert record["threshold_score"] == pytest.approx(0.6 * record["original_score"]["accuracy"])
    random_steps = record["random_baseline"]["steps"]
    assert record["random_baseline"]["seeds"] == [0, 1] and len(random_steps) >= len(record["steps"])
    assert [s["heads_masked"] for s in random_steps[:len(record["steps"])]] == \
        [s["heads_masked"] for s in record["steps"]]
    keep_one = np.asarray(record["keep_one_head_per_layer"]["mask"])
    assert (keep_one.sum(1) == 1).all()
    np.testing.assert_allclose(np.load(tmp_path / "head_importance.npy"),
                               head_importance(model, tokenizer, examples).importance, rtol=1e-5)
    summary = (tmp_path / "summary.txt").read_text()
    assert "Final head mask" in summary and "Random order" in summary and "Keep one head per layer" in summary


def test_prune_a_given_mask(saved, tmp_path):
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[0, :3] = mask[2, 1] = 0
    np.save(tmp_path / "mine.npy", mask)
    cli(saved, "prune", tmp_path / "out", "--mask", str(tmp_path / "mine.npy"), "--repeats", "1")
    report = json.loads((tmp_path / "out" / "prune.json").read_text())
    assert report["score_pruned"] == pytest.approx(report["score_masked"])
    assert report["predictions_agree"] == 1.0
    assert report["heads_after"] == 8 and report["params_removed"] > 0
    assert report["speedup"] == pytest.approx(report["seconds_before"] / report["seconds_after"])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "head_mask.npy"), mask)
    assert not (tmp_path / "out" / "curve.json").exists()
    text = (tmp_path / "out" / "prune.txt").read_text()
    assert "speed-up (time before / time after)" in text
    kept = report["params_after"] / report["params_before"]
    assert f"({kept:.1%} kept; {report['params_removed']} removed)" in text


def test_prune_masks_first_without_a_mask(saved, tmp_path):
    cli(saved, "prune", tmp_path, *FLAGS, "--random-seeds", "", "--repeats", "1")
    record = json.loads((tmp_path / "curve.json").read_text())
    report = json.loads((tmp_path / "prune.json").read_text())
    assert record["random_baseline"] is None
    assert report["mask"] == record["final_mask"]
    assert report["heads_after"] == int(np.sum(record["final_mask"]))
    assert report["score_pruned"] == pytest.approx(report["score_masked"])


def test_errors_are_reported_not_raised(saved, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.ones((2, 2)))
    model_dir, glue_dir = saved
    code = main(["prune", "--model", str(model_dir), "--task", "sst2", "--glue-dir", str(glue_dir),
                 "--out", str(tmp_path), "--mask", str(tmp_path / "bad.npy")])
    assert code == 2 and "give a mask of shape (3, 4)" in capsys.readouterr().err


def test_evaluate_says_which_mask_it_applied(saved, tmp_path, capsys):
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[1, 2] = mask[2, 0] = 0
    np.save(tmp_path / "mine.npy", mask)
    model_dir, glue_dir = saved
    argv = ["evaluate", "--model", str(model_dir), "--task", "sst2", "--glue-dir", str(glue_dir),
            "--mask", str(tmp_path / "mine.npy")]
    assert main(argv) == 0
    expected = f"(n=12) with the mask {tmp_path / 'mine.npy'}, 2 of {LAYERS * HEADS} heads masked: accuracy"
    assert expected in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["mask_file"] == str(tmp_path / "mine.npy") and record["heads_masked"] == 2
    assert record["mask"] == mask.tolist()
    assert main(argv[:-2] + ["--json"]) == 0
    assert "mask" not in json.loads(capsys.readouterr().out)


def test_evaluate_says_where_its_data_came_from_on_stderr(saved, capsys):
    model_dir, glue_dir = saved
    assert main(["evaluate", "--model", str(model_dir), "--task", "sst2", "--glue-dir", str(glue_dir), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == len(SENTENCES)  # stdout stays one JSON object
    assert f"SST-2 dev: {glue_dir / 'SST-2' / 'dev.tsv'} ({len(SENTENCES)} examples)" in err.splitlines()


def test_roles_writes_npz_json_and_a_table(saved, tmp_path, capsys):
    cli(saved, "roles", tmp_path, "--batch-size", "5")
    model, tokenizer, examples = api_inputs(saved)
    expected = head_roles(model, tokenizer, examples)
    data = np.load(tmp_path / "head_roles.npz")
    assert data["roles"].shape == (LAYERS, HEADS) and all(role for role in data["roles"].ravel())
    np.testing.assert_allclose(data["sep"], expected.measures["sep"], rtol=1e-5)
    record = json.loads((tmp_path / "head_roles.json").read_text())
    assert record["roles"] == expected.roles.tolist() and record["n_examples"] == len(SENTENCES)
    out = capsys.readouterr().out
    assert "roles:" in out and "head_roles.npz" in out and (tmp_path / "head_roles.txt").exists()


def test_patch_prints_and_writes_the_grid(saved, tmp_path, capsys):
    model_dir, _ = saved
    clean, corrupted = "a charming and affecting journey", "a dull and boring journey"
    assert main(["patch", "--model", str(model_dir), "--clean", clean, "--corrupted", corrupted,
                 "--out", str(tmp_path)]) == 0
    model, tokenizer, _ = api_inputs(saved)
    grid = np.load(tmp_path / "patching.npy")
    assert grid.shape == (LAYERS, HEADS)
    np.testing.assert_allclose(grid, patch_heads(model, tokenizer, clean, corrupted), rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "patching.json").read_text())
    assert record["clean_tokens"][0] == "[CLS]" and not record["per_position"]
    assert "normalised logit difference" in capsys.readouterr().out
    assert main(["patch", "--model", str(model_dir), "--clean", clean, "--corrupted", "dull",
                 "--per-position"]) == 2  # lengths differ: a readable error, not a traceback


@pytest.mark.parametrize("command", ["evaluate", "mask"])
def test_ablation_mean_follows_the_head_means(saved, tmp_path, command, capsys):
    model_dir, glue_dir = saved
    mask = np.ones((LAYERS, HEADS), dtype=np.float32)
    mask[1] = 0.0  # a whole layer: its mean output differs from zero
    np.save(tmp_path / "layer.npy", mask)
    model, tokenizer, examples = api_inputs(saved)
    means = head_output_means(model, tokenizer, examples)
    bound = bind(model, tokenizer, "sst2")
    bound.set_ablation("mean", means)
    if command == "evaluate":
        code = main(["evaluate", "--model", str(model_dir), "--task", "sst2", "--glue-dir", str(glue_dir),
                     "--mask", str(tmp_path / "layer.npy"), "--ablation", "mean", "--json"])
        assert code == 0
        got = json.loads(capsys.readouterr().out)
        expected = evaluate(bound, examples, mask=mask)
        assert got["accuracy"] == pytest.approx(expected["accuracy"])
    else:
        cli(saved, "mask", tmp_path / "out", *FLAGS, "--random-seeds", "", "--ablation", "mean")
        record = json.loads((tmp_path / "out" / "curve.json").read_text())
        expected = masking_curve(bound, examples, masking_amount=0.25, masking_threshold=0.6)
        assert record["ablation"] == "mean"
        assert [s["score"] for s in record["steps"]] == [s["score"] for s in expected.curve]
