"""Head importance, the masking curve and pruning on a GLUE dev set; prints one JSON object.

    python benchmarks/importance_bench.py --glue-dir ../shared/glue            # default model, SST-2 dev
    python benchmarks/importance_bench.py --glue-dir ../shared/glue --max-examples 64

Figures: seconds for batched per-example importance and for run_bertology.py's
batch-size-1 loop (``compat=True``) measured in the same run, and their ratio;
seconds for the whole masking curve; the fraction of heads masked while the
score stays >= threshold x original, by importance and in random order;
the keep-one-head-per-layer score; parameters removed by pruning and the
forward-pass speed-up (time before / time after).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the fine-tuned default model)")
    p.add_argument("--task", default="sst2")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    p.add_argument("--max-examples", "--max_examples", dest="max_examples", type=int, default=None)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                   help="examples per batched importance pass (default: the library's)")
    p.add_argument("--masking-threshold", dest="masking_threshold", type=float, default=0.9)
    p.add_argument("--masking-amount", dest="masking_amount", type=float, default=0.1)
    p.add_argument("--seeds", default="0,1,2", help="random-baseline seeds")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per model for the speed-up")
    p.add_argument("--skip-naive", action="store_true", help="leave out the batch-size-1 compat loop")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is steadier on a shared machine)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from scipy.stats import spearmanr

    from bertology_widgets.glue import get_task, load_glue
    from bertology_widgets.analyses.importance import head_importance
    from bertology_widgets.analyses.masking_curve import (keep_one_head_per_layer, masking_curve, prune_and_compare,
                                           random_masking_curve)
    from bertology_widgets.models.default_model import load_default_or

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    examples = load_glue(task, "validation", glue_dir=args.glue_dir, max_examples=args.max_examples)
    model, tokenizer = load_default_or(args.model, device=args.device, task=task.name)
    device = next(model.parameters()).device
    out = {"task": task.name, "n_examples": len(examples), "device": str(device),
           "torch_threads": torch.get_num_threads(), "model": args.model or "default"}

    # untimed warm-up: the first passes pay for allocator growth and kernel selection
    head_importance(model, tokenizer, examples[:8], batch_size=args.batch_size, task=task.name)
    batched = head_importance(model, tokenizer, examples, batch_size=args.batch_size, task=task.name)
    out["importance_seconds"] = batched.seconds
    out["importance_tokens"] = batched.tokens
    if not args.skip_naive:
        naive = head_importance(model, tokenizer, examples, compat=True, task=task.name)
        out["naive_compat_bs1_seconds"] = naive.seconds
        out["naive_over_batched"] = naive.seconds / batched.seconds
        out["spearman_compat_vs_per_example"] = float(spearmanr(naive.importance.reshape(-1),
                                                                batched.importance.reshape(-1))[0])

    curve = masking_curve(model, tokenizer, examples, masking_amount=args.masking_amount,
                          masking_threshold=args.masking_threshold, importance=batched.importance,
                          importance_batch_size=args.batch_size, task=task.name)
    metric = curve.metric
    out.update(metric=metric, original_score=curve.original_score[metric],
               masking_curve_seconds=curve.seconds, masking_steps=len(curve.curve) - 1,
               fraction_masked_at_threshold=curve.final_fraction_masked,
               final_mask_score=next(s["score"][metric] for s in reversed(curve.curve) if s["kept"]))

    start = time.perf_counter()
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    random_curve = random_masking_curve(model, tokenizer, examples, masking_amount=args.masking_amount,
                                        masking_threshold=args.masking_threshold, seeds=seeds,
                                        min_steps=len(curve.curve) - 1, original_score=curve.original_score,
                                        task=task.name)
    out.update(random_fraction_masked_at_threshold=random_curve["final_fraction_masked_mean"],
               random_fraction_per_seed=random_curve["final_fraction_masked"],
               random_seconds=time.perf_counter() - start)
    out["keep_one_head_per_layer_score"] = keep_one_head_per_layer(
        model, tokenizer, examples, batched.importance, task=task.name)["score"][metric]

    report = prune_and_compare(model, tokenizer, examples, curve.final_mask, repeats=args.repeats, task=task.name)
    out.update(params_before=report["params_before"], params_after=report["params_after"],
               params_removed=report["params_removed"],
               params_removed_fraction=report["params_removed"] / report["params_before"],
               score_masked=report["score_masked"][metric], score_pruned=report["score_pruned"][metric],
               pruned_predictions_agree=report["predictions_agree"],
               forward_seconds_before=report["seconds_before"], forward_seconds_after=report["seconds_after"],
               speedup_time_before_over_after=report["speedup"])
    print(json.dumps({k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}, indent=1))
    return out


if __name__ == "__main__":
    main()
