"""``bertology agreement``: how well each attribution method agrees with occlusion (Spearman, over a dev set).

Writes ``agreement.json`` (summary and per-example correlations) and
``agreement.txt`` (the table, also printed).
"""

from __future__ import annotations

from ._common import add_ablation_option, add_model_task_options, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("agreement", help="faithfulness: each attribution method's word ranking against "
                                                "occlusion's (Spearman), over a GLUE dev set")
    add_model_task_options(p)
    p.add_argument("--out", "--output-dir", dest="out", required=True,
                   help="folder for the results (created if missing)")
    p.add_argument("--split", default="validation", help="GLUE split (default: validation)")
    p.add_argument("--methods", default="grad_x_input,integrated_gradients,rollout,attention",
                   help="comma-separated methods to compare with occlusion "
                        "(default: grad_x_input,integrated_gradients,rollout,attention)")
    p.add_argument("--mask", default=None, help="head mask: .npy of shape (layers, heads), 1 keep / 0 mask, or .json")
    add_ablation_option(p)
    p.add_argument("--max-length", "--max_length", dest="max_length", type=positive_int, default=128)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(run=run, json=False)


def run(args) -> int:
    from ..analyses.attribution import resolve_method
    from ..analyses.faithfulness import attribution_agreement
    from ..models.default_model import load_default_or
    from ..runtime.files import output_folder
    from ._common import bound_for, load_examples

    methods = [resolve_method(m.strip()) for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods is empty; name at least one of grad_x_input, integrated_gradients, rollout")
    out = output_folder(args)
    examples = load_examples(args, args.task, args.split)
    model, tokenizer = load_default_or(args.model, device=args.device)
    bound, mask = bound_for(args, model, tokenizer, args.mask)
    table = attribution_agreement(bound, examples, methods, mask=mask, max_length=args.max_length, progress=True)
    js, txt = table.save(out)
    print(table.table(), end="")
    print(f"wrote {js}, {txt}")
    return 0
