"""The live re-evaluation benchmark behind ``bertology bench``.

Measures, in one run and on one machine:

* the naive baseline: a full fp32 re-evaluation as ``run_bertology.py`` does
  it for every mask (batch size 1, inputs padded to 128 tokens, attention
  weights returned, a backward pass after each forward), and two lighter
  variants of that loop (forward only; forward only and unpadded);
* the live session: for one head in each layer, the time from a mask change
  to the first streamed estimate and to the exact score (medians);
* the same on a BERT-base-sized model (12 x 12, hidden 768, random weights);
* the live loop through a :class:`~bertology_widgets.widgets.Dashboard`: the
  kernel-thread time per toggle and the widget messages per toggle of a burst
  of 50, and the time from the last toggle to the exact score;
* the precision ``auto`` picks, its exact median beside fp32's, and the share
  of examples the fp32 guard re-scored;
* the cache's memory;
* opening a live session (``open_s``, ``first_capture_s``, ``baseline_s``), cold and with the
  shared results cache warm (``*_warm_s``); before it, what loading the model costs after
  ``import torch, transformers``: transformers' lazy model imports (``lazy_imports_s``, 0 when
  something imported them already), then weights and tokenizer (``load_s``).
  ``ModelSession.from_pretrained()`` after imports is about ``load_s + open_s``.

Figures are printed, never asserted: speed belongs to benchmarks, not tests.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Sequence

import numpy as np
import torch

from ..core.capturing import attention_implementation
from ..runtime.memory import ONEDNN_CACHE_VARIABLES


def naive_reevaluation_seconds(model, tokenizer, examples, max_length: int = 128, pad_to_max: bool = True,
                               backward: bool = True) -> float:
    """One full re-scoring pass as ``run_bertology.py`` makes it; returns seconds.

    ``run_bertology.py`` scores every mask with ``compute_heads_importance``:
    batch size 1, GLUE features padded to ``max_seq_length`` (128), attention
    weights returned (``output_attentions=True``, so eager attention), a head
    mask that requires grad, and ``loss.backward()`` after every forward.
    ``backward=False`` and ``pad_to_max=False`` time lighter variants of the
    same loop, for comparison.
    """
    from ..core.bound import bind
    from ..core.gating import mask_heads

    bound = bind(model, tokenizer)
    padding = "max_length" if pad_to_max else False
    drop_types = not bound.uses_token_types
    device = bound.device
    gates = torch.ones(bound.shape, device=device, requires_grad=backward)
    grad_mode = torch.enable_grad() if backward else torch.inference_mode()
    start = time.perf_counter()
    with grad_mode, attention_implementation(model, "eager"), mask_heads(bound, gates):
        for ex in examples:
            enc = tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=max_length, padding=padding,
                            return_tensors="pt")
            if drop_types:
                enc.pop("token_type_ids", None)
            enc = {k: v.to(device) for k, v in enc.items()}
            out = model(**enc, labels=torch.tensor([ex.label], device=device), output_attentions=True)
            if backward:
                out.loss.backward()
        synchronize(device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def synchronize(device) -> None:
    """Wait for queued GPU work, so wall-clock times include it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


#: Number of SST-2 dev examples, and its sentence lengths in words (mean and spread, roughly).
SST2_DEV_SIZE, SST2_WORDS_MEAN, SST2_WORDS_STD = 872, 19, 9
#: A movie-review vocabulary for the synthetic examples (every word is one WordPiece token).
WORDS = ("good bad great awful film movie plot actors boring brilliant dull fun charming mess "
         "story ending music scenes long short funny sad").split()


def synthetic_examples(n: int = SST2_DEV_SIZE, pair: bool = False, seed: int = 0) -> list:
    """``n`` labelled random-word examples with SST-2 dev-like lengths, for timing where no GLUE data is.

    Timings depend on token counts, not on which words they are.
    """
    from ..glue import Example

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(SST2_WORDS_MEAN, SST2_WORDS_STD, size=(n, 2)).round(), 2, 55).astype(int)
    return [Example(text_a=" ".join(rng.choice(WORDS, size=a)), label=int(rng.integers(2)), idx=i,
                    text_b=" ".join(rng.choice(WORDS, size=b)) if pair else None)
            for i, (a, b) in enumerate(lengths)]


