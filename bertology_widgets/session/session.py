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
import torch
from traitlets import Any, Bool, Dict, Float, HasTraits, Int, List, TraitError, Unicode, observe, validate

from ..batching import encode_examples
from ..capture import TextTruncatedWarning, capture
from ..evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, evaluate, labelled_task
from ..heads import as_head_mask, model_shape, validate_layer_head
from . import state as state_io
from .analysis import AnalysisMixin
from .head_analyses import HeadAnalysesMixin
from .live import LiveScorer

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float32, copy=True)
    array.flags.writeable = False
    return array


class ModelSession(HeadAnalysesMixin, AnalysisMixin, HasTraits):
    """A model, a GLUE evaluation set and the live state of the dashboard.

    Traits
    ------
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
    progress : float in [0, 1]; busy : bool; error, notice : str
    importance, entropy, curve, analysis_busy, analysis_progress, analysis_status
        Head importance and the masking curve (see :class:`~.analysis.AnalysisMixin`).
    ablation, head_means, roles, role_measures, corrupted_text, patching
        Mean ablation, head roles and patching (see :class:`~.head_analyses.HeadAnalysesMixin`).
    """

    num_layers = Int(read_only=True)
    num_heads = Int(read_only=True)
    task = Unicode(read_only=True)
    label_names = List(read_only=True)
    metric_names = List(read_only=True)

    layer = Int(0)
    head = Int(0)
    head_masked = Bool(False)
    mask = Any()
    example_index = Int(0)
    text = Unicode("")
    text_pair = Unicode(None, allow_none=True)

    tokens = List()
    token_type_ids = Any()
    attention = Any()
    attentions = Any()
    hidden_states = Any()
    truncated = Bool(False)

    score = Dict()
    baseline_score = Dict()
    score_interval = Dict()
    score_is_estimate = Bool(False)
    scored_mask = Any()
    predictions = Any()
    baseline_predictions = Any()
    labels = Any()
    flipped = List()
    example_label = Any(None)
    example_prediction = Any(None)
    example_baseline_prediction = Any(None)

    progress = Float(1.0)
    busy = Bool(False)
    error = Unicode("")
    notice = Unicode("")

    def __init__(self, model, tokenizer, examples, task=None, *, batch_size=DEFAULT_BATCH_SIZE,
                 max_length=DEFAULT_MAX_LENGTH, precision="fp32", live=True, lru_size=128, debounce_s=0.02):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        glue_task, labels = labelled_task(model, examples, task)
        super().__init__()
        self.model, self.tokenizer, self.examples = model.eval(), tokenizer, list(examples)
        self.batch_size, self.max_length, self.precision = batch_size, max_length, precision
        self.model_lock = threading.RLock()
        self._publish_lock = threading.RLock()
        layers, heads = model_shape(model)
        self.set_trait("num_layers", layers)
        self.set_trait("num_heads", heads)
        self.set_trait("task", glue_task.name)
        self.set_trait("label_names", list(glue_task.label_names))
        self.set_trait("metric_names", list(glue_task.metrics))
        self._capture = None
        self._unmasked_logits = None
        self.scorer = LiveScorer(model, tokenizer, encode_examples(tokenizer, self.examples, max_length), labels,
                                 glue_task.name, self.model_lock, batch_size=batch_size,
                                 autocast_dtype=PRECISIONS[precision], lru_size=lru_size, debounce_s=debounce_s)
        ones = np.ones((layers, heads), dtype=np.float32)
        baseline, base_pred = self.scorer.score(ones)
        with self.hold_trait_notifications():
            self.labels = labels
            self.baseline_score, self.baseline_predictions = dict(baseline), base_pred
            self.score, self.predictions, self.scored_mask = dict(baseline), base_pred, _frozen(ones)
            self.mask = ones
            self.example_index = 0
        self._show_example(0)
        self._live = live
        if live:
            self.scorer.start(self)
            weakref.finalize(self, self.scorer.close, 1.0)

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model=None, task="sst2", glue_dir=None, split="validation", max_examples=None,
                        device=None, precision="fp32", **kwargs) -> "ModelSession":
        """Load a model (``None``: the default fine-tuned MiniLM) and a GLUE split, and open a session."""
        from ..glue import load_glue
        from ..models import load_model

        net, tokenizer = load_model(model, device=device, task=task)
        examples = load_glue(task, split, glue_dir=glue_dir, max_examples=max_examples)
        return cls(net, tokenizer, examples, task=task, precision=precision, **kwargs)

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

    @validate("mask")
    def _check_mask(self, proposal):
        try:
            gates = as_head_mask(proposal["value"], self.num_layers, self.num_heads)
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return _frozen(gates.detach().cpu().numpy())

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
        """Set one gate: ``keep`` 1 keeps head ``(layer, head)``, 0 masks it."""
        mask = np.array(self.mask)
        mask[layer, head] = keep
        self.mask = mask

    def toggle_head(self, layer: int, head: int) -> None:
        """Mask head ``(layer, head)`` if it is kept, keep it if masked."""
        self.set_head(layer, head, 0.0 if self.mask[layer, head] != 0 else 1.0)

    def reset_mask(self) -> None:
        """Keep every head."""
        self.mask = np.ones((self.num_layers, self.num_heads), dtype=np.float32)

    def evaluate(self, mask=None) -> dict:
        """Score ``mask`` (default: the current mask) synchronously, as ``bertology evaluate`` does."""
        mask = self.mask if mask is None else mask
        with self.model_lock:
            return evaluate(self.model, self.tokenizer, self.examples, mask, self.batch_size, self.max_length,
                            task=self.task, autocast_dtype=PRECISIONS[self.precision])

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the score belongs to the current mask (for scripts and tests). True if it settled."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.busy and self.scored_mask is not None and np.array_equal(self.scored_mask, self.mask):
                return True
            if self.error and not self.busy:
                return False
            time.sleep(0.005)
        return False

    def save_state(self, path) -> None:
        """Write mask, layer, head and example to ``path`` (JSON, atomically)."""
        import json

        state_io.atomic_write_text(path, json.dumps(state_io.state_dict(self), indent=1))

    def load_state(self, path) -> None:
        """Restore a state saved by :meth:`save_state`; a bad file raises and changes nothing."""
        data = state_io.read_state(path, self)
        try:
            mask = self._check_mask({"value": data["mask"]})
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

    # -- scoring -------------------------------------------------------------------
    def _rescore(self) -> None:
        mask = np.array(self.mask)
        cached = self.scorer.lru.get(mask)
        if cached is not None or not self._live_ready():
            generation = self.scorer.supersede()
            score, predictions = cached if cached is not None else self.scorer.score(mask)
            self._on_result(generation, mask, score, predictions)
            return
        with self._publish_lock:
            self.scorer.request(mask)
            with self.hold_trait_notifications():
                self.busy, self.progress, self.error = True, 0.0, ""

    def _live_ready(self) -> bool:
        return getattr(self, "_live", False) and self.scorer.alive

    def _current(self, generation: int) -> bool:
        return generation == self.scorer.generation

    def _on_estimate(self, generation, values, intervals, progress):
        with self._publish_lock:
            if not self._current(generation):
                return
            with self.hold_trait_notifications():
                self.score, self.score_interval = dict(values), dict(intervals)
                self.score_is_estimate, self.progress = True, float(progress)

    def _on_result(self, generation, mask, score, predictions):
        with self._publish_lock:
            if not self._current(generation):
                return
            with self.hold_trait_notifications():
                self.score, self.score_interval, self.score_is_estimate = dict(score), {}, False
                self.predictions, self.scored_mask = predictions, _frozen(mask)
                self.flipped = np.nonzero(predictions != self.baseline_predictions)[0].tolist()
                self.progress, self.busy, self.error = 1.0, False, ""
            self._update_example_predictions()

    def _on_error(self, generation, exc):
        with self._publish_lock:
            if not self._current(generation):
                return
            with self.hold_trait_notifications():
                self.error = f"scoring failed: {type(exc).__name__}: {exc}"
                self.busy, self.progress = False, 1.0

    # -- the example under the microscope ------------------------------------------------
    def _show_example(self, index: int) -> None:
        example = self.examples[index]
        with self.hold_trait_notifications():
            self.text, self.text_pair = example.text_a, example.text_b
            self.example_label = example.label
        self._recapture()

    def _recapture(self) -> None:
        try:
            with self.model_lock, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TextTruncatedWarning)
                result = capture(self.model, self.tokenizer, self.text, self.text_pair, self.mask, self.max_length)
                key = (self.text, self.text_pair)
                if self.example_index < 0 and (self._unmasked_logits is None or self._unmasked_logits[0] != key):
                    # The unmasked prediction of one's own text: once per text, not on every mask change.
                    unmasked = capture(self.model, self.tokenizer, self.text, self.text_pair, None, self.max_length)
                    self._unmasked_logits = (key, unmasked.logits)
        except ValueError as exc:  # bad input (empty text ...): say what was expected
            self.error = str(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a failing forward is shown, never raised into the kernel
            self.error = f"could not run the model on this input: {type(exc).__name__}: {exc}"
            return
        notices = [str(w.message) for w in caught if issubclass(w.category, TextTruncatedWarning)]
        self._capture = result
        with self.hold_trait_notifications():
            self.tokens, self.token_type_ids = list(result.tokens), result.token_type_ids
            self.hidden_states, self.truncated = result.hidden_states, result.truncated
            self.notice = notices[0] if notices else ""
            if self.error and not self.busy:
                self.error = ""
            self._slice_attention()
            self._update_example_predictions()

    def _slice_attention(self) -> None:
        if self._capture is None:
            return
        with self.hold_trait_notifications():
            self.attentions = self._capture.attentions[self.layer]
            self.attention = self._capture.attentions[self.layer, self.head]

    def _update_example_predictions(self) -> None:
        if self._capture is None or self._capture.logits is None:
            return
        regression = self.labels.dtype.kind == "f"
        to_pred = (lambda z: float(z[0])) if regression else (lambda z: int(np.argmax(z)))
        if self.example_index >= 0:
            self.example_prediction = to_pred(self._capture.logits)
            self.example_baseline_prediction = self.baseline_predictions[self.example_index].item()
        else:
            self.example_label = None
            self.example_prediction = to_pred(self._capture.logits)
            self.example_baseline_prediction = to_pred(self._unmasked_logits[1])
