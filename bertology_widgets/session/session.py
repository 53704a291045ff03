"""``ModelSession``: the single source of truth behind the dashboard.

A :class:`traitlets.HasTraits` object (no ipywidgets) that holds a model, a
GLUE evaluation set and everything a view shows: the chosen layer and head,
the head mask, the example under the microscope and its attention, and the
live score. Views link to these traits; nothing else holds state.
"""

from __future__ import annotations

import threading
import warnings
import weakref

import numpy as np
import traitlets
from traitlets import Instance
from traitlets import Any, Bool, Dict, Float, HasTraits, Int, List, TraitError, Unicode, observe, validate

from ..core.architectures import adapter_for, layer_attention_note
from ..core.batching import encode_examples
from ..analyses.evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, evaluate, labelled_task
from ..core.gating import model_shape, validate_layer_head
from ..core.labels import TaskMismatchWarning, label_notice

from ..runtime.memory import release_freed_memory
from ..core.precision import PRECISIONS, resolve_precision
from ..core.layerwise import DEFAULT_CACHE_EVERY, DEFAULT_CACHE_MB
from . import state as state_io
from .analysis import AnalysisMixin
from .dispatcher import Dispatcher
from .head_analyses import HeadAnalysesMixin
from .shown_input import ShownInputMixin
from .live import LRU, LiveScorer
from .pipeline_part import PipelinePart, PipelineResult
from .traits import HeadMaskTrait, array_trait, frozen, head_mask_array


