"""``importance``, ``mask``, ``prune`` and ``patch`` with ``--task lm``, on tiny saved language models.

Each command's numbers are checked against the engine called by hand (or a reference written here): the
importance on the LM loss, the masking curve's direction on perplexity, pruning against masking, mean
ablation against replacing each masked head's slice by its mean, and the patched log-probability.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from reference import HEAD_DIM, HEADS, LAYERS, run_cli, shared_lm
from reference import lm_batch as batch_of

from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.analyses.lm_evaluation import evaluate_lm
from bertology_widgets.analyses.lm_importance import lm_head_importance
from bertology_widgets.analyses.lm_texts import load_lm_texts
from bertology_widgets.analyses.masking_curve import masking_curve
from bertology_widgets.core.bound import bind
from bertology_widgets.core.lm_objective import lm_objective

TEXTS = 4
MASK = np.ones((LAYERS, HEADS), dtype=np.float32)
MASK[0, 1] = MASK[1, 3] = MASK[2, 0] = MASK[2, 2] = 0


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """``saved(arch)``: the folder of the shared tiny ``arch`` LM, saved once."""
    folders: dict = {}

    def save(arch: str) -> str:
        if arch not in folders:
            folder = tmp_path_factory.mktemp(arch)
            shared_lm(arch).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            folders[arch] = str(folder)
        return folders[arch]

    return save


def bound_lm(arch, tokenizer, texts=TEXTS):
    model = shared_lm(arch)
    bound = bind(model, tokenizer, objective=lm_objective(model))
    return bound, bound.encode(list(load_lm_texts(max_examples=texts)), 128)


@pytest.fixture(scope="module")
def mask_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mask") / "mask.npy"
    np.save(path, MASK)
    return str(path)


@pytest.mark.parametrize("arch,compat", [("gpt2", False), ("bert", False), ("gpt2", True)])
def test_importance_is_the_lm_loss_importance(arch, compat, saved, tokenizer, tmp_path, capsys):
    argv = ["importance", "--model", saved(arch), "--task", "lm", "--max-examples", str(TEXTS), "--out", str(tmp_path)]
    code, out, err = run_cli(argv + (["--compat"] if compat else []), capsys)
    assert code == 0, err
    bound, eval_set = bound_lm(arch, tokenizer)
    if compat:  # run_prune_gpt.py's procedure (test_lm_importance checks it against a loop of the script)
        expected = lm_head_importance(bound, eval_set, bound.objective, compat=True)
        np.testing.assert_allclose(np.load(tmp_path / "head_importance.npy"), expected.importance, atol=1e-5)
        np.testing.assert_allclose(np.load(tmp_path / "attn_entropy.npy"), expected.entropy, rtol=1e-5)
        assert "compat (run_prune_gpt.py)" in out
    else:
        expected = head_importance(bound, eval_set)
        np.testing.assert_allclose(np.load(tmp_path / "head_importance.npy"), expected.importance, atol=1e-5)
        np.testing.assert_allclose(np.load(tmp_path / "attn_entropy.npy"), expected.entropy, rtol=1e-5)
    kind = "causal_lm" if arch == "gpt2" else "masked_lm"
    assert f"Head importance on UD English-EWT test ({kind}): {TEXTS} examples" in out


def test_importance_follows_the_lm_loss_not_a_constant(tokenizer):
    """The loss differentiated is the LM's: importance at a mask differs from importance without one."""
    bound, eval_set = bound_lm("gpt2", tokenizer)
    free = head_importance(bound, eval_set, normalize_by_layer=False, normalize_global=False).raw_importance
    masked = head_importance(bound, eval_set, mask=MASK, normalize_by_layer=False,
                             normalize_global=False).raw_importance
    assert (free > 0).all() and not np.allclose(free, masked)


