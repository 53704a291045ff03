"""``bertology finetune``: fine-tune a sequence classifier on a GLUE task."""

from __future__ import annotations

import json

from ._common import example_count, output_folder, positive_float, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("finetune", help="fine-tune a model on a GLUE train split and save a checkpoint")
    p.add_argument("--model", default="all-MiniLM-L6-v2",
                   help="starting model: folder, hub name, or a config name with --from-scratch "
                        "(default: offline MiniLM)")
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True, help="folder for the checkpoint (save_pretrained layout)")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    p.add_argument("--max-train-examples", "--max_train_examples", dest="max_train_examples", type=example_count,
                   default=None)
    p.add_argument("--epochs", type=positive_float, default=1.0)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=32)
    p.add_argument("--learning-rate", "--learning_rate", dest="learning_rate", type=positive_float, default=1e-4)
    p.add_argument("--max-length", "--max_length", dest="max_length", type=positive_int, default=128)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (fast on CPUs with AMX)")
    p.add_argument("--freeze-embeddings", action="store_true", help="do not train the word-embedding table")
    p.add_argument("--from-scratch", action="store_true",
                   help="train a fresh model from a named config (gpt2-small-config) instead of pretrained weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..models.finetune import FinetuneConfig, finetune
    from ..glue import get_task

    get_task(args.task)  # unknown task or unwritable --out: fail before loading anything
    output_folder(args.out)
    scratch = None
    if args.from_scratch:
        from ..models.small_gpt2 import scratch_builder

        scratch = scratch_builder(args.model, glue_dir=args.glue_dir)
    config = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                            max_length=args.max_length, max_train_examples=args.max_train_examples,
                            bf16=args.bf16, seed=args.seed, freeze_embeddings=args.freeze_embeddings)
    result = finetune(None if scratch else args.model, args.task, args.out, glue_dir=args.glue_dir, config=config,
                      progress=not args.json, from_scratch_config=scratch, device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k} {result[k]:.4f}" for k in get_task(args.task).metrics)
        print(f"saved {result['out']} ({result['train_examples']} train examples, "
              f"{result['train_seconds']:.0f} s); dev {metrics}")
    return 0
