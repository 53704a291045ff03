"""One process vs N under ``accelerate launch --cpu``: wall time and equal outputs; prints one JSON object.

    python benchmarks/scale_out.py --glue-dir ../shared/glue --max-examples 200              # default model
    python benchmarks/scale_out.py --glue-dir ../shared/glue --max-examples 200 --processes 2 --threads 1

Runs ``bertology importance``, ``bertology mask`` and ``bertology evaluate --json``
once in one process and once in N, each process with ``--threads`` torch
threads, and reports the wall time of each (process start and model loading
included), the ratio one / N, and how far the outputs differ: the largest
relative difference of ``head_importance.npy`` and ``attn_entropy.npy``,
whether ``head_mask.npy`` and the evaluation JSON are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bertology_widgets.runtime.distributed import launch_command  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the fine-tuned default model)")
    p.add_argument("--task", default="sst2")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    p.add_argument("--max-examples", "--max_examples", dest="max_examples", type=int, default=200)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    p.add_argument("--commands", default="importance,mask,evaluate")
    return p.parse_args(argv)


def timed(args, processes: int, threads: int) -> tuple[float, str]:
    """Wall-clock seconds and stdout of ``bertology <args>`` in ``processes`` processes (checked to be that many)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    start = time.perf_counter()
    done = subprocess.run(launch_command(args, processes), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    if processes > 1 and f"{processes} processes, each scoring" not in done.stderr:
        raise SystemExit(f"{args[0]} did not run in {processes} processes:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0)))


def main(argv=None) -> int:
    opts = parse_args(argv)
    common = ["--task", opts.task, "--max-examples", str(opts.max_examples)]
    common += ["--model", opts.model] if opts.model else []
    common += ["--glue-dir", opts.glue_dir] if opts.glue_dir else []
    result = {"task": opts.task, "n": opts.max_examples, "processes": opts.processes,
              "threads_per_process": opts.threads, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for command in opts.commands.split(","):
            outs, stdouts = {}, {}
            for n in (1, opts.processes):
                out = Path(tmp) / f"{command}-{n}"
                extra = ["--json"] if command == "evaluate" else ["--out", str(out)]
                seconds, stdouts[n] = timed([command, *common, *extra], n, opts.threads)
                outs[n] = out
                result[f"{command}_s_{n}_process"] = round(seconds, 2)
            result[f"{command}_ratio"] = round(result[f"{command}_s_1_process"]
                                               / result[f"{command}_s_{opts.processes}_process"], 2)
            one, many = outs[1], outs[opts.processes]
            if command == "evaluate":
                result["evaluate_equal"] = (json.loads(stdouts[1].splitlines()[-1])
                                            == json.loads(stdouts[opts.processes].splitlines()[-1]))
                continue
            for name in ("head_importance", "attn_entropy"):
                result[f"{command}_{name}_max_rel_diff"] = max_relative_difference(
                    np.load(one / f"{name}.npy"), np.load(many / f"{name}.npy"))
            if command == "mask":
                result["head_mask_equal"] = bool(np.array_equal(np.load(one / "head_mask.npy"),
                                                                np.load(many / "head_mask.npy")))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