@pytest.mark.parametrize("threshold", [1.0, 0.9999])
def test_the_masking_curve_keeps_a_step_while_perplexity_stays_below_original_over_threshold(threshold, tokenizer):
    bound, eval_set = bound_lm("gpt2", tokenizer)
    curve = masking_curve(bound, eval_set, masking_amount=0.25, masking_threshold=threshold)
    original = curve.original_score["perplexity"]
    assert curve.metric == "perplexity" and not curve.higher_is_better
    assert curve.threshold_score == pytest.approx(original / threshold)
    for step in curve.curve[1:]:
        assert step["kept"] == (step["score"]["perplexity"] <= original / threshold)
    assert all(step["kept"] for step in curve.curve[:-1])  # it stops at the first step past the threshold
    kept = [s for s in curve.curve if s["kept"]]
    assert np.array_equal(curve.final_mask, np.asarray(kept[-1]["mask"]))


def test_mask_writes_a_perplexity_curve_with_its_direction_tokens_and_precision(saved, tokenizer, tmp_path, capsys):
    code, out, err = run_cli(["mask", "--model", saved("gpt2"), "--task", "lm", "--max-examples", str(TEXTS),
                              "--out", str(tmp_path), "--masking-amount", "0.25", "--masking-threshold", "0.9999",
                              "--random-seeds", "0"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "curve.json").read_text())
    bound, eval_set = bound_lm("gpt2", tokenizer)
    expected = evaluate_lm(bound, None, eval_set)
    assert record["metric"] == "perplexity" and record["higher_is_better"] is False
    assert record["original_score"]["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    assert record["threshold_score"] == pytest.approx(expected["perplexity"] / 0.9999)
    assert (record["task"], record["tokens"], record["precision"]) == ("causal_lm", expected["tokens"], "fp32")
    assert record["texts"] == "UD English-EWT test" and record["random_baseline"]["metric"] == "perplexity"
    final = np.load(tmp_path / "head_mask.npy")
    assert evaluate_lm(bound, None, eval_set, mask=final)["perplexity"] <= record["threshold_score"]
    assert "threshold original / 0.9999" in out


def test_mask_help_says_which_way_the_threshold_goes_for_perplexity(capsys):
    code, out, _ = run_cli(["mask", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "above original / threshold where lower is (perplexity" in text and "--text-file" in text


@pytest.mark.parametrize("arch", ["openai-gpt", "gpt2", "bert"])
def test_prune_scores_the_pruned_model_as_the_masked_one(arch, saved, mask_file, tokenizer, tmp_path, capsys):
    code, out, err = run_cli(["prune", "--model", saved(arch), "--task", "lm", "--max-examples", str(TEXTS),
                              "--mask", mask_file, "--out", str(tmp_path), "--repeats", "1"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "prune.json").read_text())
    bound, eval_set = bound_lm(arch, tokenizer)
    masked = evaluate_lm(bound, None, eval_set, mask=MASK)["perplexity"]
    pruned = evaluate_lm(bound.pruned(MASK), None, eval_set)["perplexity"]  # the engine, without the command
    assert pruned == pytest.approx(masked, rel=1e-5)
    assert report["score_masked"]["perplexity"] == pytest.approx(masked, rel=1e-6)
    assert report["score_pruned"]["perplexity"] == pytest.approx(masked, rel=1e-5)
    assert report["heads_before"] - report["heads_after"] == 4 and report["predictions_agree"] == 1.0
    assert report["metric"] == "perplexity" and report["tokens"] > 0
    assert "texts scored alike on 100.0%" in out


def test_prune_refuses_a_llama_style_model_with_the_reason(saved, mask_file, tmp_path, capsys):
    code, _, err = run_cli(["prune", "--model", saved("llama"), "--task", "lm", "--max-examples", "2",
                            "--mask", mask_file, "--out", str(tmp_path)], capsys)
    errors = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and len(errors) == 1
    assert "pruning is not implemented for Llama" in errors[0] and "key/value head" in errors[0]


def mean_ablation_reference(model, tokenizer, texts, mask):
    """A GPT-2 copy whose masked heads output their mean: the slice is zeroed, and ``W_slice @ mean`` added to
    the projection's bias. The mean is taken by hand over every token of the texts, one text at a time."""
    sums = torch.zeros(LAYERS, HEADS * HEAD_DIM, dtype=torch.float64)
    count = 0
    def add(layer):
        def hook(module, args):
            sums[layer] += args[0][0].double().sum(0)
        return hook

    handles = [model.transformer.h[i].attn.c_proj.register_forward_pre_hook(add(i)) for i in range(LAYERS)]
    try:
        with torch.no_grad():
            for ex in texts:
                ids = tokenizer(ex.text_a, return_tensors="pt")["input_ids"]
                model(input_ids=ids)
                count += ids.shape[1]
    finally:
        for handle in handles:
            handle.remove()
    means = (sums / count).float()
    ref = copy.deepcopy(model)
    for layer, head in zip(*np.nonzero(mask == 0)):
        proj = ref.transformer.h[layer].attn.c_proj
        rows = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
        proj.bias.data += means[layer, rows] @ proj.weight.data[rows]  # Conv1D: weight (in, out)
        proj.weight.data[rows] = 0
    return ref


def test_mean_ablation_replaces_each_masked_head_by_its_mean_over_the_texts(saved, mask_file, tokenizer, capsys):
    code, out, err = run_cli(["evaluate", "--model", saved("gpt2"), "--task", "lm", "--max-examples", str(TEXTS),
                              "--mask", mask_file, "--ablation", "mean", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    texts = load_lm_texts(max_examples=TEXTS)
    reference = mean_ablation_reference(shared_lm("gpt2"), tokenizer, texts, MASK)
    expected = evaluate_lm(reference, tokenizer, texts)
    zeroed = evaluate_lm(shared_lm("gpt2"), tokenizer, texts, mask=MASK)
    assert result["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-5)
    assert result["perplexity"] != pytest.approx(zeroed["perplexity"], rel=1e-7)
    assert result["ablation"] == "mean" and result["heads_masked"] == 4


def test_evaluate_scores_a_bound_lm_as_evaluate_lm(tokenizer):
    """The generic ``evaluate`` (the masking curve's scorer) gives the LM objective's own numbers."""
    bound, eval_set = bound_lm("llama", tokenizer)
    result = evaluate(bound, eval_set, mask=MASK)
    expected = evaluate_lm(bound, None, eval_set, mask=MASK)
    assert result["perplexity"] == expected["perplexity"] and result["token_accuracy"] == expected["token_accuracy"]
    assert result["predictions"].shape == (TEXTS, 3)


def log_prob(model, tokenizer, text, token, mask=None):
    from bertology_widgets.core.gating import mask_heads

    batch = batch_of(tokenizer, "gpt2", [text])
    with torch.no_grad(), mask_heads(bind(model, tokenizer), mask):
        return float(torch.log_softmax(model(**batch).logits[0, -1], -1)[token])


def test_patch_measures_the_target_tokens_log_probability(saved, tokenizer, tmp_path, capsys):
    clean, corrupted = "the cat sat on the", "the dog sat on the"
    code, out, err = run_cli(["patch", "--model", saved("gpt2"), "--task", "lm", "--clean", clean,
                              "--corrupted", corrupted, "--target-token", "mat", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "patching.json").read_text())
    token = tokenizer.convert_tokens_to_ids("mat")
    model = shared_lm("gpt2")
    assert record["target_id"] == token and record["metric"] == "log_probability"
    assert record["clean_log_prob"] == pytest.approx(log_prob(model, tokenizer, clean, token), abs=1e-5)
    assert record["corrupted_log_prob"] == pytest.approx(log_prob(model, tokenizer, corrupted, token), abs=1e-5)
    grid = np.load(tmp_path / "patching.npy")
    assert grid.shape == (LAYERS, HEADS) and np.isfinite(grid).all() and (grid < 0).all()
    assert "log-probability of the next token 'mat'" in out and "clean_logits" not in record


@pytest.mark.parametrize("extra,message", [
    (["--task", "lm", "--target-token", "the cat"], "is 2 tokens for this tokenizer"),
    (["--target-token", "mat"], "--target-token is the next token of a language model; add --task lm"),
])
def test_patch_refuses_a_bad_target_token_with_one_line(extra, message, saved, capsys):
    code, _, err = run_cli(["patch", "--model", saved("gpt2"), "--clean", "a b", "--corrupted", "a c"] + extra, capsys)
    errors = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and len(errors) == 1 and message in errors[0]
