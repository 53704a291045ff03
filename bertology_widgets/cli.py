"""The ``bertology`` command line.

Each subcommand lives in its own small module under
``bertology_widgets.commands`` and registers itself with ``add_parser``;
heavy imports happen inside ``run`` so ``bertology --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from ._version import __version__

SUBCOMMANDS = ("evaluate", "finetune", "importance", "mask", "prune", "bench", "default_model", "demo",
               "roles", "patch", "precompute", "explain", "agreement", "pipeline", "lens", "snapshot")


class _Parser(argparse.ArgumentParser):
    """Bad options get one line (the error and where to read more), not the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bertology",
        description="Look inside transformer models: GLUE scores under head masks, "
        "head importance, masking curves and real head pruning.",
    )
    parser.add_argument("--version", action="version", version=f"bertology-widgets {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:  # a sub-command that fails to import is an error, never silently left out
        import_module(f".commands.{name}", __package__).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if getattr(args, "shards_batches", False):
        from .runtime.distributed import requested_cpu_processes, start_cpu_processes

        wanted = requested_cpu_processes()
        if wanted > 1:  # accelerate launch --cpu started one process for N
            return start_cpu_processes(wanted, list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"bertology {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bertology {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
