"""Sharding among ``accelerate launch`` processes gives the single-process results.

The unit tests fake two processes in one; the ``slow`` tests run the real
``accelerate launch --cpu --num_processes 2 -m bertology_widgets.cli ...`` and
compare the files it writes with a one-process run of the same command.

Tolerance: the sharded run computes every batch as one process does and adds
the per-batch sums in batch order, so ``head_importance.npy`` and
``attn_entropy.npy`` agree to ``rtol=1e-6`` (in practice bit for bit on the
same device and thread count); predictions, metrics and ``head_mask.npy`` are equal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bertology_widgets
from bertology_widgets.analyses.evaluation import evaluate, predict
from bertology_widgets.analyses.importance import head_importance
from bertology_widgets.glue import Example
from bertology_widgets.runtime.distributed import ONE_PROCESS, Processes, current_processes, launch_command, ordered_sum
from bertology_widgets.testing import tiny_model

RTOL = 1e-6
ROOT = Path(bertology_widgets.__file__).resolve().parents[1]
WORDS = ["good", "bad", "movie", "plot", "actors", "boring", "wonderful", "long", "funny", "dull", "a", "the"]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 14)))) for _ in range(n)]


class FakeProcesses(Processes):
    """Process ``index`` of ``count``, with the other processes' rows computed in this one."""

    def __init__(self, index: int, count: int, others=None):
        self.process_index, self.num_processes, self.others = index, count, others or []

    def _all_rows(self, indices, rows):
        pieces = [(indices, rows)] + [other() for other in self.others]
        return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


@pytest.fixture(scope="module")
def tiny(tokenizer):
    model = tiny_model("bert", seed=1, initializer_range=1.0)
    model.config.bertology_task = "sst2"
    texts = sentences(37)
    unlabelled = [Example(s, None, 0, i) for i, s in enumerate(texts)]
    labels = predict(model, tokenizer, unlabelled, reduce=False).argmax(-1)
    return model, [Example(s, None, int(y), i) for i, (s, y) in enumerate(zip(texts, labels))]


def test_take_deals_batches_round_robin():
    batches = [np.array([i]) for i in range(7)]
    shares = [FakeProcesses(i, 3).take(batches) for i in range(3)]
    assert [[n for n, _ in share] for share in shares] == [[0, 3, 6], [1, 4], [2, 5]]
    assert ONE_PROCESS.take(batches) == list(enumerate(batches))


def test_gather_rows_places_rows_and_drops_padding():
    processes = FakeProcesses(0, 2, [lambda: (np.array([3, 1, -1]), np.array([[30.0], [10.0], [99.0]]))])
    out = Processes.gather_rows(processes, [0, 2], np.array([[0.0], [20.0]]), 4)
    np.testing.assert_array_equal(out, [[0.0], [10.0], [20.0], [30.0]])


def test_ordered_sum_adds_in_batch_order():
    parts = np.array([[1e8], [1.0], [-1e8]], dtype=np.float32)
    assert ordered_sum(parts)[0] == np.float32(np.float32(1e8) + np.float32(1.0)) - np.float32(1e8)


def test_one_process_outside_a_launch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert current_processes() is ONE_PROCESS


@pytest.mark.parametrize("rank, says", [(None, True), ("0", True), ("1", False)])
def test_only_the_first_process_says_where_the_examples_came_from(monkeypatch, capsys, rank, says):
    from types import SimpleNamespace

    from bertology_widgets.commands._common import load_examples

    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    examples = load_examples(SimpleNamespace(glue_dir=None, max_examples=3), "sst2", "validation")
    assert len(examples) == 3
    assert ("SST-2 dev" in capsys.readouterr().err) is says


class Recorder(FakeProcesses):
    """Process 1 of 2 that keeps what it would send at each gather."""

    def __init__(self):
        super().__init__(1, 2)
        self.sent = []

    def _all_rows(self, indices, rows):
        self.sent.append((indices, rows))
        return indices, rows


def two_process_run(function):
    """``function(processes)`` as process 0 of 2, given process 1's rows (for functions that gather once)."""
    rank1 = Recorder()
    function(rank1)
    return function(FakeProcesses(0, 2, [lambda: rank1.sent.pop(0)]))


def test_sharded_evaluate_and_importance_equal_one_process(tiny, tokenizer):
    model, examples = tiny
    whole = evaluate(model, tokenizer, examples, batch_size=4)
    shared = two_process_run(lambda p: evaluate(model, tokenizer, examples, batch_size=4, processes=p))
    np.testing.assert_array_equal(shared["predictions"], whole["predictions"])
    assert shared["accuracy"] == whole["accuracy"]

    whole = head_importance(model, tokenizer, examples, batch_size=4)
    shared = two_process_run(lambda p: head_importance(model, tokenizer, examples, batch_size=4, processes=p))
    np.testing.assert_array_equal(shared.raw_importance, whole.raw_importance)
    np.testing.assert_array_equal(shared.entropy, whole.entropy)
    assert (shared.tokens, shared.n_examples) == (whole.tokens, whole.n_examples)


