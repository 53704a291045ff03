"""Options shared by several subcommands."""

from __future__ import annotations

import sys

import numpy as np


def add_model_task_options(parser, task_required: bool = True) -> None:
    parser.add_argument("--model", default=None,
                        help="model folder or hub name (default: MiniLM fine-tuned on SST-2, built on first use)")
    parser.add_argument("--task", required=task_required, help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")
    parser.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None,
                        help="folder in the standard GLUE layout (default: $BERTOLOGY_GLUE_DIR, else the embedded "
                             "SST-2 for sst2, else the hub)")
    parser.add_argument("--max-examples", "--max_examples", dest="max_examples", type=int, default=None,
                        help="use only the first N examples")


def load_examples(args, task, split):
    """The GLUE split a command runs on (``--glue-dir``, ``--max-examples``).

    Says where it came from in one line on stderr (stdout may be ``--json``),
    e.g. ``SST-2 dev: embedded copy (872 examples)``.
    """
    from ..glue import load_glue

    examples = load_glue(task, split, glue_dir=args.glue_dir, max_examples=args.max_examples)
    print(examples.describe(), file=sys.stderr, flush=True)
    return examples


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