class ModelSession(ShownInputMixin, HeadAnalysesMixin, AnalysisMixin, HasTraits):
    """A model, a GLUE evaluation set and the live state of the dashboard.

    ``cache_mb`` (default 1024, ``None``: no limit) bounds the live layer caches; batches
    past it are re-scored in full, with the same scores, and ``notice`` says so. ``cache_every``
    (default 3) keeps every k-th layer's input in them (the scores are bitwise the same; 1 is the
    fastest re-scoring and the most memory).

    Traits
    ------
    num_layers, num_heads : int, read-only
    causal : bool, read-only
        True for decoder models (their attention is causal).
    layer_notes : list of str, read-only
        Per layer, what is special about its attention (``""`` for most families).
    layer, head : int
        The selected head (validated against the model).
    head_masked : bool
        Whether the selected head is masked (a toggle links here).
    mask : np.ndarray, shape ``(layers, heads)``, float32, read-only
        1 keeps a head, 0 masks it. Assign a new array to change it.
    example_index : int
        Dev example shown (``-1`` for custom text).
    text, text_pair : str
        The input whose attention is shown.
    tokens : list of str
    attention : np.ndarray, shape ``(query, key)``
        Weights of the selected head on the current input, under the mask.
    attentions : np.ndarray, shape ``(heads, query, key)``
        All heads of the selected layer.
    hidden_states : np.ndarray, shape ``(layers + 1, pos, hidden)``
    score, baseline_score : dict
        The task's metrics under the mask, and with no head masked.
    score_interval : dict
        ``{metric: (low, high)}`` while ``score_is_estimate``.
    predictions, baseline_predictions, labels : np.ndarray, shape ``(n,)``
    flipped : list of int
        Examples whose prediction differs from the unmasked model's.
    example_label, example_prediction, example_baseline_prediction
        For the shown input (label is ``None`` for custom text).
    progress : float in [0, 1]; busy : bool; notice : str
    data_source : str
        Where the examples came from, e.g. ``"SST-2 dev: embedded copy (872
        examples)"`` (empty when they were not given as a ``GlueSplit``).
    score_error, capture_error, analysis_error : str
        The last failure of each source (scoring, the shown input, an
        analysis); each is cleared when its own source next succeeds.
    error : str
        Failures of the views' callbacks (a refused value, a broken button).
    precision : str, read-only
        ``"fp32"`` or ``"bf16"``: what the live score and :meth:`evaluate` run
        in (``precision="auto"`` picks bf16 on fast-bf16 hardware; the fp32
        guard keeps the predictions equal to fp32's).
    importance, entropy, curve, probe, analysis_busy, analysis_progress, analysis_status
        Head importance, the masking curve and the layer probe (see :class:`~.analysis.AnalysisMixin`).

    ablation, head_means, roles, role_measures, corrupted_text, patching
        Mean ablation, head roles and patching (see :class:`~.head_analyses.HeadAnalysesMixin`).

    Threads: only the thread that creates the session (the kernel's main
    thread) assigns traits. Scoring and captures run on one worker, analyses
    on their own threads; their results reach the traits through a
    :class:`~.dispatcher.Dispatcher` (the kernel's event loop, or :meth:`wait`).
    """

    num_layers = Int(read_only=True)
    num_heads = Int(read_only=True)
    task = Unicode(read_only=True)
    label_names = List(read_only=True)
    metric_names = List(read_only=True)
    data_source = Unicode(read_only=True)
    causal = Bool(False, read_only=True, help="True when the model's attention is causal (decoder models)")
    layer_notes = List(Unicode(), read_only=True,
                       help="Per layer, what is special about its attention ('' for most families), for titles")

    layer = Int(0)
    head = Int(0)
    head_masked = Bool(False)
    mask = HeadMaskTrait()
    example_index = Int(0)
    text = Unicode("")
    text_pair = Unicode(None, allow_none=True)

    tokens = List()
    token_type_ids = array_trait("pos", kinds="iu", help="Segment of each shown token (0 for single texts)")
    attention = array_trait("query", "key", help="Weights of the selected head on the shown input, under the mask")
    attentions = array_trait("heads", "query", "key", help="Weights of every head of the selected layer")
    hidden_states = array_trait("layers + 1", "pos", "hidden", help="Embedding output, then every layer's output")
    truncated = Bool(False)

    score = Dict()
    baseline_score = Dict()
    score_interval = Dict()
    score_is_estimate = Bool(False)
    scored_mask = array_trait("layers", "heads", help="The mask that score belongs to")
    predictions = array_trait("n", kinds="iuf", help="Prediction per example under the mask (class, or value)")
    baseline_predictions = array_trait("n", kinds="iuf", help="Prediction per example with no head masked")
    labels = array_trait("n", kinds="iuf", help="Label per example (class, or value for regression)")
    flipped = List()
    example_label = Any(None, help="Label of the shown example: int class, float value, or None for custom text")
    example_prediction = Any(None, help="Prediction on the shown input under the mask: int class or float value")
    example_baseline_prediction = Any(None, help="Prediction on the shown input with no head masked")

    progress = Float(1.0)
    busy = Bool(False)
    error = Unicode("")
    score_error = Unicode("")
    capture_error = Unicode("")
    analysis_error = Unicode("")
    notice = Unicode("")
    precision = Unicode("fp32", read_only=True)

    def __init__(self, model, tokenizer, examples, task=None, *, batch_size=DEFAULT_BATCH_SIZE,
                 max_length=DEFAULT_MAX_LENGTH, precision="auto", live=True, lru_size=128, debounce_s=0.02,
                 capture_lru_size=16, label_map=None, cache_mb=DEFAULT_CACHE_MB,
                 cache_every=DEFAULT_CACHE_EVERY):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TaskMismatchWarning)
            glue_task, labels = labelled_task(model, examples, task, label_map=label_map)
        for warning in caught:  # shown once in the notebook, and kept in the notice
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        self._label_notice = "\n".join([str(w.message) for w in caught] + [label_notice(model)]).strip()
        super().__init__()
        self.model, self.tokenizer, self.examples = model.eval(), tokenizer, list(examples)
        self.batch_size, self.max_length = batch_size, max_length
        self.set_trait("precision", resolve_precision(precision, next(model.parameters()).device,
                                                      glue_task.is_regression))
        self.model_lock = threading.RLock()
        self._dispatcher = Dispatcher()
        self._captures = LRU(capture_lru_size)  # (text, pair, mask) -> the capture's traits
        self._capture_key = None  # what the shown capture is, or is being made, for
        self._capture_pending = False
        layers, heads = model_shape(model)
        self.set_trait("num_layers", layers)
        self.set_trait("num_heads", heads)
        self.set_trait("task", glue_task.name)
        self.set_trait("label_names", list(glue_task.label_names))
        self.set_trait("metric_names", list(glue_task.metrics))
        describe = getattr(examples, "describe", None)  # a GlueSplit knows its source; a plain list does not
        self.set_trait("data_source", describe() if callable(describe) else "")
        self._set_architecture_traits(model, layers)
        self._capture = None
        self._unmasked_logits = None
        self.scorer = LiveScorer(model, tokenizer, encode_examples(tokenizer, self.examples, max_length), labels,
                                 glue_task.name, self.model_lock, batch_size=batch_size,
                                 precision=self.precision, lru_size=lru_size, debounce_s=debounce_s,
                                 cache_mb=cache_mb, cache_every=cache_every)
        ones = np.ones((layers, heads), dtype=np.float32)
        baseline, base_pred = self.scorer.score(ones)
        release_freed_memory()  # loading and the first pass leave hundreds of MB free but held
        with self.hold_trait_notifications():
            self.labels = labels
            self.baseline_score, self.baseline_predictions = dict(baseline), base_pred
            self.score, self.predictions, self.scored_mask = dict(baseline), base_pred, frozen(ones)
            self.mask = ones
            self.example_index = 0
        self._live = False
        self._show_example(0)
        self._live = live
        if live:
            self.scorer.start(self, self._dispatcher.post)
            weakref.finalize(self, self.scorer.close, 1.0)
        self._init_pipeline_part()

    # -- the pipeline probes (a part of its own: session/pipeline_part.py) ---------------
    pipeline = Instance(PipelineResult, allow_none=True, help="What each layer knows (compute_pipeline())")

    def _init_pipeline_part(self) -> None:
        def task_examples():
            from ..glue import load_glue

            return list(load_glue(self.task, "train", max_examples=20000)), list(self.examples)

        self.pipeline_part = PipelinePart(
            self._run_analysis, self.tokenizer, lambda: np.array(self.mask),
            lambda: (self.ablation, self.head_means) if self.head_means is not None else ("zero", None),
            task_examples, batch_size=self.batch_size, max_length=self.max_length)
        traitlets.dlink((self.pipeline_part, "pipeline"), (self, "pipeline"))
        self.observe(lambda change: self.pipeline_part.mask_changed(change["new"]), "mask")

    def compute_pipeline(self, tasks=("upos", "deprel", "task"), background: bool = True, **options):
        """Probe every layer for POS, dependencies and the task's label under the current mask (``pipeline``).

        See :meth:`PipelinePart.compute <bertology_widgets.session.pipeline_part.PipelinePart.compute>`.
        """
        return self.pipeline_part.compute(tasks, background=background, **options)

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model=None, task="sst2", glue_dir=None, split="validation", max_examples=None,
                        device=None, precision="auto", shared_results=True, **kwargs) -> "ModelSession":
        """Load a model (``None``: the default fine-tuned MiniLM) and a GLUE split, and open a session.

        With ``shared_results`` the importance and masking curve already in
        the shared results cache are shown at once (:meth:`load_shared_results`).

        Prints one line saying where the GLUE split came from (also kept in
        the ``data_source`` trait).
        """
        from ..glue import load_glue
        from ..models.default_model import load_default_or

        net, tokenizer = load_default_or(model, device=device, task=task)
        examples = load_glue(task, split, glue_dir=glue_dir, max_examples=max_examples)
        print(examples.describe())
        session = cls(net, tokenizer, examples, task=task, precision=precision, **kwargs)
        if shared_results:
            session.load_shared_results()
        return session

    def _set_architecture_traits(self, model, layers: int) -> None:
        try:
            causal = bool(adapter_for(model).causal)
            notes = [layer_attention_note(model, layer) for layer in range(layers)]
        except Exception:  # noqa: BLE001 - an unknown architecture still gets its attention drawn
            causal, notes = False, [""] * layers
        self.set_trait("causal", causal)
        self.set_trait("layer_notes", notes)

    def pruned_params(self, mask=None) -> tuple[int, int]:
        """``(now, after)``: the model's parameter count, and what pruning the heads ``mask`` (default:
        the current mask) masks would leave (:func:`~bertology_widgets.core.pruning.expected_params_after`)."""
        from ..core.pruning import expected_params_after

        mask = self.mask if mask is None else mask
        return sum(p.numel() for p in self.model.parameters()), expected_params_after(self.model, mask)

    # -- validation ------------------------------------------------------------------
    @validate("layer")
    def _check_layer(self, proposal):
        return self._checked_index(int(proposal["value"]), None)

    @validate("head")
    def _check_head(self, proposal):
        return self._checked_index(0, int(proposal["value"]))

    def _checked_index(self, layer: int, head: int | None) -> int:
        try:
            validate_layer_head((self.num_layers, self.num_heads), layer, head)
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return layer if head is None else head

    @validate("example_index")
    def _check_example(self, proposal):
        value = int(proposal["value"])
        if not -1 <= value < len(self.examples):
            raise TraitError(f"example {value} does not exist; choose 0..{len(self.examples) - 1} (or -1 for own text)")
        return value

    # -- reactions -------------------------------------------------------------------
    @observe("mask")
    def _on_mask(self, change):
        if change["old"] is not None and np.array_equal(change["old"], change["new"]):
            return
        masked = bool(self.mask[self.layer, self.head] == 0)
        if self.head_masked != masked:
            self.head_masked = masked
        self._rescore()
        self._recapture()

    @observe("head_masked")
    def _on_head_masked(self, change):
        if bool(self.mask[self.layer, self.head] == 0) == change["new"]:
            return
        self.set_head(self.layer, self.head, not change["new"])

    @observe("layer", "head")
    def _on_selection(self, change):
        masked = bool(self.mask[self.layer, self.head] == 0)
        if self.head_masked != masked:
            self.head_masked = masked
        self._slice_attention()

    @observe("example_index")
    def _on_example(self, change):
        if change["new"] >= 0:
            self._show_example(change["new"])

    @observe("text", "text_pair")
    def _on_text(self, change):
        if self.example_index >= 0:
            example = self.examples[self.example_index]
            if (self.text, self.text_pair) != (example.text_a, example.text_b):
                self.example_index = -1
        self._recapture()

    # -- public methods ----------------------------------------------------------------
    def set_head(self, layer: int, head: int, keep: float) -> None:
        """Set one gate: ``keep`` 1 keeps head ``(layer, head)``, 0 masks it (TraitError for a head out of range)."""
        self._checked_index(layer, head)
        mask = np.array(self.mask)
        mask[layer, head] = keep
        self.mask = mask

    def toggle_head(self, layer: int, head: int) -> None:
        """Mask head ``(layer, head)`` if it is kept, keep it if masked."""
        self._checked_index(layer, head)
        self.set_head(layer, head, 0.0 if self.mask[layer, head] != 0 else 1.0)

    def reset_mask(self) -> None:
        """Keep every head."""
        self.mask = np.ones((self.num_layers, self.num_heads), dtype=np.float32)

    def evaluate(self, mask=None) -> dict:
        """Score ``mask`` (default: the current mask) synchronously, as ``bertology evaluate`` does
        (same batches, same precision rule, so the numbers agree exactly)."""
        mask = self.mask if mask is None else mask
        with self.model_lock:
            return evaluate(self.model, self.tokenizer, self.examples, mask, self.batch_size, self.max_length,
                            task=self.task, precision=self.precision)

    def settled(self) -> bool:
        """Whether the score belongs to the current mask and the shown capture is up to date."""
        return (not self.busy and not self._capture_pending and self._dispatcher.pending() == 0
                and self.scored_mask is not None and np.array_equal(self.scored_mask, self.mask))

    def wait(self, timeout: float = 60.0, analysis: bool = False) -> bool:
        """Apply the workers' results until the session has settled (see :meth:`settled`).

        Safe in a notebook cell: it applies the queued results itself. With
        ``analysis=True`` it also waits for a running analysis. True if it
        settled, False on timeout or when scoring failed (``score_error``).
        """
        def done():
            failed = bool(self.score_error) and not self.busy and not self._capture_pending
            return (failed or self.settled()) and not (analysis and self.analysis_busy)

        return self._dispatcher.wait(done, timeout) and self.settled()

    def drain(self) -> int:
        """Apply the workers' queued results now (main thread); returns how many."""
        return self._dispatcher.drain()

    def save_state(self, path) -> None:
        """Write mask, layer, head and example to ``path`` (JSON, atomically)."""
        import json

        state_io.atomic_write_text(path, json.dumps(state_io.state_dict(self), indent=1))

    def load_state(self, path) -> None:
        """Restore a state saved by :meth:`save_state`; a bad file raises and changes nothing."""
        data = state_io.read_state(path, self)
        try:
            mask = head_mask_array(data["mask"], self.num_layers, self.num_heads)
            layer = self._check_layer({"value": data["layer"]})
            head = self._check_head({"value": data["head"]})
            example = self._check_example({"value": data["example_index"]})
        except (TraitError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        with self.hold_trait_notifications():
            self.layer, self.head, self.mask = layer, head, mask
            if example >= 0:
                self.example_index = example
            else:
                self.example_index = -1
                self.text, self.text_pair = data.get("text") or "", data.get("text_pair")

    def close(self) -> None:
        """Stop the background worker (also done when the session is garbage-collected)."""
        self.scorer.close()

    @property
    def cache_bytes(self) -> int:
        return self.scorer.cache_bytes()

    # -- scoring (results arrive on the owner thread through the dispatcher) ---------------
    def _rescore(self) -> None:
        mask = np.array(self.mask)
        cached = self.scorer.lru.get(mask)
        if cached is not None or not self._live_ready():
            generation = self.scorer.supersede()
            try:
                score, predictions = cached if cached is not None else self.scorer.score(mask)
            except Exception as exc:  # noqa: BLE001 - shown in the readout, never raised in the kernel
                self._on_error(generation, exc)
                return
            self._on_result(generation, mask, score, predictions)
            return
        self.scorer.request(mask)
        if not self.busy:  # the rest of a burst costs no trait change
            with self.hold_trait_notifications():
                self.busy, self.progress = True, 0.0

    def _live_ready(self) -> bool:
        return getattr(self, "_live", False) and self.scorer.alive

    def _current(self, generation: int) -> bool:
        return generation == self.scorer.generation

    def _on_estimate(self, generation, values, intervals, progress):
        if not self._current(generation):
            return
        with self.hold_trait_notifications():
            self.score, self.score_interval = dict(values), dict(intervals)
            self.score_is_estimate, self.progress = True, float(progress)

    def _on_result(self, generation, mask, score, predictions):
        if not self._current(generation):
            return
        with self.hold_trait_notifications():
            self.score, self.score_interval, self.score_is_estimate = dict(score), {}, False
            self.predictions, self.scored_mask = predictions, frozen(mask)
            self.flipped = np.nonzero(predictions != self.baseline_predictions)[0].tolist()
            self.progress, self.busy, self.score_error = 1.0, False, ""
        self._update_example_predictions()
        release_freed_memory()  # the layer states this score replaced

    def _on_error(self, generation, exc):
        if not self._current(generation):
            return
        with self.hold_trait_notifications():
            self.score_error = f"scoring failed: {type(exc).__name__}: {exc}"
            self.busy, self.progress = False, 1.0