def benchmark_examples(task, glue_dir=None, max_examples=None) -> tuple[Sequence, str]:
    """``(examples, where from)``: the task's dev split, else :func:`synthetic_examples` (said in the string)."""
    from ..glue import get_task, load_glue

    try:
        return load_glue(task, "validation", glue_dir=glue_dir, max_examples=max_examples), f"GLUE {task} dev"
    except (FileNotFoundError, OSError, ImportError) as exc:
        n = SST2_DEV_SIZE if max_examples is None else max_examples
        examples = synthetic_examples(n, pair=get_task(task).is_pair)
        return examples, (f"synthetic: {n} random-word examples with SST-2 dev-like lengths "
                          f"(no {task} dev data here: {type(exc).__name__})")


class _Timer:
    """Records when a session first publishes an estimate and when the exact score lands."""

    def __init__(self, session):
        self.session = session
        self.first_estimate = None
        self.exact = threading.Event()
        session.observe(self._on_estimate, "score_is_estimate")
        session.observe(self._on_exact, "scored_mask")

    def arm(self, mask):
        self.mask, self.first_estimate, self.start = mask, None, time.perf_counter()
        self.exact.clear()

    def _on_estimate(self, change):
        if change["new"] and self.first_estimate is None:
            self.first_estimate = time.perf_counter() - self.start

    def _on_exact(self, change):
        if np.array_equal(change["new"], self.mask):
            self.exact_s = time.perf_counter() - self.start
            self.exact.set()


def time_mask_changes(session, repeats: int = 3, timeout: float = 600.0) -> dict:
    """Mask one head per layer (a different head each repeat) and time estimate and exact score."""
    session.wait(timeout)  # the baseline first (a live session opens before it lands)
    # The steady state: every layer cache built (a baseline from the shared cache comes without them, and
    # a live session builds them only some seconds later, in the background).
    session.scorer.build_caches(timeout)
    timer = _Timer(session)
    per_layer: dict[int, list] = {}
    estimates: list = []
    for r in range(repeats):
        for layer in range(session.num_layers):
            head = (layer + 5 * r + 1) % session.num_heads
            mask = np.ones((session.num_layers, session.num_heads), dtype=np.float32)
            mask[layer, head] = 0
            session.scorer.lru.clear()  # a fresh mask each time: no memoised answers
            timer.arm(mask)
            session.mask = mask
            # The worker's results reach the traits through the dispatcher: drain it while waiting.
            if not session._dispatcher.wait(timer.exact.is_set, timeout):
                raise TimeoutError(f"no exact score after {timeout} s")
            per_layer.setdefault(layer, []).append(timer.exact_s)
            estimates.append(timer.first_estimate if timer.first_estimate is not None else timer.exact_s)
            session.reset_mask()
            session.wait(timeout)
    exact = [t for ts in per_layer.values() for t in ts]
    return {
        "exact_median_s": statistics.median(exact),
        "first_estimate_median_s": statistics.median(estimates),
        "exact_median_by_layer_s": [statistics.median(per_layer[i]) for i in sorted(per_layer)],
        "cache_mb": session.cache_bytes / 2**20,
        "cache_kb_per_example": session.cache_bytes / 1024 / len(session.examples),
    }


class _CountingComm:
    """Stands in for a front end's comm: counts the messages widgets send, and drops them."""

    sent = 0

    def __init__(self, **kwargs):
        import uuid

        self.comm_id = kwargs.get("comm_id") or uuid.uuid4().hex

    def send(self, data=None, metadata=None, buffers=None):
        _CountingComm.sent += 1

    def on_msg(self, callback):
        pass

    def close(self, *args, **kwargs):
        pass


