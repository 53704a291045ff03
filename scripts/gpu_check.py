"""Driver of scripts/gpu_check.sh: run each part under a time limit and print one JSON summary.

Every part is caught: a failing part is reported in the JSON (``ok: false``,
the error or the end of its output) and the others still run. The models are
randomly initialised from MiniLM's and BERT-base's shapes: timings depend on
the shapes and token counts, not on the weights. Without GLUE data, bench
times synthetic sentences with SST-2 dev-like lengths and says so (``data``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_COPY = ROOT / ".whl" / "minilm-tokenizer"
MINILM_SHAPE = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
BERT_BASE_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tail(text: str, n: int = 1500) -> str:
    return text[-n:] if text else ""


def run(command, timeout: float) -> dict:
    """Run ``command``; ``{"ok", "seconds", "returncode", "stdout", "stderr"}`` (``ok`` False on timeout)."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, timeout))
        out = {"ok": done.returncode == 0, "returncode": done.returncode, "stdout": done.stdout,
               "stderr": done.stderr}
    except subprocess.TimeoutExpired as exc:
        out = {"ok": False, "returncode": None, "error": f"timed out after {timeout:.0f} s",
               "stdout": exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""),
               "stderr": exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")}
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def tokenizer():
    """MiniLM's WordPiece tokenizer when at hand (.whl/ copy or the offline package), else a small word vocabulary."""
    from transformers import AutoTokenizer, BertTokenizerFast

    if (TOKENIZER_COPY / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(TOKENIZER_COPY), "MiniLM WordPiece (.whl copy)"
    try:
        from bertology_widgets.testing import tiny_tokenizer

        return tiny_tokenizer(), "MiniLM WordPiece (offline package)"
    except ImportError:
        from bertology_widgets.testing import WORDS

        vocab = Path(tempfile.mkdtemp()) / "vocab.txt"
        words = SPECIALS + sorted(set(WORDS)) + list("abcdefghijklmnopqrstuvwxyz.,!?'")
        vocab.write_text("\n".join(words) + "\n")
        return BertTokenizerFast(vocab_file=str(vocab)), "small word vocabulary (no MiniLM tokenizer here)"


def save_random_model(folder: Path, shape: dict, tok) -> None:
    """A BERT classifier of ``shape`` with random weights, saved with ``tok``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(num_labels=2, vocab_size=30522, **shape)
    config.bertology_task = "sst2"
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def bench(model_dir: Path, device: str, dry_run: bool, timeout: float) -> dict:
    command = [sys.executable, "-m", "bertology_widgets.cli", "bench", "--model", str(model_dir), "--json",
               "--device", device, "--no-bert-base", "--task", "sst2"]
    if dry_run:  # the CPU only checks that every step runs; BERT-base's naive loop would take minutes there
        command += ["--max-examples", "24", "--repeats", "1"]
        command += ["--no-naive"] if "bert_base" in model_dir.name else []
    result = run(command, timeout)
    part = {"ok": result["ok"], "seconds": result["seconds"]}
    if result["ok"]:
        try:
            part["figures"] = json.loads(result["stdout"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            part.update(ok=False, error="no JSON on stdout", stdout=tail(result["stdout"]))
    else:
        part.update(error=result.get("error", f"exit {result['returncode']}"), stderr=tail(result["stderr"]))
    return part


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU, with few examples")
    parser.add_argument("--budget-s", type=float, default=330.0, help="wall-clock budget for all parts")
    args = parser.parse_args()
    start = time.perf_counter()
    left = lambda cap: min(cap, args.budget_s - (time.perf_counter() - start))  # noqa: E731
    summary = {"script": "scripts/gpu_check.sh", "weights": "random (MiniLM and BERT-base shapes)", "parts": {}}
    parts = summary["parts"]
    try:
        import torch

        cuda = torch.cuda.is_available()
        dry_run = args.dry_run or not cuda
        summary.update(torch=torch.__version__, cuda_available=cuda, python=sys.version.split()[0],
                       gpu=torch.cuda.get_device_name(0) if cuda else None,
                       mode="cpu dry run" if dry_run else "cuda")
        device = "cpu" if dry_run else "cuda"

        tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                     "tests/integration/test_gpu.py"], left(150))
        lines = (tests["stdout"] or "").strip().splitlines()
        parts["gpu_tests"] = {"ok": tests["ok"], "seconds": tests["seconds"], "result": lines[-1] if lines else "",
                              **({} if tests["ok"] else {"output": tail(tests["stdout"] + tests["stderr"], 3000)})}

        folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        tok, summary["tokenizer"] = tokenizer()
        for name, shape in (("minilm_shaped", MINILM_SHAPE), ("bert_base_shaped", BERT_BASE_SHAPE)):
            try:
                save_random_model(folder / name, shape, tok)
                parts[f"bench_{name}"] = bench(folder / name, device, dry_run, left(150))
            except Exception as exc:  # noqa: BLE001 - reported in the JSON, the next part still runs
                parts[f"bench_{name}"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                          "traceback": tail(traceback.format_exc())}
    except Exception as exc:  # noqa: BLE001
        summary["error"] = f"{type(exc).__name__}: {exc}"
        summary["traceback"] = tail(traceback.format_exc())
    summary["ok"] = bool(parts) and all(p.get("ok") for p in parts.values()) and "error" not in summary
    summary["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
