"""``bertology evaluate``: a model's GLUE score, optionally under a head mask."""

from __future__ import annotations

import json

from ..core.precision import resolve_precision
from ._common import (
    add_ablation_option,
    add_label_map_option,
    add_model_task_options,
    apply_ablation,
    bind_model,
    jsonable,
    launch_processes,
    load_examples,
    load_mask_file,
    mask_for_model,
    positive_int,
    scale_out_help,
)
from ._language_model import LM_TASK_HELP, add_text_file_option, is_lm_task, run_evaluate_lm


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a model on a GLUE dev set, or a language model's perplexity "
                                               "with --task lm (optionally with heads masked)",
                              epilog=scale_out_help("evaluate"))
    add_model_task_options(p, task_help=LM_TASK_HELP)
    add_label_map_option(p)
    p.add_argument("--split", default="validation", help="GLUE split (default: validation)")
    add_text_file_option(p)
    p.add_argument("--mask", default=None, help="head mask: .npy of shape (layers, heads), 1 keep / 0 mask, or .json")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=32)
    p.add_argument("--max-length", "--max_length", dest="max_length", type=positive_int, default=128)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
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
    from ..analyses.evaluation import evaluate_set
    from ..glue import get_task
    from ..models.default_model import load_default_or

    processes = launch_processes(args)
    task = get_task(args.task)
    mask = load_mask_file(args.mask)
    with processes.main_process_first():
        examples = load_examples(args, task, args.split)
        model, tokenizer = load_default_or(args.model, device=args.device, task=task.name)
    bound = bind_model(args, model, tokenizer, task)
    mask = mask_for_model(mask, args.mask, model)
    eval_set = bound.encode(examples, args.max_length)
    apply_ablation(args, bound, eval_set, progress=not args.json and processes.is_main)
    result = evaluate_set(bound, eval_set, mask=mask, batch_size=args.batch_size,
                          progress=not args.json, precision=args.precision, processes=processes)
    if not processes.is_main:
        return 0
    result = jsonable(result)
    result["precision"] = resolve_precision(args.precision, next(model.parameters()).device, task.is_regression)
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
