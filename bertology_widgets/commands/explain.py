"""``bertology explain``: which words drive the prediction on one text, under a head mask."""

from __future__ import annotations

import json

from ._common import add_ablation_option, add_mask_option, add_model_task_options, load_inputs, positive_int

METHOD_CHOICES = ("ig", "integrated_gradients", "grad_x_input", "occlusion", "rollout", "attention")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("explain", help="score each word of a text for the prediction (gradient x input, "
                                              "Integrated Gradients, occlusion, attention rollout)")
    p.add_argument("--text", required=True, help="the text to explain")
    p.add_argument("--pair", default=None, help="the second text, for sentence-pair tasks")
    p.add_argument("--method", choices=METHOD_CHOICES, default="ig",
                   help="ig (Integrated Gradients, default), grad_x_input, occlusion, rollout or attention")
    p.add_argument("--target", type=int, default=None,
                   help="class to explain, in the task's label order (default: the predicted class)")
    add_model_task_options(p, task_required=False,
                           task_help="GLUE task whose label order the classes follow (default: the model's own "
                                     "record); --ablation mean takes its head means from this task's examples")
    add_mask_option(p)
    add_ablation_option(p)
    p.add_argument("--steps", type=positive_int, default=None,
                   help="Integrated Gradients steps (default: 32, a completeness gap well under 5%%)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: "words", "scores", "method", "target" (and "completeness_gap" for IG)')
    p.set_defaults(run=run)


def label_name(bound, target: int) -> str:
    task = getattr(bound, "task", None)
    names = getattr(task, "label_names", None)
    return str(names[target]) if names and target < len(names) else f"class {target}"


def run(args) -> int:
    from ..analyses.attribution import DEFAULT_IG_STEPS, METHOD_LABELS, token_attributions

    bound, _, _, mask = load_inputs(args, examples=False)
    result = token_attributions(bound, args.text, args.pair, args.method, args.target, mask=mask,
                                max_length=args.max_length, steps=args.steps or DEFAULT_IG_STEPS)
    out = result.to_dict()
    out["label"] = label_name(bound, result.target)
    if mask is not None:
        out.update(mask_file=args.mask, heads_masked=int((mask == 0).sum()))
    if args.ablation == "mean":
        out["ablation"] = "mean"
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{METHOD_LABELS[result.method]} for {out['label']} (logit {result.logit:.4f})"
          + ("" if mask is None else f", {out['heads_masked']} heads masked ({args.mask})"))
    width = max(len(w) for w in result.words)
    for word, score in zip(result.words, result.word_scores):
        print(f"  {word:<{width}}  {score:+.4f}")
    if result.method == "integrated_gradients":
        assert result.baseline_logit is not None and result.completeness_gap is not None  # IG sets both
        print(f"sum {float(result.word_scores.sum()):+.4f}; F(x) - F(baseline) = "
              f"{result.logit - result.baseline_logit:+.4f}; completeness gap {100 * result.completeness_gap:.2f}% "
              f"({result.steps} steps)")
    if result.replacement:
        print(f"each word replaced by {result.replacement}")
    return 0
