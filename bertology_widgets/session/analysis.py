"""Long analyses on a session: head importance, the masking curve, the layer probe.

Every analysis goes through :meth:`AnalysisRunner.run`:

* ``compute(model, report)`` runs on a worker thread, on a private copy of
  the model (so the live score, the attention view and the kernel stay
  responsive, and the copy's gate hooks can never leak into live scoring).
  It touches no trait, calls ``report(done, total)`` for progress and
  returns its result;
* ``apply(result)`` runs on the kernel's main thread (through the session's
  dispatcher, as a :class:`~.jobs.Lane` hands results over) and assigns the traits.

The runner is a part that owns the ``analysis_*`` traits; :class:`AnalysisResults`
is the part that owns importance, the masking curve and the probe. Failures land
in ``analysis_error`` (cleared when the next analysis starts).

An analysis that depends only on the model, the examples and its options
passes ``cache=(kind, key_parts)``: its result is then shared on disk with
every other kernel (:mod:`bertology_widgets.runtime.results_cache`), and the model is
copied only when the result really has to be computed.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, NamedTuple

import numpy as np
from traitlets import Bool, Dict, Float, Instance, Unicode

from ..analyses.probe import ProbeResult
from .jobs import Lane
from .part import Hold, SessionPart
from .traits import array_trait

PROGRESS_EVERY_S = 0.25  # progress reaches the traits at most 4 times a second


class AnalysisData(NamedTuple):
    """What the analysis parts read of the session: fixed when it opens."""

    tokenizer: Any
    examples: list
    eval_set: Any  # EncodedSet of the examples: no analysis tokenizes them again
    task: str
    label_names: list
    shape: tuple  # (layers, heads)
    batch_size: int
    max_length: int

    def examples_for(self, max_examples):
        return self.examples if max_examples is None else self.examples[:max_examples]

    def set_for(self, max_examples):
        """The encoded examples (the first ``max_examples``)."""
        return self.eval_set if max_examples is None else self.eval_set.head(max_examples)


class AnalysisRunner(SessionPart):
    """Runs one analysis at a time off the kernel thread; a part of :class:`~.session.ModelSession`.

    Traits
    ------
    analysis_busy : bool; analysis_progress : float in [0, 1]; analysis_status : str
        ``analysis_status`` is the running analysis' name, then ``"<name>: done"`` or ``"<name>: failed"``.
    analysis_cached : bool
        The last result came from the shared results cache.
    analysis_error : str

    Parameters
    ----------
    post : callable
        The session dispatcher's ``post``: ``post(fn, *args)`` runs ``fn`` on the owner thread.
    drain : callable
        Runs what was posted (owner thread), for analyses run in the foreground.
    bound, model_lock
        The session's bound model; an analysis computes on a bound deep copy taken under the lock.
    """

    analysis_busy = Bool(False)
    analysis_progress = Float(0.0)
    analysis_status = Unicode("")
    analysis_cached = Bool(False)
    analysis_error = Unicode("")

    def __init__(self, post: Callable[..., None], drain: Callable[[], int], bound, model_lock: threading.RLock,
                 hold: Hold | None = None):
        super().__init__(hold)
        self.lane = Lane(post)
        self._drain = drain
        self._bound, self._lock = bound, model_lock
        self._fingerprint: dict | None = None

    def running(self) -> str | None:
        """The name of the analysis under way, or None."""
        return self.analysis_status if self.analysis_busy else None

    def close(self) -> None:
        """Drop the result of the analysis under way (it is never published)."""
        self.lane.close()

    def shown_from_cache(self, names: list[str]) -> None:
        """Say that the results ``names`` were read from the shared results cache (owner thread)."""
        self.publish(analysis_status=f"{' and '.join(names)}: from the shared cache", analysis_cached=True)

    def refused(self, message: str) -> None:
        """Say why an analysis could not start (owner thread)."""
        self.publish(analysis_error=message)

    def private_model(self):
        """A deep copy of the model, for long work that must not block or disturb live scoring."""
        return self.private_bound().model

    def private_bound(self):
        """A bound deep copy of the model (the session's task, label order and ablation), for the analyses."""
        with self._lock:
            return self._bound.copy()

    def results_key(self, task: str, examples, **options) -> dict:
        """What a shared result depends on: the model (fingerprinted once per session), task, examples, options."""
        from ..runtime.results_cache import examples_digest, model_fingerprint

        if self._fingerprint is None:
            with self._lock:
                self._fingerprint = model_fingerprint(self._bound.model)
        label_map = self._bound.label_map
        return {"model": self._fingerprint, "task": task, "examples": examples_digest(examples),
                "labels": None if label_map is None else label_map.as_dict(), "options": options}

    def run(self, name: str, compute, apply, background: bool = True, cache=None):
        """Run ``compute(model, report)`` on a worker, then ``apply(result)`` on the main thread.

        ``cache=(kind, key_parts)`` shares the result through the results
        cache (``compute`` must then return JSON-able data and arrays).
        Returns the worker thread (``background=True``), or None once applied.
        """
        running = self.running()
        if running is not None:
            raise RuntimeError(f"an analysis is already running ({running}); wait for it to finish")
        self.publish(analysis_busy=True, analysis_progress=0.0, analysis_status=name, analysis_error="")
        lane = self.lane
        generation = lane.request()
        last = [0.0]

        def report(done, total):  # worker thread: throttled, handed to the main thread
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or done >= total:
                last[0] = now
                lane.deliver(generation, self._progressed, float(done) / max(1, total))

        def run():
            if cache is None:
                return compute(self.private_bound(), report), False
            from ..runtime.results_cache import cached_result

            return cached_result(cache[0], cache[1], lambda: compute(self.private_bound(), report))

        def target():
            try:
                value, hit = run()
            except Exception as exc:  # noqa: BLE001 - shown in the dashboard, never raised in the kernel
                lane.deliver(generation, self._finished, name, None, exc)
                return
            lane.deliver(generation, self._finished, name, apply, value, hit)

        if not background:
            target()
            self._drain()
            return None
        thread = threading.Thread(target=target, name="bertology-analysis", daemon=True)
        thread.start()
        return thread

    def _progressed(self, fraction: float) -> None:
        if self.running() is not None:
            self.publish(analysis_progress=fraction)

    def _finished(self, name: str, apply, value, cached: bool = False) -> None:
        """Main thread: apply the result (or show the failure) and free the analysis slot."""
        failure = value if apply is None else None
        if apply is not None:
            try:
                apply(value)
            except Exception as exc:  # noqa: BLE001
                failure = exc
        status = {"analysis_status": f"{name}: {'failed' if failure is not None else 'done'}",
                  "analysis_cached": bool(cached) and failure is None, "analysis_busy": False,
                  "analysis_progress": 1.0}
        if failure is not None:
            status["analysis_error"] = f"{name} failed: {type(failure).__name__}: {failure}"
        self.publish(**status)
        from ..runtime.memory import release_freed_memory

        release_freed_memory()  # the analysis' model copy and activations


class AnalysisResults(SessionPart):
    """Head importance, the masking curve and the layer probe; a part of :class:`~.session.ModelSession`.

    The work runs through the session's :class:`AnalysisRunner` (``run``).

    Traits
    ------
    importance, entropy : np.ndarray ``(layers, heads)`` or None
    curve : dict
        :meth:`MaskingCurve.to_dict` of the last masking curve, plus
        ``random_baseline`` (steps with mean / min / max over seeds).
    probe : ProbeResult or None
        The last layer probe (:meth:`compute_probe`).

    Parameters
    ----------
    runner : AnalysisRunner
        Runs the analyses (``run``, ``results_key``) and shows their status.
    data : AnalysisData
    current_mask : callable
        ``() -> np.ndarray (layers, heads)``: the session's mask.
    set_mask : callable
        ``set_mask(mask)``: assign the session's mask (:meth:`mask_least_important`).
    """

    importance = array_trait("layers", "heads", kinds="fiu", help="Head importance (higher: more important)")
    entropy = array_trait("layers", "heads", kinds="fiu", help="Mean attention entropy of each head, in nats")
    curve = Dict()
    probe = Instance(ProbeResult, allow_none=True, help="The last layer probe (accuracy: (layers + 1,))")

    def __init__(self, runner: AnalysisRunner, data: AnalysisData, current_mask: Callable[[], Any],
                 set_mask: Callable[[Any], None], hold: Hold | None = None):
        super().__init__(hold)
        self.runner, self.data = runner, data
        self._current_mask, self._set_mask = current_mask, set_mask

    def _results_key(self, examples, **options) -> dict:
        return self.runner.results_key(self.data.task, examples, **options)

    def compute_importance(self, max_examples: int | None = None, background: bool = True, **options):
        """Head importance and attention entropy under the current mask (see :func:`head_importance`).

        Returns the worker thread (``background=True``) or None once done.
        """
        from ..analyses.importance import head_importance

        examples, mask = self.data.examples_for(max_examples), np.array(self._current_mask())
        eval_set = self.data.set_for(max_examples)

        def compute(model, report):
            result = head_importance(model, eval_set, mask=mask, on_progress=report, **options)
            return result.importance, result.entropy

        def apply(result):
            self.publish(importance=result[0], entropy=result[1])

        cache = ("importance", self._importance_key(examples, mask, options))
        return self.runner.run("head importance", compute, apply, background, cache)

    def _importance_key(self, examples, mask, options):
        return self._results_key(examples, mask=np.asarray(mask, dtype=np.float32), **options)

    def _curve_key(self, examples, random_seeds, options):
        return self._results_key(examples, random_seeds=list(random_seeds or ()), **options)

    def compute_masking_curve(self, max_examples: int | None = None, background: bool = True,
                              random_seeds=(0, 1, 2), **options):
        """The iterative masking curve (``run_bertology.py --try_masking``) and a random-order baseline."""
        from ..analyses.masking_curve import heads_per_step, masking_curve, random_masking_curve

        examples = self.data.examples_for(max_examples)
        eval_set = self.data.set_for(max_examples)
        layers, heads = self.data.shape

        def compute(model, report):
            # The bar's first half follows the curve's steps (at most all heads but one, per_step at a time),
            # the second half the random-order baseline.
            total = layers * heads
            steps = max(1, (total - 1) // heads_per_step(total, options.get("masking_amount", 0.1)))
            done = [0]

            def on_step(_entry):
                done[0] += 1
                report(min(done[0], steps), 2 * steps)

            result = masking_curve(model, eval_set, on_step=on_step, **options)
            report(1, 2)
            data = result.to_dict()
            if random_seeds:
                baseline = random_masking_curve(model, eval_set, seeds=random_seeds,
                                                masking_amount=result.masking_amount,
                                                masking_threshold=result.masking_threshold,
                                                original_score=result.original_score,
                                                min_steps=len(result.curve) - 1)
                data["random_baseline"] = baseline
            return result.importance, data

        def apply(value):
            self.publish(importance=value[0], curve=value[1])

        cache = ("masking_curve", self._curve_key(examples, random_seeds, options))
        return self.runner.run("masking curve", compute, apply, background, cache)

    def load_shared_results(self, max_examples: int | None = None, random_seeds=(0, 1, 2), **curve_options) -> list:
        """Show the importance, entropy and masking curve already in the shared results cache.

        Looks up what :meth:`compute_importance` (unmasked) and
        :meth:`compute_masking_curve` would compute with these options; reads,
        never computes. Returns the names of the results found.
        """
        from ..runtime.results_cache import lookup, results_dir

        if results_dir() is None:
            return []
        examples, found = self.data.examples_for(max_examples), []
        ones = np.ones(self.data.shape, dtype=np.float32)
        importance = lookup("importance", self._importance_key(examples, ones, {}))
        curve = lookup("masking_curve", self._curve_key(examples, random_seeds, curve_options))
        values: dict = {}
        if importance is not None:
            values.update(importance=importance[0], entropy=importance[1])
            found.append("importance")
        if curve is not None:
            values.update(importance=curve[0], curve=curve[1])
            found.append("masking curve")
        with self._hold():
            self.publish(**values)
            if found:
                self.runner.shown_from_cache(found)
        return found

    def compute_probe(self, train_examples=None, *, glue_dir=None, train_pool: int = 20000, max_train: int = 2000,
                      max_dev: int = 1000, pooling: str = "cls", C: float | None = None, seed: int = 0,
                      background: bool = True):
        """Linear probes of the task on every layer under the current mask: the pipeline's ``task`` row.

        See :func:`~bertology_widgets.analyses.probe.layer_probe` (``C=None``: the pipeline's default
        ``l2``, the one the ``task`` row of :meth:`compute_pipeline` uses).

        ``train_examples`` default to ``load_glue(task, "train", glue_dir=glue_dir,
        max_examples=train_pool)``, loaded on the worker. The result lands in ``probe``.
        """
        from ..analyses.probe import layer_probe

        data = self.data
        if not data.label_names:
            raise ValueError(f"{data.task} has no classes (a regression task or a language model); layer probes "
                             "support classification tasks only")
        mask, task, dev = np.array(self._current_mask()), data.task, list(data.examples)

        def compute(model, report):
            train = train_examples
            if train is None:
                from ..glue import load_glue

                train = list(load_glue(task, "train", glue_dir=glue_dir, max_examples=train_pool))
            return layer_probe(model, data.tokenizer, train, dev, mask, pooling, max_train, C, seed,
                               progress=report, max_dev=max_dev,
                               batch_size=data.batch_size, max_length=data.max_length)

        def apply(result):
            self.probe = result

        return self.runner.run("layer probe", compute, apply, background)

    def mask_least_important(self, n: int) -> None:
        """Mask the ``n`` least important heads (needs :meth:`compute_importance` first); keep the rest."""
        if self.importance is None:
            raise ValueError("compute head importance first (compute_importance())")
        layers, heads = self.data.shape
        total = layers * heads
        if not 0 <= n <= total:
            raise ValueError(f"n must lie in 0..{total}, got {n}")
        order = np.argsort(np.asarray(self.importance).reshape(-1), kind="stable")
        mask = np.ones(total, dtype=np.float32)
        mask[order[:n]] = 0
        self._set_mask(mask.reshape(layers, heads))
