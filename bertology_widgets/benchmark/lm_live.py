"""The language model's live benchmark behind ``bertology bench --lm``.

On the default LM (SmolLM2-135M-Instruct, ``default-lm``) and the live
default texts (the first 32 UD English-EWT test sentences), one run measures:

* ``lazy_imports_s``: transformers' imports of the model's classes, then
  ``load_s``: weights and tokenizer from the cache (once it is built);
* ``full_pass_s``: one scoring pass over the texts from the inputs
  (:func:`~bertology_widgets.analyses.lm_evaluation.evaluate_lm`, the session's
  batches and path), the median of ``repeats``;
* per mask change, one head in each of 6 layers spread through the depth,
  on a live session whose layer caches are built: the time to the first
  estimate (``first_estimate_median_s``) and to the exact score
  (``exact_median_s``), and ``exact_to_full_pass``: the mean over those
  changes of exact time / ``full_pass_s``;
* ``peak_scoring_mb``: the process's peak resident memory during a scoring
  pass above what it held before (the model's own weights, ``model_mb``, and
  the session's layer caches, ``cache_mb``, are held already).

Figures are printed, never asserted.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import numpy as np
import torch

from .live_scoring import _Timer

#: How many layers, spread through the depth, get a head masked.
TIMED_LAYERS = 6


def spread_layers(num_layers: int, count: int = TIMED_LAYERS) -> list[int]:
    """``count`` layers from the first to the last, evenly spread (fewer when the model has fewer)."""
    return sorted({int(round(x)) for x in np.linspace(0, num_layers - 1, min(count, num_layers))})


class PeakMemory:
    """The peak resident memory of this process inside a ``with`` block, above its level at the start (MiB).

    A thread samples the resident set size every ``every_s``; a pass of a second or more is seen to
    within a few MiB.
    """

    def __init__(self, every_s: float = 0.002):
        import psutil

        self._process, self.every_s = psutil.Process(), every_s
        self.start = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = self._process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def above_start_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def load_timed(model: str, device=None) -> tuple[Any, Any, dict]:
    """``(model, tokenizer, {"lazy_imports_s", "load_s"})``: the language model's classes imported first,
    then its weights and tokenizer loaded (a ``default-lm`` not built yet is built before the clock starts)."""
    import importlib
    import json
    from pathlib import Path

    import transformers

    from ..models.default_model import load_default_or, resolve_model

    folder = resolve_model(model)
    start = time.perf_counter()
    config = Path(folder, "config.json")
    names = json.loads(config.read_text()).get("architectures", []) if config.is_file() else []
    importlib.import_module("transformers.modeling_utils")
    for name in names:  # the lazy module of the model's own class
        getattr(transformers, name, None)
    imports_s = time.perf_counter() - start
    start = time.perf_counter()
    net, tokenizer = load_default_or(folder, device=device, task="lm")
    return net, tokenizer, {"lazy_imports_s": imports_s, "load_s": time.perf_counter() - start}


def time_lm_mask_changes(session, layers: list[int], repeats: int, timeout: float = 600.0) -> dict:
    """Mask one head in each of ``layers`` (another head each repeat): seconds to the first estimate and to
    the exact score, each change scored afresh on built layer caches."""
    session.wait(timeout)
    session.scorer.build_caches(timeout)
    timer = _Timer(session)
    estimates, exact = [], []
    for r in range(repeats):
        for layer in layers:
            mask = np.ones((session.num_layers, session.num_heads), dtype=np.float32)
            mask[layer, (layer + 5 * r + 1) % session.num_heads] = 0
            session.scorer.lru.clear()
            timer.arm(mask)
            session.mask = mask
            if not session._dispatcher.wait(timer.exact.is_set, timeout):
                raise TimeoutError(f"no exact score after {timeout} s")
            exact.append(timer.exact_s)
            estimates.append(timer.first_estimate if timer.first_estimate is not None else timer.exact_s)
            session.reset_mask()
            session.wait(timeout)
    return {"first_estimate_median_s": statistics.median(estimates), "exact_median_s": statistics.median(exact),
            "exact_s": exact}


def run_lm_benchmark(model: str = "default-lm", text_file=None, max_examples=None, repeats: int = 3,
                     device=None, log=print) -> dict:
    """Every figure of the module docstring, as one flat dict."""
    from ..analyses.lm_evaluation import evaluate_lm
    from ..analyses.lm_texts import LIVE_DEFAULT_TEXTS, load_lm_texts
    from ..session import ModelSession

    net, tokenizer, result = load_timed(model, device)
    texts = load_lm_texts(text_file, LIVE_DEFAULT_TEXTS if max_examples is None else max_examples)
    log(texts.describe())
    params = list(net.parameters())
    result |= {"model": str(net.config._name_or_path), "n": len(texts), "data": texts.describe(),
               "device": str(params[0].device), "threads": torch.get_num_threads(),
               "model_mb": sum(p.numel() * p.element_size() for p in params) / 2**20}
    log(f"imports {result['lazy_imports_s']:.2f} s, then weights and tokenizer {result['load_s']:.2f} s")
    session = ModelSession(net, tokenizer, texts, task="lm")
    try:
        layers = spread_layers(session.num_layers)
        result |= {"task": session.task, "precision": session.precision, "batch_size": session.batch_size,
                   "timed_layers": layers, "repeats": repeats}
        session.wait(600)
        evaluate_lm(session.bound, None, session.eval_set, batch_size=session.batch_size)  # warm-up
        passes = []
        for _ in range(repeats):
            with PeakMemory() as peak:
                start = time.perf_counter()
                evaluate_lm(session.bound, None, session.eval_set, batch_size=session.batch_size)
                passes.append(time.perf_counter() - start)
            result["peak_scoring_mb"] = max(result.get("peak_scoring_mb", 0.0), peak.above_start_mb)
        result["full_pass_s"] = full = statistics.median(passes)
        log(f"full pass {full:.3f} s (median of {repeats}), peak {result['peak_scoring_mb']:.0f} MiB above the model")
        changes = time_lm_mask_changes(session, layers, repeats)
        result["first_estimate_median_s"] = changes["first_estimate_median_s"]
        result["exact_median_s"] = changes["exact_median_s"]
        result["exact_to_full_pass"] = statistics.mean(t / full for t in changes["exact_s"])
        result["exact_to_full_pass_by_layer"] = [  # exact_s runs the layers in order, once per repeat
            statistics.median(t / full for t in changes["exact_s"][i::len(layers)]) for i in range(len(layers))]
        result["cache_mb"] = session.cache_bytes / 2**20
        log(f"mask change: first estimate {result['first_estimate_median_s']:.3f} s, exact "
            f"{result['exact_median_s']:.3f} s, {result['exact_to_full_pass']:.2f} of a full pass on average")
    finally:
        session.close()
    return result


__all__ = ["PeakMemory", "TIMED_LAYERS", "run_lm_benchmark", "spread_layers"]
