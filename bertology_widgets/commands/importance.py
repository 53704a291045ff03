"""``bertology importance``: head importance and attention entropy, as run_bertology.py computes them.

Writes ``head_importance.npy`` and ``attn_entropy.npy`` (float ``(layers,
heads)`` arrays, run_bertology.py's names) and ``importance.txt`` (the tables).
"""

from __future__ import annotations

from ..runtime.files import output_folder
from ._common import (
    add_importance_options,
    compute_and_write_importance,
    is_main,
    load_inputs,
    scale_out_help,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("importance", help="head importance and attention entropy on a GLUE split",
                              epilog=scale_out_help("importance"))
    add_importance_options(p)
    p.set_defaults(run=run, shards_batches=True)


def run(args) -> int:
    out = output_folder(args.out)
    bound, eval_set, task, _ = load_inputs(args)
    compute_and_write_importance(args, bound, eval_set, task, out)
    if not is_main(args):
        return 0
    print((out / "importance.txt").read_text(encoding="utf-8"), end="")
    print(f"wrote {out / 'head_importance.npy'}, {out / 'attn_entropy.npy'}, {out / 'importance.txt'}")
    return 0
