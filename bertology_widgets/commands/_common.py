"""Options shared by several subcommands, and the checks that run before any work."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from ._inputs import Inputs, load_mask_file, mask_for_model


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


#: ``--task``'s help for commands that score a task's examples.
TASK_HELP = "GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli"
MASK_HELP = "head mask: .npy of shape (layers, heads), 1 keep / 0 mask, or .json"


def add_model_option(parser) -> None:
    """``--model`` and ``--device``."""
    parser.add_argument("--model", default=None,
                        help="model folder or hub name (default: MiniLM fine-tuned on SST-2, built on first use)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def add_model_options(parser) -> None:
    """``--model``, ``--device``, ``--label-map`` and ``--max-length``: a command that binds a model."""
    add_model_option(parser)
    parser.add_argument("--label-map", "--label_map", dest="label_map", default=None,
                        help="which of the model's classes is which task label, when config.id2label does not "
                             "say it in words the task knows: MODEL=TASK pairs, e.g. LABEL_0=positive,LABEL_1=negative")
    parser.add_argument("--max-length", "--max_length", "--max-seq-length", "--max_seq_length", dest="max_length",
                        type=positive_int, default=128, help="tokens per example (default 128)")


def add_task_options(parser, task_required: bool = True, task_help: str = TASK_HELP) -> None:
    """``--task``, ``--glue-dir`` and ``--max-examples``: where a command's GLUE examples come from."""
    parser.add_argument("--task", required=task_required, help=task_help)
    parser.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None,
                        help="folder in the standard GLUE layout (default: $BERTOLOGY_GLUE_DIR, else the embedded "
                             "SST-2 for sst2, else the hub)")
    parser.add_argument("--max-examples", "--max_examples", dest="max_examples", type=example_count, default=None,
                        help="use only the first N examples")


def add_model_task_options(parser, task_required: bool = True, task_help: str = TASK_HELP) -> None:
    """The model options and the task options (:func:`add_model_options`, :func:`add_task_options`)."""
    add_model_options(parser)
    add_task_options(parser, task_required, task_help)


def add_folder_run_options(parser) -> None:
    """A command that runs on a task's split and writes a folder: the model and task options, ``--out``, ``--split``."""
    add_model_task_options(parser)
    add_out_option(parser)
    add_split_option(parser)


def run_in_folder(args, work) -> int:
    """Load the inputs (:func:`load_inputs`), make the ``--out`` folder and run ``work(inputs, out)``;
    the main process prints the text it returns."""
    from ..runtime.files import output_folder

    out = output_folder(args.out)
    said = work(load_inputs(args), out)
    if is_main(args):
        print(said, end="")
    return 0


def add_out_option(parser, required: bool = True, help: str = "folder for the results (created if missing)") -> None:
    parser.add_argument("--out", "--output-dir", "--output_dir", dest="out", required=required, help=help)


def add_split_option(parser) -> None:
    parser.add_argument("--split", default="validation", help="GLUE split (default: validation)")


def add_batch_size_option(parser, default: int | None, help: str | None = None) -> None:
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=default,
                        help=help or f"examples per batch (default {default})")


def add_mask_option(parser, help: str = MASK_HELP) -> None:
    parser.add_argument("--mask", default=None, help=help)


def add_ablation_option(parser) -> None:
    parser.add_argument("--ablation", choices=("zero", "mean"), default="zero",
                        help="what a masked head outputs: zeros (default) or its mean output over the task's "
                             "examples (needs --task)")


def load_examples(args, task, split):
    """The GLUE split a command runs on (``--glue-dir``, ``--max-examples``).

    Says where it came from in one line on stderr (stdout may be ``--json``),
    e.g. ``SST-2 dev: embedded copy (872 examples)``; under ``accelerate
    launch`` only the first process says it.
    """
    from ..glue import load_glue
    from ..runtime.distributed import is_first_process

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


