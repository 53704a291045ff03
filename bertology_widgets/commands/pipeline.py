"""``bertology pipeline``: what each layer knows (POS, dependencies, the task's label), under a head mask.

Writes ``pipeline.npz``, ``pipeline.json`` (the documented format of
:mod:`bertology_widgets.analyses.pipeline`) and ``pipeline.png`` (or ``.svg``), and
prints the per-layer table. Word probes train on UD English-EWT dev and score
on test (``--ud-dir`` / ``$BERTOLOGY_UD_DIR``, else the copy embedded in the
package), or on any CoNLL-U files given with ``--train`` and ``--test``.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.files import output_folder
from ._common import (
    add_ablation_option,
    add_batch_size_option,
    add_mask_option,
    add_model_options,
    add_out_option,
    add_task_options,
    example_count,
    load_inputs,
    positive_int,
)


def task_list(text: str) -> tuple:
    """``type=`` for ``--tasks``: comma-separated known task names."""
    import argparse

    from ..analyses.pipeline import check_tasks

    try:
        return check_tasks([t.strip() for t in text.split(",") if t.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("pipeline", help="probe every layer for POS, dependencies and the task's label "
                                               "(Tenney et al. 2019), optionally under a head mask")
    add_model_options(p)
    p.add_argument("--tasks", type=task_list, default=("upos", "deprel", "task"),
                   help="comma-separated probing tasks: upos, deprel, task (default: all three)")
    add_task_options(p, task_required=False,
                     task_help="GLUE task of the 'task' row and of --ablation mean's head means (default: the "
                               "model's recorded task, else sst2)")
    p.add_argument("--ud-dir", dest="ud_dir", default=None,
                   help="folder with UD English-EWT's en_ewt-ud-dev.conllu and en_ewt-ud-test.conllu (default: "
                        "$BERTOLOGY_UD_DIR, else the copy embedded in the package)")
    p.add_argument("--train", default=None, help="a CoNLL-U file to train the word probes on (with --test)")
    p.add_argument("--test", default=None, help="a CoNLL-U file to score the word probes on (with --train)")
    p.add_argument("--max-sentences", dest="max_sentences", type=example_count, default=None,
                   help="use only the first N sentences of each CoNLL-U file")
    p.add_argument("--max-task-train", dest="max_task_train", type=positive_int, default=2000,
                   help="GLUE training examples for the 'task' row (a random subset; default 2000)")
    add_mask_option(p)
    add_ablation_option(p)
    add_out_option(p, help="folder for pipeline.npz, pipeline.json and the chart")
    p.add_argument("--format", choices=("png", "svg"), default="png", help="the chart's format (default png)")
    add_batch_size_option(p, 32)
    p.set_defaults(run=run)


def _check_inputs(args) -> None:
    """Every file named on the command line exists, before the model loads."""
    if (args.train is None) != (args.test is None):
        raise ValueError("--train and --test go together: give both CoNLL-U files, or neither (UD English-EWT)")
    for option, path in (("--train", args.train), ("--test", args.test), ("--mask", args.mask)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{option} {path}: no such file")
    if args.ud_dir is not None and not Path(args.ud_dir).is_dir():
        raise FileNotFoundError(f"--ud-dir {args.ud_dir}: no such folder")


def run(args) -> int:
    from ..analyses.pipeline import pipeline_probe
    from ..analyses.ud import read_conllu

    _check_inputs(args)
    out = output_folder(args.out)
    word_tasks = [t for t in args.tasks if t != "task"]
    train = test = None
    if word_tasks and args.train is not None:
        train, test = read_conllu(args.train), read_conllu(args.test)
    elif word_tasks:
        from ..analyses.ud import load_ud

        train, test = load_ud("dev", args.ud_dir), load_ud("test", args.ud_dir)
    bound, eval_set, task, mask = load_inputs(args, examples="task" in args.tasks, default_task="sst2")
    glue_train = glue_dev = None
    if "task" in args.tasks:
        from ..glue import load_glue

        glue_dev = eval_set.examples
        glue_train = load_glue(task, "train", glue_dir=args.glue_dir, max_examples=20000)
    result = pipeline_probe(bound, None, args.tasks, train=train, test=test, task_train=glue_train,
                            task_test=glue_dev, mask=mask, max_sentences=args.max_sentences,
                            max_task_train=args.max_task_train,
                            batch_size=args.batch_size, max_length=args.max_length, progress=True, cache=True)
    written = result.save(out)
    chart = out / f"pipeline.{args.format}"
    result.plot(chart)
    written.append(chart)
    under = ("no head masked" if mask is None
             else f"{result.heads_masked} of {mask.size} heads masked ({args.ablation} ablation)")
    print(f"What each layer knows: {bound.model.config._name_or_path or 'model'}, {under}; test accuracy per layer "
          f"(emb = embeddings, L0... = the layers' outputs), scalar mix, its expected layer E[l] and the centre "
          "of gravity CoG (positions along emb, L0, ... counted from 0)")
    print(result.table())
    if result.dropped_words:
        print(f"{result.dropped_words} words past --max-length {args.max_length} tokens were left out")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
