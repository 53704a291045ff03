"""Memory per student and Voilà under concurrent users (issue 17).

    python benchmarks/classroom.py --json              # memory of a second kernel (USS), stage by stage
    python benchmarks/classroom.py --json --voila 4 8  # plus Voilà with N pages at once (needs Playwright)
    python benchmarks/classroom.py --voila 4 --preheat # the same with voila --preheat_kernel=True --pool_size=N
    python benchmarks/classroom.py --voila 4 --baseline-cached  # and with the baseline already shared
    python benchmarks/classroom.py --cache-every 3 1   # ModelSession(cache_every=...) values to compare
    python benchmarks/classroom.py --no-memory --voila 4  # Voilà only

**Memory** (:mod:`bertology_widgets.benchmark.classroom`, also ``bertology bench
--classroom --json``): two processes each open ``ModelSession.from_pretrained(task="sst2")``
and a ``Dashboard`` on the default model and toggle a head in layer 0 (the
layer cache fills). The second starts once the first is ready; its private
memory (USS: pages no other process shares) is ``uss_mib_per_extra_session``,
what one more student costs. Each kernel also reports its USS and RSS after
each stage (imports, weights, session, dashboard, toggle; ``breakdown_mib``
gives the second kernel's USS growth per stage), how much of the weights
file is private to it (``weights_private_mib``; memory-mapped weights are
shared with the first kernel), and how long showing the shared results
took (``shared_results_s``: run ``bertology precompute --task sst2`` first,
or nothing is found).

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bertology_widgets.benchmark.classroom import run_classroom  # noqa: E402 - after the path: this checkout's package


def voila_load(pages: int, log=print, preheat: bool = False, baseline_cached: bool = False) -> dict:
    """Figures of ``tests/browser/test_voila_load.py`` run with ``pages`` pages at once (it asserts the scores)."""
    env = {**os.environ, "BERTOLOGY_VOILA_PAGES": str(pages), "BERTOLOGY_VOILA_PREHEAT": "1" if preheat else "",
           "BERTOLOGY_VOILA_BASELINE_CACHED": "1" if baseline_cached else "",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    how = " (pre-heated kernel pool)" if preheat else " (baseline in the shared cache)" if baseline_cached else ""
    log(f"Voilà with {pages} pages at once{how} ...")
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
    parser.add_argument("--cache-every", type=int, nargs="+", default=None,
                        help="ModelSession(cache_every=...) values to measure (default: the session's default only; "
                             "the first value gives uss_mib_per_extra_session)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the two-kernel measurement")
    parser.add_argument("--voila", type=int, nargs="*", default=[], help="page counts for the Voilà load test")
    parser.add_argument("--preheat", action="store_true",
                        help="Voilà with --preheat_kernel=True and a pool of N kernels (also measured without)")
    parser.add_argument("--baseline-cached", action="store_true",
                        help="also Voilà with the baseline already in the shared results cache (as after "
                             "`bertology precompute`)")
    args = parser.parse_args(argv)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    result = {}
    if args.memory:
        os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")  # for the kernels
        result = run_classroom(args.cache_every, log)
    if args.voila:
        result["voila"] = {str(n): voila_load(n, log) for n in args.voila}
    if args.voila and args.preheat:
        result["voila_preheat"] = {str(n): voila_load(n, log, preheat=True) for n in args.voila}
    if args.voila and args.baseline_cached:
        result["voila_baseline_cached"] = {str(n): voila_load(n, log, baseline_cached=True) for n in args.voila}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