def jsonable(result: dict) -> dict:
    """Drop arrays and convert numpy scalars, for ``--json`` output."""
    out = {}
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            continue
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def load_inputs(args, *, examples: bool = True, default_task: str | None = None) -> Inputs:
    """Load, bind and prepare what a command runs on, the same way for every command.

    The model (``--model``, ``--device``) is bound once for ``--task`` with ``--label-map``
    (what was matched is said on stderr); the ``--split`` examples (``--glue-dir``,
    ``--max-examples``) are encoded once when ``examples`` is true or ``--ablation mean``
    needs them; ``--mask`` is read and checked against the model; ``--ablation mean``
    makes the head means over those examples the bound model's default ablation.
    Without ``--task``, ``default_task`` (or the model's recorded task) stands in where
    examples are needed. ``--task lm`` loads a language model and its texts instead
    (:func:`~bertology_widgets.commands._language_model.load_lm_inputs`; the task is None).
    Sets ``args.processes`` (see :func:`launch_processes`); under
    ``accelerate launch`` the main process loads first, so it alone builds or downloads.
    """
    from ..glue import get_task
    from ..models.default_model import load_default_or
    from ._language_model import is_lm_task, load_lm_inputs

    if is_lm_task(args):
        return load_lm_inputs(args, examples)
    args.processes = processes = launch_processes(args)
    mask_path = getattr(args, "mask", None)
    mask = load_mask_file(mask_path)  # a bad file fails before the model loads
    mean = getattr(args, "ablation", "zero") == "mean"
    task_name = getattr(args, "task", None)
    if mean and not task_name and default_task is None:
        raise ValueError("--ablation mean averages each head's output over a task's examples; "
                         "name the task with --task (e.g. --task sst2)")
    with processes.main_process_first():
        model, tokenizer = load_default_or(args.model, device=getattr(args, "device", None), task=task_name)
        if not task_name and (examples or mean) and default_task is not None:
            from ..core.labels import recorded_task

            task_name = recorded_task(model) or default_task
        task = get_task(task_name) if task_name else None
        loaded = load_examples(args, task, getattr(args, "split", "validation")) if task and (examples or mean) \
            else None
    bound = _bind(args, model, tokenizer, task)
    eval_set = None if loaded is None else bound.encode(loaded, args.max_length)
    mask = mask_for_model(mask, mask_path, bound)
    if mean:
        from ..analyses.ablation import head_output_means

        progress = processes.is_main and not getattr(args, "json", False)
        bound.set_ablation("mean", head_output_means(bound, eval_set, progress=progress))
    return Inputs(bound, eval_set, task, mask)


def _bind(args, model, tokenizer, task):
    """Bind the model once for ``task`` (``--label-map`` overrides the matching); say on stderr what was matched.

    The model is not changed: the label order is applied to its logits. A task mismatch is said here once.
    """
    from ..core.bound import bind
    from ..core.labels import TaskMismatchWarning, parse_label_map

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TaskMismatchWarning)
        bound = bind(model, tokenizer, task, parse_label_map(getattr(args, "label_map", None)))
    for warning in caught:
        print(f"bertology {args.command}: warning: {warning.message}", file=sys.stderr)
    if bound.label_notice():
        print(f"bertology {args.command}: {bound.label_notice()}", file=sys.stderr)
    return bound


# -- importance, masking and pruning: what `importance`, `mask`, `prune` and `roles` share --------------
def add_importance_options(p) -> None:
    """Model, data and importance options (run_bertology.py's names are accepted too); ``--task lm`` too."""
    from ._language_model import LM_TASK_HELP, add_text_file_option

    add_model_task_options(p, task_help=LM_TASK_HELP)
    add_out_option(p)
    add_split_option(p)
    add_text_file_option(p)
    add_batch_size_option(p, None, "examples per importance pass (default 16; 1 with --compat, as run_bertology.py)")
    p.add_argument("--compat", action="store_true",
                   help="reproduce run_bertology.py exactly: batch size 1, never-zeroed gradient, "
                        "division by tokens (default: the paper's mean over examples of |dL/dg|); with --task lm "
                        "run_prune_gpt.py: score 1/loss, entropy of the squared attention weights, importance "
                        "added up per batch and divided by the token count")
    p.add_argument("--dont-normalize-importance-by-layer", "--dont_normalize_importance_by_layer",
                   dest="dont_normalize_importance_by_layer", action="store_true",
                   help="don't divide each layer's importance by its L2 norm")
    p.add_argument("--dont-normalize-global-importance", "--dont_normalize_global_importance",
                   dest="dont_normalize_global_importance", action="store_true",
                   help="don't min-max scale all importance scores to [0, 1]")


def importance_options(args) -> dict:
    """Keyword arguments for :func:`~bertology_widgets.analyses.importance.head_importance` from the options."""
    return {
        "compat": args.compat,
        "normalize_by_layer": not args.dont_normalize_importance_by_layer,
        "normalize_global": not args.dont_normalize_global_importance,
        "processes": processes_of(args),
    }


def processes_of(args):
    """The processes set by :func:`load_inputs` (one process when it has not run)."""
    from ..runtime.distributed import ONE_PROCESS

    return getattr(args, "processes", None) or ONE_PROCESS


def is_main(args) -> bool:
    """Whether this process writes files and prints (always, outside ``accelerate launch``)."""
    return processes_of(args).is_main


