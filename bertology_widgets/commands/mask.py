"""``bertology mask``: mask heads by importance until the score drops (run_bertology.py's ``--try_masking``).

Writes what ``bertology importance`` writes, plus ``head_mask.npy`` (the last
mask above the threshold; float ``(layers, heads)``, 1 keep / 0 masked),
``curve.json`` (every step, a random-order baseline and a keep-one-head-per-layer
baseline) and ``summary.txt``.
"""

from __future__ import annotations

import json

import numpy as np

from ._common import add_ablation_option, apply_ablation, fraction, positive_int, scale_out_help
from .importance import (add_importance_options, compute_and_write_importance, importance_options, is_main,
                         load_inputs, output_folder, processes_of, write_text)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--random-seeds takes comma-separated integers such as 0,1,2; got {text!r}") from None


def add_masking_options(p) -> None:
    add_importance_options(p)
    p.add_argument("--masking-threshold", "--masking_threshold", dest="masking_threshold", type=fraction, default=0.9,
                   help="stop masking when the metric < threshold x original (default 0.9)")
    p.add_argument("--masking-amount", "--masking_amount", dest="masking_amount", type=fraction, default=0.1,
                   help="fraction of all heads masked per step (default 0.1)")
    p.add_argument("--metric-name", "--metric_name", "--metric", dest="metric", default=None,
                   help="metric to hold (default: the task's first, e.g. accuracy for SST-2)")
    p.add_argument("--random-seeds", "--random_seeds", dest="random_seeds", default="0,1,2",
                   help="seeds of the random-order baseline, comma-separated; empty to skip it")
    p.add_argument("--eval-batch-size", "--eval_batch_size", dest="eval_batch_size", type=positive_int, default=32,
                   help="examples per scoring batch (default 32)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("mask", help="mask the least important heads until the score falls below a threshold",
                              epilog=scale_out_help("mask"))
    add_masking_options(p)
    add_ablation_option(p)
    p.set_defaults(run=run, shards_batches=True)


def _steps_table(curve, metric: str) -> str:
    lines = ["step\theads masked\tfraction\t" + metric + "\tkept"]
    lines += [f"{s['step']}\t{s['heads_masked']}\t{s['fraction_masked']:.3f}\t{s['score'][metric]:.5f}\t"
              f"{'yes' if s['kept'] else 'no'}" for s in curve]
    return "\n".join(lines)


def _random_table(random_curve: dict) -> str:
    lines = ["step\theads masked\tmean\tstd\tmin\tmax"]
    lines += [f"{s['step']}\t{s['heads_masked']}\t{s['mean']:.5f}\t{s['std']:.5f}\t{s['min']:.5f}\t{s['max']:.5f}"
              for s in random_curve["steps"]]
    return "\n".join(lines)


def run_masking(args, model, tokenizer, examples, task, out) -> np.ndarray:
    """Importance, the masking curve and both baselines; writes every file; returns the final mask."""
    from ..analyses.importance import format_head_table
    from ..analyses.masking_curve import keep_one_head_per_layer, masking_curve, random_masking_curve

    seeds = _seeds(args.random_seeds)
    scoring = dict(batch_size=args.eval_batch_size, max_length=args.max_length, task=task.name)
    processes = processes_of(args)
    importance = compute_and_write_importance(args, model, tokenizer, examples, task, out)
    curve = masking_curve(model, tokenizer, examples, masking_amount=args.masking_amount,
                          masking_threshold=args.masking_threshold, metric=args.metric,
                          importance=importance.importance, importance_batch_size=args.batch_size, progress=True,
                          **scoring, **{k: v for k, v in importance_options(args).items() if k != "max_length"})
    random_curve = None
    if seeds:
        random_curve = random_masking_curve(model, tokenizer, examples, masking_amount=args.masking_amount,
                                            masking_threshold=args.masking_threshold, seeds=seeds,
                                            min_steps=len(curve.curve) - 1, metric=curve.metric,
                                            original_score=curve.original_score, progress=True,
                                            processes=processes, **scoring)
    keep_one = keep_one_head_per_layer(model, tokenizer, examples, importance.importance, metric=curve.metric,
                                       processes=processes, **scoring)
    if not processes.is_main:
        return curve.final_mask
    np.save(out / "head_mask.npy", curve.final_mask.astype(np.float32))
    record = dict(curve.to_dict(), task=task.name, split=args.split, n_examples=len(examples),
                  ablation=getattr(args, "ablation", "zero"),
                  importance_mode="compat" if args.compat else "per_example",
                  random_baseline=random_curve, keep_one_head_per_layer=keep_one)
    (out / "curve.json").write_text(json.dumps(record, indent=1), encoding="utf-8")

    metric = curve.metric
    original = curve.original_score[metric]
    sections = [
        (f"Masking on {task.display_name} {args.split} ({len(examples)} examples): original {metric} "
         f"{original:.5f}, threshold {args.masking_threshold} x original = {original * args.masking_threshold:.5f}, "
         f"{curve.heads_per_step} heads per step", ""),
        ("Steps (importance order)", _steps_table(curve.curve, metric)),
        (f"Final head mask: {curve.final_fraction_masked:.1%} of heads masked (1 keep, 0 masked)",
         format_head_table(curve.final_mask.astype(np.int64))),
    ]
    if random_curve is not None:
        sections.append((f"Random order, seeds {list(seeds)}: {metric} per step; fraction masked at the threshold "
                         f"{random_curve['final_fraction_masked_mean']:.1%} on average",
                         _random_table(random_curve)))
    sections.append((f"Keep one head per layer (the most important): {metric} {keep_one['score'][metric]:.5f}", ""))
    print(write_text(out / "summary.txt", sections), end="")
    return curve.final_mask


def run(args) -> int:
    out = output_folder(args.out)
    model, tokenizer, examples, task = load_inputs(args)
    apply_ablation(args, model, tokenizer, examples, progress=is_main(args))
    run_masking(args, model, tokenizer, examples, task, out)
    if not is_main(args):
        return 0
    print(f"wrote head_importance.npy, attn_entropy.npy, head_mask.npy, curve.json, summary.txt in {out}")
    return 0
