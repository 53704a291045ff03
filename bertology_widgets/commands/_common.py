"""Options shared by several subcommands."""

from __future__ import annotations

import sys

import numpy as np


def add_model_task_options(parser, task_required: bool = True) -> None:
    parser.add_argument("--model", default=None,
                        help="model folder or hub name (default: MiniLM fine-tuned on SST-2, built on first use)")
    parser.add_argument("--task", required=task_required, help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")
    parser.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None,
                        help="folder in the standard GLUE layout (default: $BERTOLOGY_GLUE_DIR, else the hub)")
    parser.add_argument("--max-examples", "--max_examples", dest="max_examples", type=int, default=None,
                        help="use only the first N examples")


SCALE_OUT_HELP = (
    "Scale out: run the same command under accelerate, e.g. `accelerate launch --num_processes 4 "
    "-m bertology_widgets.cli {command} ...` (add --cpu for CPU processes; pip install "
    "'bertology-widgets[distributed]'). Each process scores every N-th batch; results equal one process's; "
    "only the first process writes files and shows progress."
)


def scale_out_help(command: str) -> str:
    """The ``--help`` epilog that says how to run ``command`` on several processes."""
    return SCALE_OUT_HELP.format(command=command)


def launch_processes(args):
    """This process's :class:`~bertology_widgets.distributed.Processes`; sets ``args.device`` to its device.

    Outside ``accelerate launch`` that is one process and ``args.device`` is left as given.
    """
    from ..distributed import current_processes

    processes = current_processes()
    args.device = processes.device(getattr(args, "device", None))
    if processes.num_processes > 1 and processes.is_main:
        print(f"bertology {args.command}: {processes.num_processes} processes, each scoring 1 batch in "
              f"{processes.num_processes}", file=sys.stderr, flush=True)
    return processes


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
