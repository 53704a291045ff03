"""Options shared by several subcommands, and the checks that run before any work."""

from __future__ import annotations

import argparse
import math
import sys
import warnings

import numpy as np

from ..runtime.files import output_folder  # noqa: F401  (the commands import it from here)


def _number(kind, text: str, lowest, highest=None, lowest_allowed=True, hint=""):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    low_ok = value >= lowest if lowest_allowed else value > lowest
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if not low_ok or (highest is not None and value > highest):
        bound = f"at least {lowest}" if lowest_allowed else f"above {lowest}"
        span = f"{bound}{f' and at most {highest}' if highest is not None else ''}"
        raise argparse.ArgumentTypeError(f"must be {span}, got {text}{hint}")
    return value


def positive_int(text: str) -> int:
    """``type=`` for counts and sizes: an integer >= 1."""
    return _number(int, text, 1)


def example_count(text: str) -> int:
    """``type=`` for ``--max-examples``: an integer >= 1 (leave the option out to use every example)."""
    return _number(int, text, 1, hint="; leave the option out to use every example")


def positive_float(text: str) -> float:
    """``type=`` for epochs and learning rates: a number > 0."""
    return _number(float, text, 0.0, lowest_allowed=False)


def fraction(text: str) -> float:
    """``type=`` for thresholds and amounts: a number in ``(0, 1]``."""
    return _number(float, text, 0.0, 1.0, lowest_allowed=False)


def add_model_task_options(parser, task_required: bool = True) -> None:
    parser.add_argument("--model", default=None,
                        help="model folder or hub name (default: MiniLM fine-tuned on SST-2, built on first use)")
    parser.add_argument("--task", required=task_required,
                        help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")
    parser.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None,
                        help="folder in the standard GLUE layout (default: $BERTOLOGY_GLUE_DIR, else the embedded "
                             "SST-2 for sst2, else the hub)")
    parser.add_argument("--max-examples", "--max_examples", dest="max_examples", type=example_count, default=None,
                        help="use only the first N examples")


def load_examples(args, task, split):
    """The GLUE split a command runs on (``--glue-dir``, ``--max-examples``).

    Says where it came from in one line on stderr (stdout may be ``--json``),
    e.g. ``SST-2 dev: embedded copy (872 examples)``; under ``accelerate
    launch`` only the first process says it.
    """
    from ..runtime.distributed import is_first_process
    from ..glue import load_glue

    examples = load_glue(task, split, glue_dir=args.glue_dir, max_examples=args.max_examples)
    if is_first_process():
        print(examples.describe(), file=sys.stderr, flush=True)
    return examples


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
    """This process's :class:`~bertology_widgets.runtime.distributed.Processes`; sets ``args.device`` to its device.

    Outside ``accelerate launch`` that is one process and ``args.device`` is left as given.
    """
    from ..runtime.distributed import current_processes

    processes = current_processes()
    args.device = processes.device(getattr(args, "device", None))
    if processes.num_processes > 1 and processes.is_main:
        print(f"bertology {args.command}: {processes.num_processes} processes, each scoring 1 batch in "
              f"{processes.num_processes}", file=sys.stderr, flush=True)
    return processes


def load_mask_file(path):
    """The ``--mask`` file (``.npy`` or ``.json``), or None when no file is given."""
    from ..core.mask_files import load_mask

    return None if path is None else load_mask(path)


def mask_for_model(mask, path, model):
    """``mask`` (from the file ``path``) if its shape is the model's ``(layers, heads)``; None stays None."""
    from ..core.gating import model_shape

    if mask is None:
        return None
    shape = model_shape(model)
    if mask.shape != shape:
        raise ValueError(f"the mask in {path} has shape {mask.shape}, but this model has {shape[0]} layers x "
                         f"{shape[1]} heads; give a mask of shape {shape}")
    return mask


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

    Returns the :class:`~bertology_widgets.core.labels.LabelMap` applied.
    """
    from ..core.labels import TaskMismatchWarning, align_labels, label_notice, parse_label_map, warn_if_other_task

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


def add_ablation_option(parser) -> None:
    parser.add_argument("--ablation", choices=("zero", "mean"), default="zero",
                        help="what a masked head outputs: zeros (default) or its mean output over the examples")


def apply_ablation(args, model, tokenizer, examples, progress: bool = True) -> None:
    """With ``--ablation mean``: average each head's output over ``examples``; make mean ablation the default."""
    if getattr(args, "ablation", "zero") != "mean":
        return
    from ..analyses.ablation import head_output_means, set_ablation

    means = head_output_means(model, tokenizer, examples, max_length=args.max_length, progress=progress)
    set_ablation(model, "mean", means)
