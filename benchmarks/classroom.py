"""Memory per student and Voilà under concurrent users (issue 17).

    python benchmarks/classroom.py --json              # memory of a second kernel (USS), stage by stage
    python benchmarks/classroom.py --json --voila 4 8  # plus Voilà with N pages at once (needs Playwright)
    python benchmarks/classroom.py --cache-every 1 3   # ModelSession(cache_every=...) values to compare

**Memory**: two processes each open ``ModelSession.from_pretrained(task="sst2")``
and a ``Dashboard`` on the default model and toggle a head in layer 0 (the
layer cache fills). The second starts once the first is ready; its private
memory (USS: pages no other process shares) is ``uss_mib_per_extra_session``,
what one more student costs. Each kernel also reports its USS and RSS after
each stage (imports, weights, session, dashboard, toggle), and how long
showing the shared results took (``shared_results_s``: run ``bertology
precompute --task sst2`` first, or nothing is found).

**Voilà**: runs ``tests/browser/test_voila_load.py`` with N pages at once
and reports its figures: time to first render (exact baseline shown), click
-> exact score, and the peak RSS and USS of the server and its kernels.
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


def kernel(cache_every: int = 1) -> None:
    """One student's kernel: report memory after each stage on stdout, then hold everything until stdin closes."""
    stages = {"start": memory()}

    def stage(name):
        stages[name] = memory()

    import torch  # noqa: F401
    import transformers  # noqa: F401

    stage("imports_torch_transformers")
    from bertology_widgets import Dashboard, ModelSession
    from bertology_widgets.glue import load_glue
    from bertology_widgets.default_model import load_default_or as load_model

    stage("imports_bertology_widgets")
    model, tokenizer = load_model(None, task="sst2")
    stage("weights")
    # what ModelSession.from_pretrained(task="sst2") does, with the stages apart
    session = ModelSession(model, tokenizer, load_glue("sst2", "validation"), task="sst2", cache_every=cache_every)
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
    print(json.dumps(stages), flush=True)
    sys.stdin.read()
    del board


def spawn(cache_every: int):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, __file__, "--kernel", "--cache-every", str(cache_every)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def classroom_memory(cache_every: int = 1, log=print) -> dict:
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
            "layer_cache_mib": b["layer_cache_mib"], "precision": b["precision"],
            "shared_results_found": b["shared_results"]["found"],
            "shared_results_s": b["shared_results"]["seconds"], "stages_second": b}


def voila_load(pages: int, log=print) -> dict:
    """Figures of ``tests/browser/test_voila_load.py`` run with ``pages`` pages at once (it asserts the scores)."""
    env = {**os.environ, "BERTOLOGY_VOILA_PAGES": str(pages),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log(f"Voilà with {pages} pages at once ...")
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
    parser.add_argument("--cache-every", type=int, nargs="+", default=[1, 3],
                        help="ModelSession(cache_every=...) values to measure (default: 1, the default, and 3)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--voila", type=int, nargs="*", default=[], help="page counts for the Voilà load test")
    args = parser.parse_args(argv)
    if args.kernel:
        kernel(args.cache_every[0])
        return 0
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    runs = {every: classroom_memory(every, log) for every in args.cache_every}
    result = dict(runs[args.cache_every[0]])
    result["by_cache_every"] = {str(every): {k: v for k, v in run.items() if k != "stages_second"}
                                for every, run in runs.items()}
    if args.voila:
        result["voila"] = {str(n): voila_load(n, log) for n in args.voila}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
