"""``bertology importance``: head importance and attention entropy, as run_bertology.py computes them.

Writes ``head_importance.npy`` and ``attn_entropy.npy`` (float ``(layers,
heads)`` arrays, run_bertology.py's names) and ``importance.txt`` (the tables).
The helpers here are shared with ``bertology mask`` and ``bertology prune``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (add_label_map_option, add_model_task_options, align_model_labels, launch_processes,
                      load_examples, output_folder, positive_int, scale_out_help)


def add_importance_options(p) -> None:
    """Model, data and importance options (run_bertology.py's names are accepted too)."""
    add_model_task_options(p)
    add_label_map_option(p)
    p.add_argument("--out", "--output-dir", "--output_dir", dest="out", required=True,
                   help="folder for the results (created if missing)")
    p.add_argument("--split", default="validation", help="GLUE split (default: validation)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=None,
                   help="examples per importance pass (default 16; 1 with --compat, as run_bertology.py)")
    p.add_argument("--max-length", "--max_length", "--max-seq-length", "--max_seq_length", dest="max_length",
                   type=positive_int, default=128)
    p.add_argument("--compat", action="store_true",
                   help="reproduce run_bertology.py exactly: batch size 1, never-zeroed gradient, "
                        "division by tokens (default: the paper's mean over examples of |dL/dg|)")
    p.add_argument("--dont-normalize-importance-by-layer", "--dont_normalize_importance_by_layer",
                   dest="dont_normalize_importance_by_layer", action="store_true",
                   help="don't divide each layer's importance by its L2 norm")
    p.add_argument("--dont-normalize-global-importance", "--dont_normalize_global_importance",
                   dest="dont_normalize_global_importance", action="store_true",
                   help="don't min-max scale all importance scores to [0, 1]")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("importance", help="head importance and attention entropy on a GLUE split",
                              epilog=scale_out_help("importance"))
    add_importance_options(p)
    p.set_defaults(run=run, shards_batches=True)


def load_inputs(args):
    """``(model, tokenizer, examples, task)`` for the command-line options.

    Sets ``args.processes`` (see :func:`launch_processes`); under ``accelerate
    launch`` the main process loads first, so it alone builds or downloads.
    """
    from ..glue import get_task
    from ..models.default_model import load_default_or

    args.processes = launch_processes(args)
    task = get_task(args.task)
    with args.processes.main_process_first():
        examples = load_examples(args, task, args.split)
        model, tokenizer = load_default_or(args.model, device=args.device, task=task.name)
    align_model_labels(args, model, task)
    return model, tokenizer, examples, task


def importance_options(args) -> dict:
    """Keyword arguments for :func:`~bertology_widgets.analyses.importance.head_importance` from the options."""
    return {
        "compat": args.compat,
        "normalize_by_layer": not args.dont_normalize_importance_by_layer,
        "normalize_global": not args.dont_normalize_global_importance,
        "max_length": args.max_length,
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


def compute_and_write_importance(args, model, tokenizer, examples, task, out: Path):
    """Run :func:`head_importance` with entropy; write the ``.npy`` files and ``importance.txt`` (main process)."""
    from ..analyses.importance import format_head_table, head_importance

    result = head_importance(model, tokenizer, examples, batch_size=args.batch_size, task=task.name,
                             progress=True, **importance_options(args))
    if not is_main(args):
        return result
    np.save(out / "head_importance.npy", result.importance.astype(np.float32))
    np.save(out / "attn_entropy.npy", result.entropy.astype(np.float32))
    mode = "compat (run_bertology.py)" if args.compat else "per example (mean |dL/dg|)"
    write_text(out / "importance.txt", [
        (f"Head importance on {task.display_name} {args.split}: {result.n_examples} examples, "
         f"{result.tokens} tokens, {mode}, {result.seconds:.1f} s", ""),
        ("Attention entropies", format_head_table(result.entropy)),
        ("Head importance scores", format_head_table(result.importance)),
        ("Head ranked by importance scores (0 = most important)", format_head_table(result.ranks)),
    ])
    return result


def run(args) -> int:
    out = output_folder(args.out)
    model, tokenizer, examples, task = load_inputs(args)
    compute_and_write_importance(args, model, tokenizer, examples, task, out)
    if not is_main(args):
        return 0
    print((out / "importance.txt").read_text(encoding="utf-8"), end="")
    print(f"wrote {out / 'head_importance.npy'}, {out / 'attn_entropy.npy'}, {out / 'importance.txt'}")
    return 0
