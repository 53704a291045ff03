"""Live re-evaluation benchmark: ``python benchmarks/live_eval.py --json`` (same as ``bertology bench``)."""

import sys

from bertology_widgets.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
