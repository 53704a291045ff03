"""Options shared by several subcommands."""

from __future__ import annotations

import sys
import warnings

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


def add_label_map_option(parser) -> None:
    parser.add_argument("--label-map", "--label_map", dest="label_map", default=None,
                        help="which of the model's classes is which task label, when config.id2label does not "
                             "say it in words the task knows: MODEL=TASK pairs, e.g. LABEL_0=positive,LABEL_1=negative")


def align_model_labels(args, model, task):
    """Put the model's classes in the task's order (``--label-map`` overrides); say on stderr what changed.

    Returns the :class:`~bertology_widgets.labels.LabelMap` applied.
    """
    from ..labels import TaskMismatchWarning, align_labels, label_notice, parse_label_map, warn_if_other_task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TaskMismatchWarning)
        warn_if_other_task(model, task)
    for warning in caught:
        print(f"bertology {args.command}: warning: {warning.message}", file=sys.stderr)
    warnings.filterwarnings("ignore", category=TaskMismatchWarning)  # said once, not again per scoring pass
    mapping = align_labels(model, task, parse_label_map(getattr(args, "label_map", None)))
    if not mapping.is_identity:
        print(f"bertology {args.command}: {label_notice(model)}", file=sys.stderr)
    return mapping
