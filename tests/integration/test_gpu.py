"""The GPU path: sessions, scoring, importance and the CLI on ``cuda`` give the CPU's answers.

Marked ``gpu``: skipped where torch sees no CUDA device (see conftest).
``scripts/gpu_check.sh`` runs them on a GPU machine.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.cli import main
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model


@pytest.fixture(scope="module")
def pair():
    """The same tiny BERT on the CPU and on the GPU."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cpu = tiny_model("bert", seed=1, initializer_range=1.0)
    cpu.config.bertology_task = "sst2"
    return cpu, copy.deepcopy(cpu).to("cuda")


@pytest.mark.gpu
def test_logits_and_importance_on_cuda_match_the_cpu(pair, tokenizer):
    cpu, gpu = pair
    examples = tiny_examples(40, seed=2)
    mask = np.ones((3, 4), dtype=np.float32)
    mask[1, 2] = 0
    np.testing.assert_allclose(predict(gpu, tokenizer, examples, mask, reduce=False),
                               predict(cpu, tokenizer, examples, mask, reduce=False), rtol=1e-3, atol=1e-4)
    on_gpu, on_cpu = head_importance(gpu, tokenizer, examples), head_importance(cpu, tokenizer, examples)
    np.testing.assert_allclose(on_gpu.raw_importance, on_cpu.raw_importance, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(on_gpu.entropy, on_cpu.entropy, rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
def test_live_session_on_cuda(pair, tokenizer):
    cpu, gpu = pair
    examples = tiny_examples(48, seed=3)
    session = ModelSession(gpu, tokenizer, examples, task="sst2", batch_size=8)
    try:
        assert next(session.model.parameters()).is_cuda
        session.toggle_head(1, 2)
        session.wait(60)
        reference = evaluate(cpu, tokenizer, examples, session.mask, batch_size=8, task="sst2")
        agree = (session.predictions == reference["predictions"]).mean()
        assert agree >= 0.95 and session.error == ""
        assert session.attention.shape[0] == len(session.tokens)  # captured on the GPU, shown from NumPy
    finally:
        session.close()


@pytest.mark.gpu
def test_from_pretrained_and_cli_on_cuda(pair, tokenizer, tmp_path):
    cpu, _ = pair
    texts = tiny_examples(24, seed=4)
    labels = predict(cpu, tokenizer, texts, reduce=False).argmax(-1)
    cpu.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{e.text_a}\t{y}\n" for e, y in zip(texts, labels))
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    # fp32: the bf16 guard's margin bound is set for trained models, and this one has random weights
    session = ModelSession.from_pretrained(str(tmp_path / "model"), glue_dir=str(tmp_path / "glue"), device="cuda",
                                           precision="fp32")
    try:
        assert next(session.model.parameters()).is_cuda and session.precision == "fp32"
        reference = evaluate(session.model, tokenizer, texts, session.mask, task="sst2", precision="fp32")
        np.testing.assert_array_equal(session.predictions, reference["predictions"])
        assert session.score["accuracy"] >= 0.8  # against the CPU's predictions: near-zero margins may flip
    finally:
        session.close()
    common = ["--model", str(tmp_path / "model"), "--task", "sst2", "--glue-dir", str(tmp_path / "glue"),
              "--device", "cuda"]
    assert main(["importance", *common, "--out", str(tmp_path / "out")]) == 0
    assert np.load(tmp_path / "out" / "head_importance.npy").shape == (3, 4)


def test_cuda_is_refused_clearly_without_a_gpu(monkeypatch):
    from bertology_widgets.models.loading import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no GPU"):
        pick_device("cuda")
