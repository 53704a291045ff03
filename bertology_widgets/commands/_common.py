"""Options shared by several subcommands."""

from __future__ import annotations

import numpy as np


def add_model_task_options(parser, task_required: bool = True) -> None:
    parser.add_argument("--model", default=None,
                        help="model folder or hub name (default: MiniLM fine-tuned on SST-2, built on first use)")
    parser.add_argument("--task", required=task_required, help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")
    parser.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None,
                        help="folder in the standard GLUE layout (default: $BERTOLOGY_GLUE_DIR, else the hub)")
    parser.add_argument("--max-examples", "--max_examples", dest="max_examples", type=int, default=None,
                        help="use only the first N examples")


def load_mask_file(path):
    """The ``--mask`` file (``.npy`` or ``.json``), or None when no file is given."""
    from ..mask_files import load_mask

    return None if path is None else load_mask(path)


def jsonable(result: dict) -> dict:
    """Drop arrays and convert numpy scalars, for ``--json`` output."""
    out = {}
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            continue
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def add_ablation_option(parser) -> None:
    parser.add_argument("--ablation", choices=("zero", "mean"), default="zero",
                        help="what a masked head outputs: zeros (default) or its mean output over the examples")


def apply_ablation(args, model, tokenizer, examples, progress: bool = True) -> None:
    """With ``--ablation mean``: average each head's output over ``examples``; make mean ablation the default."""
    if getattr(args, "ablation", "zero") != "mean":
        return
    from ..ablation import head_output_means, set_ablation

    means = head_output_means(model, tokenizer, examples, max_length=args.max_length, progress=progress)
    set_ablation(model, "mean", means)
