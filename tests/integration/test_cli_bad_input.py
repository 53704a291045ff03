"""Every class of bad command-line input gets exit code 2 and one line naming the value and the fix.

One table: each subcommand x missing file, wrong shape, wrong type, out of
range, unwritable output. A new option gets a new row.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference import saved_tiny_model

from bertology_widgets.cli import main

REPO = Path(__file__).resolve().parents[2]
SENTENCES = ["a fine film", "a dull mess", "i loved it", "no point at all"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tokenizer):
    """Paths by name: a tiny saved model, a GLUE folder, and bad inputs of every kind."""
    root = tmp_path_factory.mktemp("bad")
    saved_tiny_model(root, tokenizer, seed=1)
    (root / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES))
    (root / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    (root / "header_only" / "SST-2").mkdir(parents=True)
    (root / "header_only" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n", encoding="utf-8")
    (root / "latin1" / "SST-2").mkdir(parents=True)
    (root / "latin1" / "SST-2" / "dev.tsv").write_bytes("sentence\tlabel\nun film trop réussi\t1\n".encode("latin-1"))
    (root / "empty_model").mkdir()
    (root / "a_file").write_text("not a folder")
    np.save(root / "wrong_shape.npy", np.ones((2, 2), dtype=np.float32))
    (root / "ragged.json").write_text('{"mask": [[1, 0], [1]]}')
    (root / "strings.json").write_text('[["yes", "no"], ["no", "yes"]]')
    (root / "mask.txt").write_text("1 0")
    return root


def model_args(root):
    return ["--model", str(root / "model"), "--task", "sst2", "--glue-dir", str(root / "glue")]


def out(root):
    return ["--out", str(root / "results")]


# (id, argv built from the files' root, words the one line must hold)
CASES = [
    # -- wrong type
    ("evaluate-max-examples-word", lambda r: ["evaluate", "--task", "sst2", "--max-examples", "ten"],
     ["--max-examples", "expected an integer", "'ten'"]),
    ("finetune-epochs-word", lambda r: ["finetune", "--task", "sst2", *out(r), "--epochs", "two"],
     ["--epochs", "'two'"]),
    ("mask-threshold-word", lambda r: ["mask", "--task", "sst2", *out(r), "--masking-threshold", "high"],
     ["--masking-threshold", "'high'"]),
    ("bench-repeats-float", lambda r: ["bench", "--repeats", "2.5"], ["--repeats", "'2.5'"]),
    ("demo-port-word", lambda r: ["demo", "--port", "http"], ["--port", "'http'"]),
    # -- out of range
    ("evaluate-max-examples-0", lambda r: ["evaluate", "--task", "sst2", "--max-examples", "0"],
     ["--max-examples", "at least 1", "got 0", "leave the option out"]),
    ("evaluate-max-examples-negative", lambda r: ["evaluate", "--task", "sst2", "--max-examples", "-5"],
     ["--max-examples", "at least 1", "got -5", "leave the option out"]),
    ("evaluate-batch-size-0", lambda r: ["evaluate", "--task", "sst2", "--batch-size", "0"], ["--batch-size", "got 0"]),
    ("finetune-epochs-0", lambda r: ["finetune", "--task", "sst2", *out(r), "--epochs", "0"],
     ["--epochs", "above 0", "got 0"]),
    ("finetune-epochs-negative", lambda r: ["finetune", "--task", "sst2", *out(r), "--epochs", "-1"],
     ["--epochs", "got -1"]),
    ("finetune-epochs-inf", lambda r: ["finetune", "--task", "sst2", *out(r), "--epochs", "inf"],
     ["--epochs", "finite", "'inf'"]),
    ("mask-amount-nan", lambda r: ["mask", "--task", "sst2", *out(r), "--masking-amount", "nan"],
     ["--masking-amount", "finite", "'nan'"]),
    ("finetune-learning-rate-0", lambda r: ["finetune", "--task", "sst2", *out(r), "--learning-rate", "0"],
     ["--learning-rate", "got 0"]),
    ("finetune-max-train-examples-0", lambda r: ["finetune", "--task", "sst2", *out(r), "--max-train-examples", "0"],
     ["--max-train-examples", "got 0"]),
    ("importance-batch-size-0", lambda r: ["importance", "--task", "sst2", *out(r), "--batch-size", "0"],
     ["--batch-size", "got 0"]),
    ("mask-threshold-negative", lambda r: ["mask", "--task", "sst2", *out(r), "--masking-threshold", "-1"],
     ["--masking-threshold", "at most 1", "got -1"]),
    ("mask-amount-above-1", lambda r: ["mask", "--task", "sst2", *out(r), "--masking-amount", "2"],
     ["--masking-amount", "got 2"]),
    ("prune-repeats-0", lambda r: ["prune", "--task", "sst2", *out(r), "--repeats", "0"], ["--repeats", "got 0"]),
    ("bench-repeats-0", lambda r: ["bench", "--repeats", "0"], ["--repeats", "got 0"]),
    ("evaluate-unknown-task", lambda r: ["evaluate", *model_args(r)[:2], "--task", "sst3"], ["sst3"]),
    # -- missing file
    ("evaluate-missing-mask", lambda r: ["evaluate", *model_args(r), "--mask", str(r / "nope.npy")],
     ["no mask file at", "nope.npy", "`bertology mask` writes one"]),
    ("prune-missing-mask", lambda r: ["prune", *model_args(r), *out(r), "--mask", str(r / "nope.json")],
     ["no mask file at", "nope.json"]),
    ("evaluate-mask-suffix", lambda r: ["evaluate", *model_args(r), "--mask", str(r / "mask.txt")],
     ["mask.txt", ".npy or .json"]),
    ("evaluate-missing-glue-dir", lambda r: ["evaluate", *model_args(r)[:4], "--glue-dir", str(r / "nowhere")],
     ["nowhere", "does not exist", "--glue-dir"]),
    ("importance-glue-dir-is-a-file", lambda r: ["importance", *model_args(r)[:4], "--glue-dir", str(r / "a_file"),
                                                 *out(r)],
     ["a_file is a file, not a folder", "--glue-dir"]),
    ("evaluate-empty-model-folder", lambda r: ["evaluate", "--model", str(r / "empty_model"), "--task", "sst2",
                                               "--glue-dir", str(r / "glue")],
     ["empty_model", "no config.json", "save_pretrained"]),
    ("evaluate-unknown-hub-name", lambda r: ["evaluate", "--model", "nobody/no-such-model-here", "--task", "sst2",
                                             "--glue-dir", str(r / "glue")],
     ["nobody/no-such-model-here", "not a local folder"]),
    ("finetune-missing-train-file", lambda r: ["finetune", "--task", "sst2", "--glue-dir", str(r / "glue"), *out(r)],
     ["train.tsv"]),
    # -- wrong shape or content
    ("evaluate-mask-wrong-shape", lambda r: ["evaluate", *model_args(r), "--mask", str(r / "wrong_shape.npy")],
     ["wrong_shape.npy", "shape (2, 2)", "give a mask of shape"]),
    ("prune-mask-wrong-shape", lambda r: ["prune", *model_args(r), *out(r), "--mask", str(r / "wrong_shape.npy")],
     ["wrong_shape.npy", "give a mask of shape"]),
    ("evaluate-ragged-json-mask", lambda r: ["evaluate", *model_args(r), "--mask", str(r / "ragged.json")],
     ["ragged.json", "grid of numbers"]),
    ("evaluate-string-json-mask", lambda r: ["evaluate", *model_args(r), "--mask", str(r / "strings.json")],
     ["strings.json", "grid of numbers"]),
    ("evaluate-header-only-tsv", lambda r: ["evaluate", *model_args(r)[:4], "--glue-dir", str(r / "header_only")],
     ["header_only/SST-2/dev.tsv", "holds no examples"]),
    ("mask-not-utf8-tsv", lambda r: ["mask", *model_args(r)[:4], "--glue-dir", str(r / "latin1"), *out(r)],
     ["latin1/SST-2/dev.tsv", "not UTF-8", "save it as UTF-8"]),
    # -- unwritable output (the model folder is empty: the output is checked before anything loads)
    *[(f"{cmd}-out-is-a-file", lambda r, cmd=cmd: [cmd, "--model", str(r / "empty_model"), "--task", "sst2",
                                                   "--out", str(r / "a_file")], ["--out", "a_file is a file"])
      for cmd in ("importance", "mask", "prune", "finetune")],
    *[(f"{cmd}-out-under-a-file", lambda r, cmd=cmd: [cmd, "--model", str(r / "empty_model"), "--task", "sst2",
                                                      "--out", str(r / "a_file" / "results")],
       ["--out", "a_file is a file, so no folder can be made under it"])
      for cmd in ("importance", "mask", "prune", "finetune")],
    ("snapshot-out-in-no-folder", lambda r: ["snapshot", *model_args(r), "--out", str(r / "nowhere" / "page.html")],
     ["--out", "nowhere does not exist", "create it first"]),
    ("snapshot-out-is-a-folder", lambda r: ["snapshot", *model_args(r), "--out", str(r / "glue")],
     ["--out", "is a folder", "give a file name"]),
    ("snapshot-text-too-long", lambda r: ["snapshot", *model_args(r), "--no-curve", "--text", "word " * 200,
                                          "--out", str(r / "page.html")],
     ["--text has 202 tokens", "at most 130", "shorten"]),
    ("snapshot-example-out-of-range", lambda r: ["snapshot", *model_args(r), "--no-curve", "--example", "9",
                                                 "--out", str(r / "page.html")],
     ["--example 9 does not exist", "0..3"]),
]


DATA_SOURCE_LINE = re.compile(r"^[A-Z][\w-]* \w+: .* \(\d+ examples\)$")


def run_cli(argv, capsys) -> tuple[int, str]:
    """``(exit code, stderr)`` of ``bertology argv``; an exception escaping ``main`` fails the test."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [pytest.param(build, words, id=name) for name, build, words in CASES])
