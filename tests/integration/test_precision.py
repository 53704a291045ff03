"""precision="auto": bf16 weights only where bf16 is fast, and the fp32 guard keeps predictions equal to fp32's."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import bertology_widgets.core.precision as precision
from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model
from bertology_widgets.widgets import ScoreReadout


@pytest.fixture()
def amx(monkeypatch):
    """``amx(True)`` / ``amx(False)``: simulate the CPU capability check (fast bf16 or not)."""

    monkeypatch.delenv(precision.AUTO_PRECISION_ENV)  # the suite's fp32 pin (conftest.py) off

    def set_amx(value: bool):
        monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda *args: value)

    return set_amx


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    with_amx, without = tmp_path / "amx", tmp_path / "plain"
    with_amx.write_text("processor : 0\nflags : fpu sse avx512f amx_bf16 amx_tile amx_int8\n")
    without.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    assert precision.cpu_has_amx(str(with_amx)) is True
    assert precision.cpu_has_amx(str(without)) is False
    assert precision.cpu_has_amx(str(tmp_path / "missing")) is False
    plain = tmp_path / "avx2"
    plain.write_text("processor : 0\nflags : fpu sse avx2 fma\n")
    assert precision.cpu_has_fast_bf16(str(with_amx)) is True
    assert precision.cpu_has_fast_bf16(str(without)) is True  # AVX512-BF16
    assert precision.cpu_has_fast_bf16(str(plain)) is False
    assert precision.cpu_has_fast_bf16(str(tmp_path / "missing")) is False


def test_auto_picks_fp32_without_fast_bf16_and_bf16_with_it(amx):
    amx(False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    amx(True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision("auto", "cpu", is_regression=True) == "fp32"
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    if not torch.cuda.is_available():
        assert precision.has_fast_bf16("cuda") is False
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("fp16", "cpu")


def test_the_environment_fixes_what_auto_means(amx, monkeypatch):
    amx(True)
    monkeypatch.setenv(precision.AUTO_PRECISION_ENV, "fp32")
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice still wins
    amx(False)
    monkeypatch.setenv(precision.AUTO_PRECISION_ENV, "bf16")
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision("auto", "cpu", is_regression=True) == "fp32"
    monkeypatch.setenv(precision.AUTO_PRECISION_ENV, "fp16")
    with pytest.raises(ValueError, match="BERTOLOGY_AUTO_PRECISION must be fp32 or bf16"):
        precision.resolve_precision("auto", "cpu")


@pytest.mark.parametrize("fast", [False, True], ids=["no-amx", "amx"])
def test_session_shows_the_precision_it_picked(tokenizer, amx, fast):
    amx(fast)
    s = ModelSession(tiny_model("bert", initializer_range=1.0), tokenizer, tiny_examples(16), task="sst2",
                     batch_size=8, live=False)
    try:
        assert s.precision == ("bf16" if fast else "fp32")
        assert s.precision in ScoreReadout(s).html.value
        assert (s.scorer.runner is s.scorer.runner32) == (not fast)
    finally:
        s.close()


def random_masks(rng, count, layers, heads):
    for _ in range(count):
        keep = rng.uniform(0.4, 1.0)
        yield (rng.random((layers, heads)) < keep).astype(np.float32)


def test_guarded_bf16_predictions_equal_fp32_on_a_tiny_model(tokenizer):
    # A moderate initialiser: with 1.0 the random network is chaotic and bf16's
    # errors are as large as the logits, which no margin bound can cover.
    model = tiny_model("bert", initializer_range=0.2, seed=2)
    examples = tiny_examples(48, seed=4)
    s = ModelSession(model, tokenizer, examples, task="sst2", batch_size=16, precision="bf16", live=False)
    try:
        assert s.precision == "bf16" and next(s.scorer.runner.model.parameters()).dtype == torch.bfloat16
        assert next(s.model.parameters()).dtype == torch.float32  # the session's own model stays fp32
        for mask in random_masks(np.random.default_rng(0), 12, 3, 4):
            s.mask = mask
            reference = evaluate(model, tokenizer, examples, mask, batch_size=16, task="sst2", precision="fp32")
            np.testing.assert_array_equal(s.predictions, reference["predictions"])
            assert s.score["accuracy"] == reference["accuracy"] == s.evaluate(mask)["accuracy"]
        assert s.scorer.guard.scored > 0
        print(f"\nthe guard re-scored {s.scorer.guard.fraction:.1%} of the examples")
    finally:
        s.close()


def test_the_guard_rescores_only_the_close_rows_with_fp32_logits():
    bf16 = torch.tensor([[2.0, -1.0], [0.51, 0.5], [0.0, 3.0]])
    fp32 = torch.tensor([[2.1, -1.1], [0.49, 0.52], [0.1, 3.1]])
    calls = []

    def fp32_logits(rows):
        calls.append(None if rows is None else rows.tolist())
        return fp32 if rows is None else fp32[rows]

    out, n = precision.guarded(bf16, fp32_logits)
    assert n == 1 and calls == [[False, True, False]]  # the close row alone, not its batch
    torch.testing.assert_close(out, torch.tensor([[2.0, -1.0], [0.49, 0.52], [0.0, 3.0]]))
    out, n = precision.guarded(torch.tensor([[5.0, -5.0]]), lambda rows: pytest.fail("no row needs fp32"))
    assert n == 0


def test_a_rescored_row_within_rounding_of_a_tie_is_rescored_with_its_whole_batch():
    bf16 = torch.tensor([[0.30, 0.31], [4.0, -4.0]])
    alone = torch.tensor([[0.5, 0.5 + precision.ROUNDING_MARGIN / 2]])  # as a smaller batch: too close to trust
    whole = torch.tensor([[0.5000001, 0.5], [4.1, -4.1]])  # the whole batch, as fp32 evaluation runs it
    calls = []

    def fp32_logits(rows):
        calls.append(rows)
        return whole if rows is None else alone

    out, n = precision.guarded(bf16, fp32_logits)
    assert n == 1 and len(calls) == 2 and calls[1] is None
    assert out[0].argmax() == 0  # the whole batch's answer, not the row's own
    torch.testing.assert_close(out[1], bf16[1])


def test_take_rows_keeps_the_padding_of_the_batch():
    batch = {"input_ids": torch.tensor([[1, 2, 0], [3, 4, 5]]), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}
    picked = precision.take_rows(batch, torch.tensor([True, False]))
    assert picked["input_ids"].tolist() == [[1, 2, 0]] and picked["attention_mask"].tolist() == [[1, 1, 0]]
    assert precision.take_rows(batch, None) is batch


@pytest.mark.slow
def test_guarded_bf16_equals_fp32_on_the_default_model_for_200_random_masks():
    """200 random masks on all 872 dev examples on CUDA or an AMX CPU.

    With AVX512-BF16 alone, bf16 and fp32 take 2-20 s per mask on 2 cores: 40 masks x 128
    examples. Where bf16 is emulated (no bf16 in hardware: ``precision.has_fast_bf16`` is
    False), a handful: 5 masks x 128 examples. ``BERTOLOGY_GUARD_EXAMPLES`` and
    ``BERTOLOGY_GUARD_MASKS`` set the sizes.
    """
    from bertology_widgets.glue import load_glue
    from bertology_widgets.models.default_model import load_default_or as load_model

    glue_dir = os.environ.get("BERTOLOGY_GLUE_DIR")
    if not glue_dir:
        pytest.skip("needs BERTOLOGY_GLUE_DIR")
    model, tokenizer = load_model(None, task="sst2")
    device = next(model.parameters()).device
    if device.type == "cuda" or precision.cpu_has_amx():  # where 200 x 872 fits in CI's time
        sizes = (200, 872)
    else:
        sizes = (40, 128) if precision.has_fast_bf16(device) else (5, 128)
    masks = int(os.environ.get("BERTOLOGY_GUARD_MASKS", sizes[0]))
    n = int(os.environ.get("BERTOLOGY_GUARD_EXAMPLES", sizes[1]))
    examples = load_glue("sst2", "validation", glue_dir=glue_dir)[:n]
    s = ModelSession(model, tokenizer, examples, task="sst2", precision="bf16", live=False)
    try:
        for mask in random_masks(np.random.default_rng(0), masks, s.num_layers, s.num_heads):
            s.mask = mask
            reference = evaluate(model, tokenizer, examples, mask, task="sst2", precision="fp32")
            np.testing.assert_array_equal(s.predictions, reference["predictions"])
        print(f"\n{masks} masks x {n} examples: the guard re-scored {s.scorer.guard.fraction:.2%} of the examples")
    finally:
        s.close()


def test_where_auto_means_bf16_the_live_score_equals_bertology_evaluate_mask(monkeypatch, tmp_path):
    """The must-show on any machine: ``auto`` set to bf16 as a machine with bf16 hardware sets it.

    A live session (worker thread, guard) and the CLI, each with ``precision="auto"``,
    on the default model and the first 128 SST-2 dev sentences, agree on the score.
    """
    import json
    import subprocess
    import sys

    from bertology_widgets.glue import load_glue
    from bertology_widgets.models.default_model import load_default_or

    monkeypatch.setenv(precision.AUTO_PRECISION_ENV, "bf16")
    model, tokenizer = load_default_or(None, task="sst2")
    examples = load_glue("sst2", "validation", max_examples=128)
    mask = np.ones((6, 12), dtype=np.float32)
    mask[0, :5] = mask[2, 3:9] = mask[5, ::2] = 0
    s = ModelSession(model, tokenizer, examples, task="sst2")
    try:
        assert s.precision == "bf16"
        s.mask = mask
        assert s.wait(300) and np.array_equal(s.scored_mask, mask)
        live = s.score["accuracy"]
    finally:
        s.close()
    np.save(tmp_path / "mask.npy", mask)
    out = subprocess.run(
        [sys.executable, "-m", "bertology_widgets.cli", "evaluate", "--task", "sst2", "--mask",
         str(tmp_path / "mask.npy"), "--max-examples", "128", "--json"],
        capture_output=True, text=True, timeout=600, check=True, env=dict(os.environ),
    ).stdout
    cli = json.loads(out.strip().splitlines()[-1])
    assert cli["precision"] == "bf16" and cli["accuracy"] == live


def mapped_from(tensor: torch.Tensor) -> str | None:
    """The file whose memory map holds ``tensor``'s data (``/proc/self/maps``), or None."""
    address = tensor.data_ptr()
    for line in open("/proc/self/maps", encoding="utf-8"):
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5].strip() if len(fields) == 6 and fields[5].startswith("/") else None
    return None


def test_bf16_weights_are_shared_through_the_results_folder_and_never_stale(monkeypatch, tmp_path):
    """Kernels on one machine map one bf16 file; a model changed in memory never gets another's weights."""
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", str(tmp_path))
    model = tiny_model("bert", seed=3)
    first, second = precision.bf16_copy(model), precision.bf16_copy(model)
    files = list(tmp_path.glob("bf16-weights-*.pt"))
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o644"
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    for copy_ in (first, second):
        assert mapped_from(copy_.get_parameter(weight)) == str(files[0])  # mapped, not copied
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", "off")
    plain = precision.bf16_copy(model)
    assert mapped_from(plain.get_parameter(weight)) is None
    x = torch.randint(5, 50, (2, 7))
    with torch.no_grad():
        assert torch.equal(first(input_ids=x).logits, plain(input_ids=x).logits)
        model.get_parameter(weight).add_(1.0)  # changed after loading: same name and config, other weights
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", str(tmp_path))
    changed = precision.bf16_copy(model)
    assert torch.equal(changed.get_parameter(weight), model.get_parameter(weight).detach().to(torch.bfloat16))