def test_compat_mode_is_not_sharded(tiny, tokenizer):
    model, examples = tiny
    whole = head_importance(model, tokenizer, examples[:9], compat=True)
    alone = head_importance(model, tokenizer, examples[:9], compat=True, processes=FakeProcesses(1, 2))
    np.testing.assert_array_equal(alone.raw_importance, whole.raw_importance)


# -- the real launcher ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("WORLD_SIZE", None)
    return env


def bertology(*args, processes: int = 1, timeout: float = 1500) -> str:
    """Run the CLI in a fresh process, or under ``accelerate launch --cpu --num_processes N``; returns stdout."""
    command = launch_command(args, processes, port=_free_port())
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    if processes > 1:  # really shared out, not one process doing everything
        assert f"{processes} processes, each scoring 1 batch in {processes}" in done.stderr, done.stderr[-3000:]
    return done.stdout


def assert_same_outputs(one: Path, two: Path, files) -> None:
    for name in files:
        a, b = np.load(one / name), np.load(two / name)
        if name == "head_mask.npy":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory, tiny, tokenizer):
    model, examples = tiny
    root = tmp_path_factory.mktemp("launch")
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    (root / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{e.text_a}\t{e.label}\n" for e in examples)
    (root / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return ["--model", str(root / "model"), "--task", "sst2", "--glue-dir", str(root / "glue")]


@pytest.mark.slow
def test_accelerate_launch_on_a_tiny_model(saved_tiny, tmp_path):
    pytest.importorskip("accelerate")
    args = [*saved_tiny, "--batch-size", "4"]
    for n in (1, 2):
        bertology("mask", *args, "--out", str(tmp_path / f"mask{n}"), "--masking-amount", "0.25",
                  "--masking-threshold", "0.6", "--random-seeds", "0,1", "--eval-batch-size", "4", processes=n)
    assert_same_outputs(tmp_path / "mask1", tmp_path / "mask2",
                        ["head_importance.npy", "attn_entropy.npy", "head_mask.npy"])
    curve1, curve2 = (json.loads((tmp_path / f"mask{n}" / "curve.json").read_text()) for n in (1, 2))
    assert [s["score"] for s in curve1["steps"]] == [s["score"] for s in curve2["steps"]]
    assert curve1["random_baseline"]["steps"] == curve2["random_baseline"]["steps"]
    one, two = (json.loads(bertology("evaluate", *args, "--json", processes=n)) for n in (1, 2))
    assert one == two


@pytest.mark.slow
def test_accelerate_launch_on_the_default_model(tmp_path):
    pytest.importorskip("accelerate")
    glue_dir = os.environ.get("BERTOLOGY_GLUE_DIR")
    if not glue_dir or not (Path(glue_dir) / "SST-2" / "dev.tsv").exists():
        pytest.skip("needs SST-2 dev (BERTOLOGY_GLUE_DIR)")
    from bertology_widgets.models.default_model import cache_problem, default_model_dir

    if cache_problem(default_model_dir()) is not None:
        pytest.skip("the default model is not built (bertology default-model)")
    args = ["--task", "sst2", "--glue-dir", glue_dir, "--max-examples", "96"]  # 3 batches: 2 and 1 per process
    for n in (1, 2):
        bertology("mask", *args, "--out", str(tmp_path / f"mask{n}"), "--random-seeds", "", processes=n)
    assert_same_outputs(tmp_path / "mask1", tmp_path / "mask2",
                        ["head_importance.npy", "attn_entropy.npy", "head_mask.npy"])
    one, two = (json.loads(bertology("evaluate", *args, "--json", processes=n)) for n in (1, 2))
    assert one == two


@pytest.mark.parametrize("command", ["importance", "mask", "evaluate"])
def test_help_says_how_to_scale_out(command, capsys):
    from bertology_widgets.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"accelerate launch --num_processes 4 -m bertology_widgets.cli {command}" in text
    assert "bertology-widgets[distributed]" in text


def test_a_cpu_launch_of_one_process_for_n_is_recognised(monkeypatch):
    """accelerate's simple launcher (``--cpu``, no MPI) starts one process; N is read from its command line."""
    from bertology_widgets.runtime.distributed import requested_cpu_processes

    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--cpu", "--num_processes", "3"])
    try:
        # Between fork and exec the child's /proc cmdline is still ours: wait for the exec.
        for _ in range(500):
            if b"--num_processes" in Path(f"/proc/{launcher.pid}/cmdline").read_bytes():
                break
            time.sleep(0.01)
        monkeypatch.setattr(os, "getppid", lambda: launcher.pid)
        monkeypatch.delenv("WORLD_SIZE", raising=False)
        monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
        monkeypatch.setenv("MASTER_PORT", "29500")
        assert requested_cpu_processes() == 3
        monkeypatch.setenv("WORLD_SIZE", "3")  # already one of the N
        assert requested_cpu_processes() == 1
        monkeypatch.delenv("WORLD_SIZE")
        monkeypatch.delenv("MASTER_PORT")  # the launcher was asked for one process
        assert requested_cpu_processes() == 1
    finally:
        launcher.kill()
        launcher.wait()
