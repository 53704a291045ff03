"""The session's part for the classical-pipeline probes (:func:`bertology_widgets.analyses.pipeline.pipeline_probe`).

A self-contained part: it holds its own traits and is given, at
construction, what it needs from the session as callables (how to run an
analysis on a worker, the current mask, the ablation, the task's examples,
the cache key). The computation runs on the worker through ``run_analysis``
(on a private copy of the model); the result is assigned in ``apply``, which
the session's dispatcher runs on the kernel's main thread. Nothing here
assigns a trait from a worker.

Traits
------
pipeline : PipelineResult or None
    The last result, computed under ``pipeline_mask``.
pipeline_mask : np.ndarray ``(layers, heads)`` or None
    The head mask the shown result was computed under.
pipeline_unmasked : PipelineResult or None
    The result with no head masked, for the view's overlay (computed with it when the mask masks something).
pipeline_stale : bool
    The session's mask differs from ``pipeline_mask``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from traitlets import Bool, Instance

from ..analyses.pipeline import PipelineResult
from .part import Hold, SessionPart
from .traits import array_trait

#: Treebank sentences per split the session probes by default: a few minutes on a laptop, not a quarter hour.
SESSION_MAX_SENTENCES = 1000


class PipelinePart(SessionPart):
    """The ``pipeline`` analysis of a session (see the module docstring).

    Parameters
    ----------
    run_analysis : callable
        ``run_analysis(name, compute, apply, background, cache)``: the session's
        worker runner (``compute(model, report)`` on a worker, ``apply(value)``
        on the main thread).
    tokenizer
    current_mask : callable
        ``() -> np.ndarray (layers, heads)``.
    task_examples : callable
        ``() -> (train, dev)`` GLUE examples of the session's task, for the ``"task"``
        row; called on the worker (it may read files).

    Results are shared through the results cache (``pipeline_probe(cache=True)``),
    keyed by model, mask, ablation, data and options.
    """

    pipeline = Instance(PipelineResult, allow_none=True, help="The last pipeline result")
    pipeline_mask = array_trait("layers", "heads", kinds="fiub", help="The mask the pipeline was computed under")
    pipeline_unmasked = Instance(PipelineResult, allow_none=True, help="The pipeline with no head masked")
    pipeline_stale = Bool(False)

    def __init__(self, run_analysis: Callable, tokenizer, current_mask: Callable,
                 task_examples: Callable, *, batch_size: int = 32, max_length: int = 128, hold: Hold | None = None):
        super().__init__(hold)
        self._run_analysis = run_analysis
        self._tokenizer = tokenizer
        self._current_mask = current_mask
        self._task_examples = task_examples
        self._batch_size, self._max_length = batch_size, max_length

    def compute(self, tasks=("upos", "deprel", "task"), *, max_sentences: int | None = SESSION_MAX_SENTENCES,
                ud_dir=None, background: bool = True, **options):
        """Run :func:`~bertology_widgets.analyses.pipeline.pipeline_probe` under the current mask and ablation.

        Also computes the unmasked result once (for the overlay) when the mask
        masks a head and no unmasked result with these options is held.
        ``options`` go to ``pipeline_probe`` (``l2``, ``max_iter``, ``max_task_train``, ``task_pooling``).
        Returns the worker thread (``background=True``) or None once applied.
        """
        from ..analyses.pipeline import check_tasks, pipeline_probe

        tasks = check_tasks(tasks)
        mask = np.array(self._current_mask(), dtype=np.float32)
        need_unmasked = bool((mask != 1).any()) and self.pipeline_unmasked is None
        batch_size, max_length = self._batch_size, self._max_length
        task_examples = self._task_examples

        def compute(model, report):
            train = dev = None
            if "task" in tasks:
                train, dev = task_examples()
            runs = [(mask, "masked")] + ([(None, "unmasked")] if need_unmasked else [])
            out = {}
            for number, (run_mask, name) in enumerate(runs):
                def progress(done, total, number=number):
                    report(number * total + done, len(runs) * total)

                # model: the session's bound copy, whose default ablation (zero or mean) the probes run under
                result = pipeline_probe(model, None, tasks, ud_dir=ud_dir, task_train=train, task_test=dev,
                                        mask=run_mask, max_sentences=max_sentences,
                                        batch_size=batch_size, max_length=max_length, progress=progress,
                                        cache=True, **options)
                out[name] = result.to_json()
            return out

        def apply(value):  # the main thread
            masked = PipelineResult.from_json(value["masked"])
            values = {"pipeline": masked, "pipeline_mask": mask}
            if "unmasked" in value:
                values["pipeline_unmasked"] = PipelineResult.from_json(value["unmasked"])
            elif not (mask != 1).any():
                values["pipeline_unmasked"] = masked
            current = np.asarray(self._current_mask())
            self.publish(**values, pipeline_stale=not np.array_equal(current, mask))

        return self._run_analysis("pipeline", compute, apply, background, None)

    def mask_changed(self, mask) -> None:
        """The session's observer of ``mask`` calls this (main thread): update ``pipeline_stale``."""
        stale = self.pipeline is not None and not np.array_equal(np.asarray(mask), self.pipeline_mask)
        if self.pipeline_stale != stale:
            self.pipeline_stale = stale


__all__ = ["PipelinePart", "SESSION_MAX_SENTENCES"]
