"""``bertology mask``: mask heads by importance until the score drops (run_bertology.py's ``--try_masking``).

Writes what ``bertology importance`` writes, plus ``head_mask.npy`` (the last
mask above the threshold; float ``(layers, heads)``, 1 keep / 0 masked),
``curve.json`` (every step, a random-order baseline and a keep-one-head-per-layer
baseline) and ``summary.txt``. With ``--task lm`` the metric is the perplexity
(lower is better): the masking stops once it rises above ``original /
threshold``.
"""

from __future__ import annotations

from ._common import add_ablation_option, add_masking_options, run_in_folder, run_masking, scale_out_help


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("mask", help="mask the least important heads until the score falls below a threshold "
                                           "(with --task lm: until the perplexity rises above original / threshold)",
                              epilog=scale_out_help("mask"))
    add_masking_options(p)
    add_ablation_option(p)
    p.set_defaults(run=run, shards_batches=True)


def run(args) -> int:
    def work(inputs, out) -> str:
        run_masking(args, inputs.bound, inputs.eval_set, inputs.task, out)
        return f"wrote head_importance.npy, attn_entropy.npy, head_mask.npy, curve.json, summary.txt in {out}\n"

    return run_in_folder(args, work)
