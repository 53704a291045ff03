"""``bertology default-model``: build (or check) the offline default model."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("default-model", help="build the default model (MiniLM fine-tuned on SST-2) if needed")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    p.add_argument("--rebuild", action="store_true", help="build again even if the cache is intact")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..models.default_model import ensure_default_model

    print(ensure_default_model(glue_dir=args.glue_dir, rebuild=args.rebuild))
    return 0
