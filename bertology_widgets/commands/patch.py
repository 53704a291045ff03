"""``bertology patch``: activation patching of every head from a clean into a corrupted input.

Prints the ``(layers, heads)`` grid of normalised logit differences (1: the
head alone restores the clean prediction, 0: no effect). With ``--out`` it
also writes ``patching.npy`` (the grid) and ``patching.json`` (grid, tokens,
logits, predictions).
"""

from __future__ import annotations

import json
from pathlib import Path

from ._common import add_ablation_option, add_mask_option, add_model_task_options, add_out_option, load_inputs


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("patch", help="activation patching: which heads carry the decision for this input?")
    p.add_argument("--clean", required=True, help="the clean input text")
    p.add_argument("--corrupted", required=True, help="the corrupted input text (best: same token length)")
    add_model_task_options(p, task_required=False,
                           task_help="GLUE task whose label order the classes follow (default: the model's own "
                                     "record); --ablation mean takes its head means from this task's examples")
    add_out_option(p, required=False, help="folder for patching.npy and patching.json")
    p.add_argument("--per-position", "--per_position", dest="per_position", action="store_true",
                   help="patch one position at a time: a (layers, heads, positions) grid (needs equal lengths)")
    add_mask_option(p, help="head mask applied to every run (.npy or .json)")
    add_ablation_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from ..analyses.importance import format_head_table
    from ..analyses.patching import run_patching
    from .explain import label_name

    bound, _, _, mask = load_inputs(args, examples=False)
    result = run_patching(bound, None, args.clean, args.corrupted, per_position=args.per_position, mask=mask)
    labels = getattr(bound.model.config, "id2label", {}) or {}  # without a task: the model's own class names
    name = lambda i: label_name(bound, i) if bound.task is not None else labels.get(i, str(i))  # noqa: E731
    print(f"clean: {' '.join(result.clean_tokens)} -> {name(result.clean_prediction)}")
    print(f"corrupted: {' '.join(result.corrupted_tokens)} -> {name(result.corrupted_prediction)}")
    grid = result.grid if not args.per_position else np.nansum(result.grid, axis=-1)
    title = "summed over positions" if args.per_position else "all positions"
    print(f"normalised logit difference per head ({title}; 1 = restores the clean prediction)")
    print(format_head_table(grid))
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "patching.npy", result.grid.astype(np.float32))
        (out / "patching.json").write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
        print(f"wrote {out / 'patching.npy'}, {out / 'patching.json'}")
    return 0
