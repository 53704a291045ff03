"""``bertology importance``: head importance and attention entropy, as run_bertology.py computes them.

Writes ``head_importance.npy`` and ``attn_entropy.npy`` (float ``(layers,
heads)`` arrays, run_bertology.py's names) and ``importance.txt`` (the tables).
With ``--task lm`` the loss is the language model's own (the mean NLL of each
text's predicted tokens), and ``--compat`` follows run_prune_gpt.py.
"""

from __future__ import annotations

from ._common import add_importance_options, compute_and_write_importance, is_main, run_in_folder, scale_out_help


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("importance", help="head importance and attention entropy on a GLUE split, or on a "
                                                 "language model's own loss with --task lm",
                              epilog=scale_out_help("importance"))
    add_importance_options(p)
    p.set_defaults(run=run, shards_batches=True)


def run(args) -> int:
    def work(inputs, out) -> str:
        compute_and_write_importance(args, inputs.bound, inputs.eval_set, inputs.task, out)
        return ((out / "importance.txt").read_text(encoding="utf-8") if is_main(args) else "") + \
            f"wrote {out / 'head_importance.npy'}, {out / 'attn_entropy.npy'}, {out / 'importance.txt'}\n"

    return run_in_folder(args, work)
