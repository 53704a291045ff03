"""``bertology bench``: the live re-evaluation benchmark (figures, as JSON)."""

from __future__ import annotations

import json
import sys

from ._common import add_model_option, add_task_options, positive_int
from ._language_model import add_text_file_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmark live re-scoring against the naive batch-size-1 loop")
    add_model_option(p)
    add_task_options(p, task_required=False)
    p.set_defaults(task="sst2")
    p.add_argument("--repeats", type=positive_int, default=3, help="heads timed per layer (default 3)")
    p.add_argument("--no-bert-base", dest="bert_base", action="store_false", help="skip the BERT-base-sized model")
    p.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive baseline")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the live session's precision (auto: bf16 on CUDA or a CPU with AMX or AVX512-BF16, else fp32)")
    p.add_argument("--no-bf16-check", dest="bf16", action="store_false",
                   help="skip comparing bf16 (guarded) predictions with fp32's")
    p.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    p.add_argument("--classroom", action="store_true",
                   help="instead: memory of one more student's kernel (two dashboard kernels on the default model; "
                        "uss_mib_per_extra_session)")
    p.add_argument("--lm", action="store_true",
                   help="instead: a language model's live perplexity (--model, default default-lm) on the live "
                        "default texts: load time, full pass, mask change to first estimate and to exact "
                        "(ratio to a full pass), peak memory of a scoring pass")
    add_text_file_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.classroom:
        return run_classroom_command(args)
    if args.lm:
        return run_lm_command(args)
    from ..benchmark.live_scoring import run_benchmark

    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    result = run_benchmark(args.model, task=args.task, glue_dir=args.glue_dir, max_examples=args.max_examples,
                           repeats=args.repeats, bert_base=args.bert_base, naive=args.naive,
                           device=args.device, log=log, precision=args.precision, bf16=args.bf16)
    print_figures(result, args.json)
    return 0


def print_figures(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:34s} {format(value, '.4g') if isinstance(value, float) else value}")


def run_lm_command(args) -> int:
    """``bertology bench --lm``: what :mod:`bertology_widgets.benchmark.lm_live` measures."""
    from ..benchmark.lm_live import run_lm_benchmark

    result = run_lm_benchmark(args.model or "default-lm", text_file=args.text_file, max_examples=args.max_examples,
                              repeats=args.repeats, device=args.device,
                              log=(lambda msg: print(msg, file=sys.stderr)) if args.json else print)
    print_figures(result, args.json)
    return 0


def run_classroom_command(args) -> int:
    """``bertology bench --classroom``: what :mod:`bertology_widgets.benchmark.classroom` measures."""
    from ..benchmark.classroom import run_classroom

    result = run_classroom(log=(lambda msg: print(msg, file=sys.stderr)) if args.json else print)
    result.pop("stages_second")
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0
