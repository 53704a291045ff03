"""What one more student costs: the private memory of a second dashboard kernel.

Two processes each open a live ``ModelSession`` and a ``Dashboard`` on the
default model and SST-2 dev, and toggle a head in layer 0. The second starts
once the first is ready; its private memory (USS: pages no other process
maps) is ``uss_mib_per_extra_session``. Each kernel reports its USS and RSS
after each stage (imports, weights, session, dashboard, toggle), how much of
the weights file is private to it, and how long showing the shared results
took. ``bertology bench --classroom`` and ``benchmarks/classroom.py`` run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

MIB = 1 << 20
STAGES = ("imports_torch_transformers", "imports_bertology_widgets", "weights", "session", "dashboard",
          "layer0_toggle")


def memory() -> dict:
    """This process's USS and RSS in MiB."""
    try:
        import psutil
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError("the classroom measurement reads USS with psutil: pip install psutil") from exc

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


def kernel(cache_every: int | None = None) -> None:
    """One student's kernel: print memory after each stage as one JSON line, then hold everything until stdin closes."""
    stages = {"start": memory()}

    def stage(name):
        stages[name] = memory()

    import torch  # noqa: F401
    import transformers.modeling_utils  # noqa: F401 - what loading any model imports (transformers is lazy)

    stage("imports_torch_transformers")
    from .. import Dashboard, ModelSession
    from ..glue import load_glue
    from ..models.default_model import load_default_or as load_model

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
    session.scorer.build_caches(300)  # a baseline from the shared cache comes without its layer caches
    stage("layer0_toggle")
    stages["layer_cache_mib"] = round(session.cache_bytes / MIB, 1)
    stages["precision"] = session.precision
    stages["cache_every"] = session.scorer.runner.keep_every
    stages["weights_file"] = mapped_mib(".safetensors")
    print(json.dumps(stages), flush=True)
    sys.stdin.read()
    del board


def spawn(cache_every: int | None) -> subprocess.Popen:
    every = [] if cache_every is None else ["--cache-every", str(cache_every)]
    return subprocess.Popen([sys.executable, "-m", "bertology_widgets.benchmark.classroom", *every],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))


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
    assert first.stdout is not None and first.stdin is not None  # spawn() opens both pipes
    try:
        a = json.loads(first.stdout.readline())
        log(f"first kernel ready: USS {a['layer0_toggle']['uss_mib']} MiB")
        second = spawn(cache_every)
        assert second.stdout is not None and second.stdin is not None
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


def run_classroom(cache_every=None, log=print) -> dict:
    """:func:`classroom_memory` for each ``cache_every`` value (``None``: the session's default only).

    The first value gives the headline figures; ``by_cache_every`` has them all.
    """
    everies = list(cache_every or [None])
    runs = [classroom_memory(every, log) for every in everies]
    result = dict(runs[0])
    result["by_cache_every"] = {str(run["cache_every"]): {k: v for k, v in run.items() if k != "stages_second"}
                                for run in runs}
    return result


if __name__ == "__main__":  # one kernel of the measurement (what spawn starts)
    every = sys.argv[sys.argv.index("--cache-every") + 1] if "--cache-every" in sys.argv else None
    kernel(None if every is None else int(every))