def time_burst(session, toggles: int = 50, seed: int = 0, timeout: float = 600.0) -> dict:
    """A burst of ``toggles`` mask-grid clicks on a Dashboard over ``session``, on this (the kernel) thread.

    Returns the kernel-thread milliseconds per toggle, the seconds from the
    last toggle to the exact score, and the widget messages per toggle (burst
    and settling included).
    """
    import comm

    from ..widgets import Dashboard

    real = comm.create_comm
    comm.create_comm = _CountingComm  # type: ignore[assignment]  # a class that counts, called like the factory
    try:
        dashboard = Dashboard(session)
        session.wait(timeout)
        rng = np.random.default_rng(seed)
        clicks = [(int(rng.integers(session.num_layers)), int(rng.integers(session.num_heads)))
                  for _ in range(toggles)]
        session.scorer.lru.clear()
        _CountingComm.sent = 0
        start = time.perf_counter()
        for layer, head in clicks:
            dashboard.mask_grid.grid.click(layer, head)
        last = time.perf_counter()
        if not session.wait(timeout):
            raise TimeoutError(f"the burst did not settle in {timeout} s")
        settled = time.perf_counter()
        messages = _CountingComm.sent
        dashboard.close()
    finally:
        comm.create_comm = real
    session.reset_mask()
    session.wait(timeout)
    return {"kernel_ms_per_toggle": (last - start) * 1e3 / toggles, "burst_settle_s": settled - last,
            "messages_per_toggle": messages / toggles}


def time_open(net, tokenizer, examples, task: str, precision: str = "auto", timeout: float = 600.0) -> dict:
    """Open a live session twice on a fresh shared results folder: cold (the baseline computed), then warm
    (the baseline read from the folder). Seconds from the constructor's call to: the returned object
    (``open_s``), the shown example's first capture (``first_capture_s``), the baseline applied
    (``baseline_s``); the warm open's with a ``_warm`` suffix."""
    import tempfile

    from ..session import ModelSession

    figures: dict = {}
    saved = os.environ.get("BERTOLOGY_RESULTS_DIR")
    with tempfile.TemporaryDirectory(prefix="bertology-bench-results-") as folder:
        os.environ["BERTOLOGY_RESULTS_DIR"] = folder
        try:
            for suffix in ("", "_warm"):
                start = time.perf_counter()
                session = ModelSession(net, tokenizer, examples, task=task, precision=precision)
                figures[f"open{suffix}_s"] = time.perf_counter() - start
                if not session.wait(timeout):
                    raise TimeoutError(f"no baseline after {timeout} s")
                shown, landed = session.shown.first_shown_at, session.live.baseline_at
                figures[f"first_capture{suffix}_s"] = None if shown is None else shown - start
                figures[f"baseline{suffix}_s"] = None if landed is None else landed - start
                figures[f"baseline{suffix}_from_cache"] = session.live.baseline_from_cache
                session.close()
        finally:
            if saved is None:
                os.environ.pop("BERTOLOGY_RESULTS_DIR", None)
            else:
                os.environ["BERTOLOGY_RESULTS_DIR"] = saved
    return figures


