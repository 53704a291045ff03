"""``bertology demo``: the dashboard on the offline default model, served as a page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="build the default model if needed and serve the dashboard")
    p.add_argument("--glue-dir", "--glue_dir", dest="glue_dir", default=None)
    p.add_argument("--lab", action="store_true", help="open JupyterLab instead of a Voila page")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..models.default_model import ensure_default_model

    if args.glue_dir:
        os.environ["BERTOLOGY_GLUE_DIR"] = str(Path(args.glue_dir).resolve())
    ensure_default_model()
    if not QUICKSTART.exists():
        raise FileNotFoundError(f"{QUICKSTART} is missing; run the demo from a checkout of bertology-widgets")
    if args.lab:
        command = [sys.executable, "-m", "jupyter", "lab", str(QUICKSTART), f"--port={args.port}"]
    else:
        command = [sys.executable, "-m", "voila", str(QUICKSTART), f"--port={args.port}"]
    if args.no_browser:
        command.append("--no-browser")
    print(f"Serving the dashboard on http://localhost:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0
