"""``bertology evaluate``: a model's GLUE score, optionally under a head mask."""

from __future__ import annotations

import json

from ..core.precision import resolve_precision
from ._common import (
    add_ablation_option,
    add_batch_size_option,
    add_mask_option,
    add_model_task_options,
    add_split_option,
    jsonable,
    load_inputs,
    scale_out_help,
)
from ._language_model import LM_TASK_HELP, add_text_file_option, is_lm_task, run_evaluate_lm


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a model on a GLUE dev set, or a language model's perplexity "
                                               "with --task lm (optionally with heads masked)",
                              epilog=scale_out_help("evaluate"))
    add_model_task_options(p, task_help=LM_TASK_HELP)
    add_split_option(p)
    add_text_file_option(p)
    add_mask_option(p)
    add_batch_size_option(p, None, "examples per batch (default 32; with --task lm 4, the batches a live session "
                                   "scores in, so its settled perplexity and this one are equal to the last digit)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 weights where the hardware has bf16 (CUDA; AMX or AVX512-BF16 "
                        "CPUs), with the fp32 guard, so predictions equal fp32's and the dashboard's live "
                        "score; fp32 elsewhere. With --task lm, auto is fp32 everywhere (a perplexity has no "
                        "close calls for the guard to re-score); bf16 runs under bf16 autocast")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_ablation_option(p)
    p.set_defaults(run=run, shards_batches=True)


def run(args) -> int:
    if is_lm_task(args):
        return run_evaluate_lm(args)
    from ..analyses.evaluation import evaluate

    bound, eval_set, task, mask = load_inputs(args)
    processes = args.processes
    result = evaluate(bound, eval_set, mask=mask, batch_size=args.batch_size or 32,
                      progress=not args.json, precision=args.precision, processes=processes)
    if not processes.is_main:
        return 0
    result = jsonable(result)
    result["precision"] = resolve_precision(args.precision, bound.device, task.is_regression)
    if mask is not None:
        result.update(mask_file=args.mask, heads_masked=int((mask == 0).sum()), mask=mask.tolist())
    if bound.label_map is not None and not bound.label_map.is_identity:
        result["label_map"] = bound.label_map.as_dict()
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k in task.metrics)
        under = "" if mask is None else (f" with the mask {args.mask}, {result['heads_masked']} of {mask.size} "
                                         f"heads masked")
        ablation = " (mean ablation)" if args.ablation == "mean" else ""
        guard = ", bf16 with the fp32 guard" if result["precision"] == "bf16" else ""
        print(f"{task.display_name} {args.split} (n={result['n']}){under}{ablation}{guard}: {metrics}")
    return 0
