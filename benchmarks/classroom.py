"""Memory per student and Voilà under concurrent users (issue 17).

    python benchmarks/classroom.py --json              # memory of a second kernel (USS), stage by stage
    python benchmarks/classroom.py --json --voila 4 8  # plus Voilà with N pages at once (needs Playwright)
    python benchmarks/classroom.py --voila 4 --preheat # the same with voila --preheat_kernel=True --pool_size=N
    python benchmarks/classroom.py --cache-every 3 1   # ModelSession(cache_every=...) values to compare
    python benchmarks/classroom.py --no-memory --voila 4  # Voilà only

**Memory**: two processes each open ``ModelSession.from_pretrained(task="sst2")``
and a ``Dashboard`` on the default model and toggle a head in layer 0 (the
layer cache fills). The second starts once the first is ready; its private
memory (USS: pages no other process shares) is ``uss_mib_per_extra_session``,
what one more student costs. Each kernel also reports its USS and RSS after
each stage (imports, weights, session, dashboard, toggle; ``breakdown_mib``
gives the second kernel's USS growth per stage), how much of the weights
file is private to it (``weights_private_mib``; memory-mapped weights are
shared with the first kernel), and how long showing the shared results took (``shared_results_s``: run ``bertology
precompute --task sst2`` first, or nothing is found).

**Voilà**: runs ``tests/browser/test_voila_load.py`` with N pages at once
and reports its figures: time to first render (exact baseline shown), click
-> exact score, and the peak RSS and USS of the server and its kernels.
With ``--preheat`` Voilà keeps a pool of N kernels that have already run the
notebook, and the pages open once that pool is ready (``pool_ready_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def memory() -> dict:
    import psutil

    info = psutil.Process().memory_full_info()
    return {"uss_mib": round(info.uss / MIB, 1), "rss_mib": round(info.rss / MIB, 1)}


def mapped_mib(path_suffix: str) -> dict:
    """Private and shared resident MiB of this process's mappings of files ending in ``path_suffix`` (Linux)."""
    private = shared = 0
    current = False
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping's header line
                    current = line.rstrip().endswith(path_suffix)
                elif current and first in ("Private_Clean:", "Private_Dirty:"):
                    private += int(line.split()[1])
                elif current and first in ("Shared_Clean:", "Shared_Dirty:"):
                    shared += int(line.split()[1])
    except OSError:
        return {}
    return {"private_mib": round(private / 1024, 1), "shared_mib": round(shared / 1024, 1)}


STAGES = ("imports_torch_transformers", "imports_bertology_widgets", "weights", "session", "dashboard",
          "layer0_toggle")


def kernel(cache_every: int | None = None) -> None:
    """One student's kernel: report memory after each stage on stdout, then hold everything until stdin closes."""
    stages = {"start": memory()}

    def stage(name):
        stages[name] = memory()

    import torch  # noqa: F401
    import transformers.modeling_utils  # noqa: F401 - what loading any model imports (transformers is lazy)

    stage("imports_torch_transformers")
    from bertology_widgets import Dashboard, ModelSession
    from bertology_widgets.glue import load_glue
    from bertology_widgets.default_model import load_default_or as load_model

    stage("imports_bertology_widgets")
    model, tokenizer = load_model(None, task="sst2")
    stage("weights")
    # what ModelSession.from_pretrained(task="sst2") does, with the stages apart
    options = {} if cache_every is None else {"cache_every": cache_every}
    session = ModelSession(model, tokenizer, load_glue("sst2", "validation"), task="sst2", **options)
    start = time.perf_counter()
    found = session.load_shared_results()
    stages["shared_results"] = {"found": found, "seconds": round(time.perf_counter() - start, 3)}
    stage("session")
    board = Dashboard(session)
    stage("dashboard")
    session.toggle_head(0, 0)
    session.wait(300)
    stage("layer0_toggle")
    stages["layer_cache_mib"] = round(session.cache_bytes / MIB, 1)
    stages["precision"] = session.precision
    stages["cache_every"] = session.scorer.runner.keep_every
    stages["weights_file"] = mapped_mib(".safetensors")
    print(json.dumps(stages), flush=True)
    sys.stdin.read()
    del board


