"""``bertology agreement``: how well each attribution method agrees with occlusion (Spearman, over a dev set).

Writes ``agreement.json`` (summary and per-example correlations) and
``agreement.txt`` (the table, also printed).
"""

from __future__ import annotations

from ._common import add_ablation_option, add_folder_run_options, add_mask_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("agreement", help="faithfulness: each attribution method's word ranking against "
                                                "occlusion's (Spearman), over a GLUE dev set")
    add_folder_run_options(p)
    p.add_argument("--methods", default="grad_x_input,integrated_gradients,rollout,attention",
                   help="comma-separated methods to compare with occlusion "
                        "(default: grad_x_input,integrated_gradients,rollout,attention)")
    add_mask_option(p)
    add_ablation_option(p)
    p.set_defaults(run=run, json=False)


def run(args) -> int:
    from ..analyses.attribution import resolve_method
    from ..analyses.faithfulness import attribution_agreement
    from ..runtime.files import output_folder
    from ._common import load_inputs

    methods = [resolve_method(m.strip()) for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods is empty; name at least one of grad_x_input, integrated_gradients, rollout")
    out = output_folder(args)
    bound, eval_set, _, mask = load_inputs(args)
    table = attribution_agreement(bound, eval_set.examples, methods, mask=mask, max_length=args.max_length,
                                  progress=True)
    js, txt = table.save(out)
    print(table.table(), end="")
    print(f"wrote {js}, {txt}")
    return 0
