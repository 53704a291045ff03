"""``bertology roles``: what kind of head is each head (Clark et al. 2019's attention patterns)?

Writes ``head_roles.npz`` (one ``(layers, heads)`` array per measure, and
``roles``), ``head_roles.json`` (the same, with the thresholds) and
``head_roles.txt`` (a readable table, also printed).
"""

from __future__ import annotations

import time

from ._common import add_model_task_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("roles", help="attention statistics and a role per head "
                                            "([CLS], [SEP], previous token, ...)")
    add_model_task_options(p)
    p.add_argument("--out", "--output-dir", dest="out", required=True,
                   help="folder for the results (created if missing)")
    p.add_argument("--split", default="validation", help="GLUE split (default: validation)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=16)
    p.add_argument("--max-length", "--max_length", dest="max_length", type=int, default=128)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..analyses.head_roles import BROAD_ENTROPY_THRESHOLD, ROLE_SHARE_THRESHOLD, head_roles
    from .importance import load_inputs, output_folder, write_text

    model, tokenizer, examples, task = load_inputs(args)
    out = output_folder(args)
    start = time.perf_counter()
    result = head_roles(model, tokenizer, examples, batch_size=args.batch_size, max_length=args.max_length,
                        progress=True)
    seconds = time.perf_counter() - start
    npz, js = result.save(out)
    print(write_text(out / "head_roles.txt", [
        (f"Head roles on {task.display_name} {args.split}: {result.n_examples} examples, {result.n_queries} query "
         f"tokens, {seconds:.1f} s. Role = the largest attention share if >= {ROLE_SHARE_THRESHOLD}, else 'broad' "
         f"if entropy / log(keys) >= {BROAD_ENTROPY_THRESHOLD}, else 'mixed'.", result.table()),
    ]), end="")
    print(f"wrote {npz}, {js}, {out / 'head_roles.txt'}")
    return 0