def spawn(cache_every: int | None):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    every = [] if cache_every is None else ["--cache-every", str(cache_every)]
    return subprocess.Popen([sys.executable, __file__, "--kernel", *every],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def breakdown(stages: dict) -> dict:
    """USS growth (MiB) from each stage to the next."""
    previous, out = stages["start"]["uss_mib"], {}
    for name in STAGES:
        out[name] = round(stages[name]["uss_mib"] - previous, 1)
        previous = stages[name]["uss_mib"]
    return out


def classroom_memory(cache_every: int | None = None, log=print) -> dict:
    """Two kernels side by side; the second's memory is what one more student costs."""
    first = spawn(cache_every)
    try:
        a = json.loads(first.stdout.readline())
        log(f"first kernel ready: USS {a['layer0_toggle']['uss_mib']} MiB")
        second = spawn(cache_every)
        try:
            b = json.loads(second.stdout.readline())
        finally:
            second.stdin.close()
            second.wait(60)
    finally:
        first.stdin.close()
        first.wait(60)
    return {"uss_mib_per_extra_session": b["layer0_toggle"]["uss_mib"],
            "rss_mib_per_session": b["layer0_toggle"]["rss_mib"],
            "uss_mib_first_session": a["layer0_toggle"]["uss_mib"],
            "layer_cache_mib": b["layer_cache_mib"], "precision": b["precision"], "cache_every": b["cache_every"],
            "weights_private_mib": b["weights_file"].get("private_mib"),
            "weights_shared_mib": b["weights_file"].get("shared_mib"), "breakdown_mib": breakdown(b),
            "shared_results_found": b["shared_results"]["found"],
            "shared_results_s": b["shared_results"]["seconds"], "stages_second": b}


def voila_load(pages: int, log=print, preheat: bool = False) -> dict:
    """Figures of ``tests/browser/test_voila_load.py`` run with ``pages`` pages at once (it asserts the scores)."""
    env = {**os.environ, "BERTOLOGY_VOILA_PAGES": str(pages), "BERTOLOGY_VOILA_PREHEAT": "1" if preheat else "",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log(f"Voilà with {pages} pages at once{' (pre-heated kernel pool)' if preheat else ''} ...")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/browser/test_voila_load.py"], cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("[voila-load] ")]
    if not lines:
        return {"error": f"the load test printed no figures (exit {done.returncode})", "tail": done.stdout[-2000:]}
    figures = json.loads(lines[-1].split(" ", 1)[1])
    figures["passed"] = done.returncode == 0
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-every", type=int, nargs="+", default=None,
                        help="ModelSession(cache_every=...) values to measure (default: the session's default only; "
                             "the first value gives uss_mib_per_extra_session)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the two-kernel measurement")
    parser.add_argument("--voila", type=int, nargs="*", default=[], help="page counts for the Voilà load test")
    parser.add_argument("--preheat", action="store_true",
                        help="Voilà with --preheat_kernel=True and a pool of N kernels (also measured without)")
    args = parser.parse_args(argv)
    if args.kernel:
        kernel(args.cache_every[0] if args.cache_every else None)
        return 0
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    result = {}
    if args.memory:
        everies = args.cache_every or [None]
        runs = {every: classroom_memory(every, log) for every in everies}
        result = dict(runs[everies[0]])
        result["by_cache_every"] = {str(run["cache_every"]): {k: v for k, v in run.items() if k != "stages_second"}
                                    for run in runs.values()}
    if args.voila:
        result["voila"] = {str(n): voila_load(n, log) for n in args.voila}
    if args.voila and args.preheat:
        result["voila_preheat"] = {str(n): voila_load(n, log, preheat=True) for n in args.voila}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
