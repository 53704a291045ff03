"""GLUE figures of the offline default model and of MiniLM fine-tuned on RTE and MRPC.

    python benchmarks/glue_finetune.py --glue-dir ../shared/glue [--out-dir DIR] [--json]

Prints one JSON object: SST-2 dev accuracy and evaluation time of the default
model (and its build time, from the cache manifest), then for RTE and MRPC
the fine-tuning time and dev metrics of MiniLM fine-tuned on each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bertology_widgets.models.default_model import MANIFEST, ensure_default_model
from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.models.finetune import FinetuneConfig, finetune
from bertology_widgets.glue import load_glue
from bertology_widgets.models.loading import load_model

RECIPES = {
    "rte": FinetuneConfig(epochs=3, learning_rate=5e-5, batch_size=16, max_length=128),
    "mrpc": FinetuneConfig(epochs=3, learning_rate=5e-5, batch_size=16, max_length=128),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", default=None)
    parser.add_argument("--out-dir", default=None, help="keep the fine-tuned checkpoints here")
    parser.add_argument("--tasks", default="rte,mrpc")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    figures = {}
    folder = ensure_default_model(glue_dir=args.glue_dir)
    build = json.loads((folder / MANIFEST).read_text()).get("build", {})
    figures["default_build_train_seconds"] = build.get("train_seconds")
    model, tokenizer = load_model(str(folder))
    dev = load_glue("sst2", "validation", glue_dir=args.glue_dir)
    start = time.perf_counter()
    result = evaluate(model, tokenizer, dev, task="sst2")
    figures["sst2_eval_seconds"] = time.perf_counter() - start
    figures["sst2_accuracy"] = result["accuracy"]

    out_root = Path(args.out_dir or tempfile.mkdtemp(prefix="bertology-glue-"))
    for task in [t for t in args.tasks.split(",") if t]:
        summary = finetune("all-MiniLM-L6-v2", task, out_root / f"minilm-{task}", glue_dir=args.glue_dir,
                           config=RECIPES[task], progress=not args.json)
        figures[task] = {k: v for k, v in summary.items() if k not in ("out", "task")}
        figures[task]["checkpoint"] = str(out_root / f"minilm-{task}")
        print(f"{task}: {figures[task]}", file=sys.stderr)
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
