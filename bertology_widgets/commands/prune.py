"""``bertology prune``: remove masked heads and compare size, score and speed (run_bertology.py's ``--try_pruning``).

With ``--mask FILE`` it prunes that mask; without, it runs ``bertology mask``
first and prunes the mask that kept the threshold. Writes ``prune.json`` and
``prune.txt`` (and, when it masks first, everything ``bertology mask`` writes).
"""

from __future__ import annotations

import json

import numpy as np

from ..runtime.files import output_folder
from ._common import add_mask_option, add_masking_options, is_main, load_inputs, positive_int, run_masking, write_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("prune", help="prune heads (by default the mask `bertology mask` finds) and "
                                            "compare parameters, score and speed (with --task lm: perplexity; "
                                            "GPT, GPT-2 and the BERT family, not Llama-style models)")
    add_masking_options(p)
    add_mask_option(p, help="head mask to prune: .npy (layers, heads), 1 keep / 0 prune, or .json "
                            "(default: run the masking procedure first)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed forward passes per model; the median counts")
    p.set_defaults(run=run, shards_batches=True)


def run(args) -> int:
    from ..analyses.masking_curve import prune_and_compare
    from ..core.pruning import check_prunable
    from ._language_model import data_record, data_title

    out = output_folder(args.out)
    bound, eval_set, task, mask = load_inputs(args)
    examples = eval_set.examples
    check_prunable(bound)  # before any masking work
    if mask is not None:
        if is_main(args):
            np.save(out / "head_mask.npy", np.asarray(mask, dtype=np.float32))
    else:
        mask = run_masking(args, bound, eval_set, task, out)
    if not is_main(args):  # pruning and timing one copy is the main process's job
        return 0
    report = prune_and_compare(bound, eval_set, mask=mask, metric=args.metric, repeats=args.repeats,
                               batch_size=args.eval_batch_size)
    report.update(**data_record(args, task, bound, eval_set), n_examples=len(examples),
                  mask=np.asarray(mask).tolist())
    (out / "prune.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    metric = report["metric"]
    agree = "predictions agree" if task is not None else "texts scored alike"
    print(write_text(out / "prune.txt", [
        (f"Pruning on {data_title(args, task, bound)} ({len(examples)} examples)", "\n".join([
            f"heads: {report['heads_before']} -> {report['heads_after']}",
            f"parameters: {report['params_before']:.3e} -> {report['params_after']:.3e} "
            f"({report['params_after'] / report['params_before']:.1%} kept; {report['params_removed']} removed)",
            f"{metric} with masking: {report['score_masked'][metric]:.5f}, with pruning: "
            f"{report['score_pruned'][metric]:.5f} ({agree} on {report['predictions_agree']:.1%})",
            f"forward time: {report['seconds_before']:.3f} s masked -> {report['seconds_after']:.3f} s pruned "
            f"(median of {args.repeats}); speed-up (time before / time after) {report['speedup']:.2f}x",
        ])),
    ]), end="")
    return 0
