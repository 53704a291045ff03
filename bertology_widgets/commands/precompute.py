"""``bertology precompute``: fill the shared results cache before a class starts.

Computes what the dashboard shows on request (head importance and entropy
with no head masked, the masking curve with its random baseline) and the
score with every head kept (the live session's baseline: score, predictions
and per-example logits) for a model and a GLUE split, and stores them in the
shared results cache (:mod:`bertology_widgets.runtime.results_cache`). Every
kernel that later opens the same model, task and examples shows them at once
instead of recomputing (the baseline in well under a second).
"""

from __future__ import annotations

import time

from ._common import add_model_task_options, add_split_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("precompute", help="compute importance, the masking curve and the baseline score "
                                                 "into the shared cache")
    add_model_task_options(p, task_required=False)
    p.set_defaults(task="sst2")
    add_split_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..core.labels import parse_label_map
    from ..runtime.results_cache import results_dir
    from ..session import ModelSession

    folder = results_dir()
    if folder is None:
        raise ValueError("the results cache is turned off (BERTOLOGY_RESULTS_DIR=off); nothing to precompute")
    start = time.perf_counter()
    # Opened as a dashboard opens it (live), so that its baseline is the one a dashboard looks for.
    session = ModelSession.from_pretrained(args.model, task=args.task, glue_dir=args.glue_dir, split=args.split,
                                           max_examples=args.max_examples, device=args.device,
                                           label_map=parse_label_map(args.label_map), max_length=args.max_length,
                                           shared_results=False)
    try:
        if not session.wait(3600):
            raise RuntimeError(session.score_error or "the baseline score did not arrive within an hour")
        source = "already in the cache" if session.live.baseline_from_cache else "computed"
        print(f"baseline score: {source} ({time.perf_counter() - start:.1f} s)", flush=True)
        for name, compute in (("head importance", session.compute_importance),
                              ("masking curve", session.compute_masking_curve)):
            start = time.perf_counter()
            compute(background=False)
            if session.analysis_error:
                raise RuntimeError(session.analysis_error)
            source = "already in the cache" if session.analysis_cached else "computed"
            print(f"{name}: {source} ({time.perf_counter() - start:.1f} s)", flush=True)
    finally:
        session.close()
    print(f"shared results in {folder} ({session.task}, {len(session.examples)} {args.split} examples)")
    return 0