def bert_base_random(num_labels: int = 2):
    """A BERT-base-sized classifier (12 layers x 12 heads, hidden 768) with random weights."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(num_labels=num_labels)
    return BertForSequenceClassification(config).eval()


def run_benchmark(model=None, task="sst2", glue_dir=None, max_examples=None, repeats=3, bert_base=True,
                  naive=True, bf16=True, device=None, log=print, precision="auto") -> dict:
    """Run every measurement and return one flat dict of figures."""
    from ..analyses.evaluation import evaluate
    from ..models.default_model import load_default_or
    from ..session import ModelSession

    start = time.perf_counter()
    import transformers.modeling_utils  # noqa: F401 - what loading any model imports first (transformers is lazy)

    lazy_imports_s = time.perf_counter() - start
    start = time.perf_counter()
    net, tokenizer = load_default_or(model, device=device, task=task)
    load_s = time.perf_counter() - start
    examples, data = benchmark_examples(task, glue_dir, max_examples)
    result: dict = {"lazy_imports_s": lazy_imports_s, "load_s": load_s}
    result |= {"task": task, "n": len(examples), "data": data, "model": str(net.config._name_or_path),
               "device": str(next(net.parameters()).device), "threads": torch.get_num_threads(),
               "onednn_cache_entries": os.environ.get(ONEDNN_CACHE_VARIABLES[0], "1024")}
    log(examples.describe() if hasattr(examples, "describe") else data)
    log(f"opening a session on {len(examples)} examples, cold and with the shared baseline warm ...")
    result.update(time_open(net, tokenizer, examples, task, precision))
    log(f"transformers' model imports {lazy_imports_s:.2f} s, then weights and tokenizer {load_s:.2f} s")
    log(f"open {result['open_s']:.3f} s, first capture {result['first_capture_s']:.3f} s, baseline "
        f"{result['baseline_s']:.3f} s cold; open {result['open_warm_s']:.3f} s, baseline "
        f"{result['baseline_warm_s']:.3f} s warm")
    t0 = time.perf_counter()
    session = ModelSession(net, tokenizer, examples, task=task, precision=precision)
    result["session_open_s"] = time.perf_counter() - t0
    result["precision"] = session.precision
    result.update(time_mask_changes(session, repeats))
    log(f"[{session.precision}] exact median {result['exact_median_s']:.3f} s, "
        f"first estimate {result['first_estimate_median_s']:.3f} s")
    result.update(time_burst(session))
    log(f"burst of 50: {result['kernel_ms_per_toggle']:.2f} ms kernel time per toggle, settled "
        f"{result['burst_settle_s']:.2f} s after the last, {result['messages_per_toggle']:.1f} messages per toggle")
    result["guard_rescored_fraction"] = session.scorer.guard.fraction if session.precision == "bf16" else None
    session.close()
    if session.precision == "fp32":
        result["fp32_exact_median_s"] = result["exact_median_s"]
    else:  # side by side, same machine, same run
        fp32 = ModelSession(net, tokenizer, examples, task=task, precision="fp32")
        result["fp32_exact_median_s"] = time_mask_changes(fp32, repeats)["exact_median_s"]
        fp32.close()
        log(f"fp32 exact median {result['fp32_exact_median_s']:.3f} s")
    result["auto_vs_fp32_exact_speedup"] = result["fp32_exact_median_s"] / result["exact_median_s"]
    if bf16:
        mask = np.ones((session.num_layers, session.num_heads), dtype=np.float32)
        mask[0, :4] = 0
        mask[3 % session.num_layers, 2:6] = 0
        flips = 0
        for m in (None, mask):  # the guard's promise: bf16 predictions equal fp32's
            exact = evaluate(net, tokenizer, examples, m, task=task, precision="fp32")
            approx = evaluate(net, tokenizer, examples, m, task=task, precision="bf16")
            flips += int((exact["predictions"] != approx["predictions"]).sum())
        result["bf16_guarded_prediction_flips"] = flips
    if naive:
        log("naive baseline, as run_bertology.py scores a mask: batch size 1, padded to 128, attentions, backward ...")
        result["naive_s"] = naive_reevaluation_seconds(net, tokenizer, examples)
        result["speedup"] = result["naive_s"] / result["exact_median_s"]
        log("lighter variants of the naive loop: forward only; forward only without padding ...")
        result["naive_forward_only_s"] = naive_reevaluation_seconds(net, tokenizer, examples, backward=False)
        result["speedup_vs_naive_forward_only"] = result["naive_forward_only_s"] / result["exact_median_s"]
        result["naive_unpadded_s"] = naive_reevaluation_seconds(net, tokenizer, examples, pad_to_max=False,
                                                                backward=False)
        result["speedup_vs_unpadded_naive"] = result["naive_unpadded_s"] / result["exact_median_s"]
    if bert_base:
        log("BERT-base-sized model (random weights) ...")
        big = bert_base_random().to(next(net.parameters()).device)
        big.config.bertology_task = task
        session = ModelSession(big, tokenizer, examples, task=task, precision=precision)
        figures = time_mask_changes(session, repeats=1)
        figures["precision"] = session.precision
        session.close()
        result.update({f"bert_base_{k}": v for k, v in figures.items()})
    return result