def test_bad_input_exits_2_with_one_line(files, argv, words, capsys, monkeypatch):
    monkeypatch.delenv("BERTOLOGY_GLUE_DIR", raising=False)
    code, err = run_cli(argv(files), capsys)
    # Informational lines (where the data came from) may come first; the error is one line of its own.
    lines = [line for line in err.splitlines() if line.strip() and not DATA_SOURCE_LINE.match(line)]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"bertology {argv(files)[0]}: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (files / "results").exists() or not any((files / "results").iterdir())


def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    """On a read-only mount (root writes into ``chmod 555`` folders, so that is no test) ``--out`` fails first."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only mount here (unshare -rm is unavailable)")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    (tmp_path / "empty_model").mkdir()
    command = (f"mount -t tmpfs -o ro tmpfs {readonly} && exec {sys.executable} -m bertology_widgets.cli "
               f"importance --task sst2 --model {tmp_path / 'empty_model'} --out {readonly / 'results'}")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"bertology importance: error: --out {readonly / 'results'}: cannot write "
                                        f"there (Read-only file system); name a folder you can write to"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder; the read-only mount test covers it")
def test_a_folder_without_write_permission_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, err = run_cli(["importance", "--task", "sst2", "--out", str(locked)], capsys)
    assert code == 2 and f"--out {locked}: cannot write there (Permission denied)" in err


def test_a_writable_folder_is_left_as_it_was(tmp_path):
    from bertology_widgets.runtime.files import output_folder

    assert output_folder(tmp_path / "new" / "folder") == tmp_path / "new" / "folder"
    assert list((tmp_path / "new" / "folder").iterdir()) == []  # the probe file is gone
