"""``bertology patch``: activation patching of every head from a clean into a corrupted input.

Prints the ``(layers, heads)`` grid of normalised logit differences (1: the
head alone restores the clean prediction, 0: no effect). With ``--out`` it
also writes ``patching.npy`` (the grid) and ``patching.json`` (grid, tokens,
logits, predictions).
"""

from __future__ import annotations

import json
from pathlib import Path

from ._common import load_mask_file


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("patch", help="activation patching: which heads carry the decision for this input?")
    p.add_argument("--clean", required=True, help="the clean input text")
    p.add_argument("--corrupted", required=True, help="the corrupted input text (best: same token length)")
    p.add_argument("--model", default=None,
                   help="model folder or hub name (default: MiniLM fine-tuned on SST-2, built on first use)")
    p.add_argument("--out", default=None, help="folder for patching.npy and patching.json")
    p.add_argument("--per-position", "--per_position", dest="per_position", action="store_true",
                   help="patch one position at a time: a (layers, heads, positions) grid (needs equal lengths)")
    p.add_argument("--mask", default=None, help="head mask applied to every run (.npy or .json)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from ..analyses.importance import format_head_table
    from ..models.default_model import load_default_or
    from ..analyses.patching import run_patching

    model, tokenizer = load_default_or(args.model, device=args.device)
    result = run_patching(model, tokenizer, args.clean, args.corrupted, per_position=args.per_position,
                          mask=load_mask_file(args.mask))
    labels = getattr(model.config, "id2label", {}) or {}
    name = lambda i: labels.get(i, str(i))  # noqa: E731
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