def write_text(path: Path, sections: list[tuple[str, str]]) -> str:
    """Write ``(title, body)`` sections to ``path``; return the text."""
    text = "\n\n".join(f"{title}\n{body}" if body else title for title, body in sections) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def compute_and_write_importance(args, bound, eval_set, task, out: Path):
    """Run :func:`head_importance` with entropy; write the ``.npy`` files and ``importance.txt`` (main process)."""
    from ..analyses.importance import format_head_table, head_importance
    from ._language_model import data_title

    result = head_importance(bound, eval_set, batch_size=args.batch_size, progress=True, **importance_options(args))
    if not is_main(args):
        return result
    assert result.entropy is not None  # computed: compute_entropy is on by default
    np.save(out / "head_importance.npy", result.importance.astype(np.float32))
    np.save(out / "attn_entropy.npy", result.entropy.astype(np.float32))
    script = "run_bertology.py" if task is not None else "run_prune_gpt.py"
    mode = f"compat ({script})" if args.compat else "per example (mean |dL/dg|)"
    write_text(out / "importance.txt", [
        (f"Head importance on {data_title(args, task, bound)}: {result.n_examples} examples, "
         f"{result.tokens} tokens, {mode}, {result.seconds:.1f} s", ""),
        ("Attention entropies", format_head_table(result.entropy)),
        ("Head importance scores", format_head_table(result.importance)),
        ("Head ranked by importance scores (0 = most important)", format_head_table(result.ranks)),
    ])
    return result


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--random-seeds takes comma-separated integers such as 0,1,2; got {text!r}") from None


def add_masking_options(p) -> None:
    add_importance_options(p)
    p.add_argument("--masking-threshold", "--masking_threshold", dest="masking_threshold", type=fraction, default=0.9,
                   help="stop masking when the metric is no longer within the threshold of the original, in the "
                        "direction the metric is better: below threshold x original where higher is better "
                        "(accuracy, token_accuracy), above original / threshold where lower is (perplexity: "
                        "0.9 stops once it rises above 1.11 x original); default 0.9")
    p.add_argument("--masking-amount", "--masking_amount", dest="masking_amount", type=fraction, default=0.1,
                   help="fraction of all heads masked per step (default 0.1)")
    p.add_argument("--metric-name", "--metric_name", "--metric", dest="metric", default=None,
                   help="metric to hold (default: the task's first, e.g. accuracy for SST-2, perplexity for "
                        "--task lm; token_accuracy also)")
    p.add_argument("--random-seeds", "--random_seeds", dest="random_seeds", default="0,1,2",
                   help="seeds of the random-order baseline, comma-separated; empty to skip it")
    p.add_argument("--eval-batch-size", "--eval_batch_size", dest="eval_batch_size", type=positive_int, default=32,
                   help="examples per scoring batch (default 32)")


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


def run_masking(args, bound, eval_set, task, out) -> np.ndarray:
    """Importance, the masking curve and both baselines; writes every file; returns the final mask."""
    from ..analyses.importance import format_head_table
    from ..analyses.masking_curve import keep_one_head_per_layer, masking_curve, random_masking_curve
    from ._language_model import data_record, data_title

    seeds = _seeds(args.random_seeds)
    processes = processes_of(args)
    examples = eval_set.examples
    importance = compute_and_write_importance(args, bound, eval_set, task, out)
    curve = masking_curve(bound, eval_set, masking_amount=args.masking_amount,
                          masking_threshold=args.masking_threshold, metric=args.metric,
                          importance=importance.importance, importance_batch_size=args.batch_size,
                          progress=True, batch_size=args.eval_batch_size, **importance_options(args))
    random_curve = None
    if seeds:
        random_curve = random_masking_curve(bound, eval_set, masking_amount=args.masking_amount,
                                            masking_threshold=args.masking_threshold, seeds=seeds,
                                            min_steps=len(curve.curve) - 1, metric=curve.metric,
                                            original_score=curve.original_score, progress=True,
                                            processes=processes, batch_size=args.eval_batch_size)
    keep_one = keep_one_head_per_layer(bound, eval_set, importance=importance.importance, metric=curve.metric,
                                       processes=processes, batch_size=args.eval_batch_size)
    if not processes.is_main:
        return curve.final_mask
    np.save(out / "head_mask.npy", curve.final_mask.astype(np.float32))
    record = dict(curve.to_dict(), **data_record(args, task, bound, eval_set), n_examples=len(examples),
                  ablation=getattr(args, "ablation", "zero"),
                  importance_mode="compat" if args.compat else "per_example",
                  random_baseline=random_curve, keep_one_head_per_layer=keep_one)
    (out / "curve.json").write_text(json.dumps(record, indent=1), encoding="utf-8")

    metric = curve.metric
    original = curve.original_score[metric]
    relation = (f"{args.masking_threshold} x original" if curve.higher_is_better
                else f"original / {args.masking_threshold}")
    sections = [
        (f"Masking on {data_title(args, task, bound)} ({len(examples)} examples): original {metric} "
         f"{original:.5f}, threshold {relation} = {curve.threshold_score:.5f}, "
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
