"""``bertology evaluate``: a model's GLUE score, optionally under a head mask."""

from __future__ import annotations

import json

from ._common import add_ablation_option, add_model_task_options, apply_ablation, jsonable, load_mask_file


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a model on a GLUE dev set (optionally with heads masked)")
    add_model_task_options(p)
    p.add_argument("--split", default="validation", help="GLUE split (default: validation)")
    p.add_argument("--mask", default=None, help="head mask: .npy of shape (layers, heads), 1 keep / 0 mask, or .json")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    p.add_argument("--max-length", "--max_length", dest="max_length", type=int, default=128)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_ablation_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..evaluation import evaluate
    from ..glue import get_task, load_glue
    from ..models import load_model

    task = get_task(args.task)
    mask = load_mask_file(args.mask)
    examples = load_glue(task, args.split, glue_dir=args.glue_dir, max_examples=args.max_examples)
    model, tokenizer = load_model(args.model, device=args.device)
    apply_ablation(args, model, tokenizer, examples, progress=not args.json)
    result = evaluate(model, tokenizer, examples, mask=mask, batch_size=args.batch_size,
                      max_length=args.max_length, task=task.name, progress=not args.json)
    result = jsonable(result)
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k in task.metrics)
        ablation = " (mean ablation)" if args.ablation == "mean" else ""
        print(f"{task.display_name} {args.split} (n={result['n']}){ablation}: {metrics}")
    return 0
