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
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from traitlets import Bool, HasTraits, Int, List, TraitError, Unicode, observe, validate

from ..analyses.evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, evaluate
from ..analyses.lm_evaluation import LIVE_LM_BATCH_SIZE, LIVE_LM_CACHE_EVERY
from ..core.gating import validate_layer_head
from ..core.labels import TaskMismatchWarning
from ..core.layerwise import DEFAULT_CACHE_EVERY, DEFAULT_CACHE_MB
from ..core.precision import PRECISIONS, resolve_precision
from ..runtime.memory import cap_onednn_caches
from . import state as state_io
from .analysis import AnalysisData, AnalysisResults, AnalysisRunner
from .binding import LM_TASKS, lm_live_precision, session_bound
from .dispatcher import Dispatcher
from .explanation_part import ExplanationPart, ShownForExplanation
from .head_analyses import HeadAnalyses, ShownText
from .live import LiveScorer, mask_key
from .live_score import LiveScore
from .part import Forwarding, delegate, mirror, part_traits
from .pipeline_part import PipelinePart
from .prediction_part import PredictionPart
from .shown_input import ShownInput, ShownState
from .traits import HeadMaskTrait, head_mask_array

if TYPE_CHECKING:
    from ..glue import Example


def display_name(model) -> str:
    """The model's name for a title: a local folder's last part (e.g. the default model's cache folder),
    else the hub name, else the model type."""
    config = getattr(model, "config", None)
    name = str(getattr(config, "_name_or_path", "") or "").rstrip("/")
    return Path(name).name if Path(name).is_absolute() else name or str(getattr(config, "model_type", "model"))


class ModelSession(HasTraits):
    """A model, a GLUE evaluation set (or a language model and its texts) and the live state of the dashboard.

    A language model (``task="lm"``, ``"causal_lm"`` or ``"masked_lm"``; the default when a causal or
    masked LM comes with no task) is scored live by its own objective: ``score`` and ``baseline_score``
    hold ``perplexity`` and ``token_accuracy``, in fp32; ``labels``, ``predictions`` and the shown
    input's predictions are None and ``flipped`` is empty (a perplexity is over tokens, not classes).

    ``batch_size`` (default 32; for a language model 4, ``LIVE_LM_BATCH_SIZE``) is what :meth:`evaluate`
    uses, and what ``bertology evaluate --batch-size`` needs to give the live score to the last bit.
    ``cache_mb`` (default 1024, ``None``: no limit) bounds the live layer caches; batches past it are
    re-scored in full, with the same scores, and ``notice`` says so. ``cache_every`` (default 3; for a
    language model 1) keeps every k-th layer's input in them (the scores are bitwise the same; 1 is the
    fastest re-scoring and the most memory).

    Traits
    ------
    num_layers, num_heads : int, read-only
    causal : bool, read-only
        True for decoder models (their attention is causal).
    layer_notes : list of str, read-only
        Per layer, what is special about its attention (``""`` for most families).
    heads_note : str, read-only
        With grouped-query attention (Llama-style, SmolLM2), that the mask is over query heads and how
        many key/value heads each layer has; ``""`` for most families.
    task : str, read-only
        The GLUE task, or ``"causal_lm"`` / ``"masked_lm"`` for a language model (``task="lm"``).
    label_names : list of str, read-only
        The task's class names (empty for a regression task and a language model).
    layer, head : int
        The selected head (validated against the model).
    model_name : str, read-only
        The model's folder or hub name, for titles.
    head_masked : bool, read-only
        Whether the selected head is masked (it follows mask, layer and head; :meth:`toggle_head` changes it).
    mask : np.ndarray, shape ``(layers, heads)``, float32, read-only
        1 keeps a head, 0 masks it. Assign a new array to change it.
    masked_count : int, read-only
        How many heads ``mask`` masks.
    example_index : int
        Dev example shown (``-1`` for custom text).
    text, text_pair : str
        The input whose attention is shown.
    data_source : str
        Where the examples came from, e.g. ``"SST-2 dev: embedded copy (872
        examples)"`` (empty when they were not given as a ``GlueSplit``).
    error : str
        Failures of the views' callbacks (a refused value, a broken button).
    precision : str, read-only
        ``"fp32"`` or ``"bf16"``: what the live score and :meth:`evaluate` run
        in (``precision="auto"`` picks bf16 on fast-bf16 hardware; the fp32
        guard keeps the predictions equal to fp32's).

    Mirrored traits (each part's, documented there; assigning one here assigns the part's):

    - :class:`~.live_score.LiveScore`: ``score``, ``baseline_score``, ``score_interval``,
      ``score_is_estimate``, ``scored_mask``, ``predictions``, ``baseline_predictions``, ``labels``,
      ``flipped``, ``progress``, ``busy``, ``score_error``. A live session opens before its baseline
      is scored: until it lands (:meth:`wait` brings it) ``score`` and ``baseline_score`` are ``{}``,
      the predictions None, ``flipped`` is ``[]`` and ``busy`` is set; a mask changed meanwhile is
      scored once it has. ``live=False`` scores it before returning.
    - :class:`~.shown_input.ShownInput`: ``tokens``, ``token_type_ids``, ``attention``, ``attentions``,
      ``hidden_states``, ``truncated``, ``example_label``, ``example_prediction``,
      ``example_baseline_prediction``, ``notice``, ``capture_error``.
    - :class:`~.analysis.AnalysisRunner`: ``analysis_busy``, ``analysis_progress``, ``analysis_status``,
      ``analysis_cached``, ``analysis_error``; :class:`~.analysis.AnalysisResults`: ``importance``,
      ``entropy``, ``curve``, ``probe``.
    - :class:`~.head_analyses.HeadAnalyses`: ``ablation``, ``head_means``, ``roles``, ``role_measures``,
      ``corrupted_text``, ``patching``.
    - :class:`~.explanation_part.ExplanationPart`: ``explain``, ``explain_method``, ``explain_unmasked``,
      ``attention_measure``, ``token_scores``, ``unmasked_token_scores``, ``rollout``, ``norms``,
      ``explanation_busy``, ``explanation_error``.
    - :class:`~.pipeline_part.PipelinePart`: ``pipeline`` (its other traits: ``session.pipeline_part``).
    - :class:`~.prediction_part.PredictionPart` (language models; empty for a classifier): ``lm_predictions``,
      ``lm_predictions_unmasked``, ``show_lens``, ``logit_lens``, ``lens_measure``, ``prediction_busy``,
      ``prediction_error``.

    Each ``*_error`` is the last failure of its source, cleared when that source next succeeds.

    Parts: the session is a facade over parts (``parts``), each a small ``HasTraits`` that declares
    and writes its own traits: ``live`` (:class:`~.live_score.LiveScore`: the scorer and the score
    traits), ``shown`` (:class:`~.shown_input.ShownInput`: the captures of the shown input),
    ``analyses`` (:class:`~.analysis.AnalysisRunner`: the analysis under way), ``results``
    (:class:`~.analysis.AnalysisResults`), ``heads`` (:class:`~.head_analyses.HeadAnalyses`),
    ``explanation`` (:class:`~.explanation_part.ExplanationPart`) and ``pipeline``
    (:class:`~.pipeline_part.PipelinePart`). The session declares a mirror of each part's traits
    (:func:`~.part.mirror`) and keeps them equal both ways (:class:`~.part.Forwarding`); the parts get
    callables, never the session, and never read each other's private attributes.

    Threads: only the thread that creates the session (the kernel's main
    thread) assigns traits. Scoring and captures run on one worker, analyses
    on their own threads; their results reach the traits through a
    :class:`~.dispatcher.Dispatcher` (the kernel's event loop, or :meth:`wait`).
    """

    num_layers = Int(read_only=True)
    num_heads = Int(read_only=True)
    model_name = Unicode(read_only=True, help="The model's name, for titles (its folder or hub name)")
    task = Unicode(read_only=True)
    label_names: List = List(read_only=True)
    metric_names: List = List(read_only=True)
    data_source = Unicode(read_only=True)
    causal = Bool(False, read_only=True, help="True when the model's attention is causal (decoder models)")
    heads_note = Unicode(read_only=True, help="What the mask's heads are where that is not plain: with grouped-query "
                                              "attention, query heads ('' for most families)")
    layer_notes = List(Unicode(), read_only=True,
                       help="Per layer, what is special about its attention ('' for most families), for titles")

    layer = Int(0)
    head = Int(0)
    head_masked = Bool(False, read_only=True, help="Whether the selected head is masked (follows mask, layer, head)")
    mask = HeadMaskTrait()
    masked_count = Int(0, read_only=True, help="How many heads the mask masks (follows mask)")
    example_index = Int(0)
    text = Unicode("")
    text_pair = Unicode(None, allow_none=True)
    error = Unicode("")
    precision = Unicode("fp32", read_only=True)

    # mirrors of the live part's traits
    baseline_predictions = mirror(LiveScore, "baseline_predictions")
    baseline_score = mirror(LiveScore, "baseline_score")
    busy = mirror(LiveScore, "busy")
    flipped = mirror(LiveScore, "flipped")
    labels = mirror(LiveScore, "labels")
    predictions = mirror(LiveScore, "predictions")
    progress = mirror(LiveScore, "progress")
    score = mirror(LiveScore, "score")
    score_error = mirror(LiveScore, "score_error")
    score_interval = mirror(LiveScore, "score_interval")
    score_is_estimate = mirror(LiveScore, "score_is_estimate")
    scored_mask = mirror(LiveScore, "scored_mask")
    # mirrors of the shown part's traits
    attention = mirror(ShownInput, "attention")
    attentions = mirror(ShownInput, "attentions")
    capture_error = mirror(ShownInput, "capture_error")
    example_baseline_prediction = mirror(ShownInput, "example_baseline_prediction")
    example_label = mirror(ShownInput, "example_label")
    example_prediction = mirror(ShownInput, "example_prediction")
    hidden_states = mirror(ShownInput, "hidden_states")
    notice = mirror(ShownInput, "notice")
    token_type_ids = mirror(ShownInput, "token_type_ids")
    tokens = mirror(ShownInput, "tokens")
    truncated = mirror(ShownInput, "truncated")
    # mirrors of the analyses part's traits
    analysis_busy = mirror(AnalysisRunner, "analysis_busy")
    analysis_cached = mirror(AnalysisRunner, "analysis_cached")
    analysis_error = mirror(AnalysisRunner, "analysis_error")
    analysis_progress = mirror(AnalysisRunner, "analysis_progress")
    analysis_status = mirror(AnalysisRunner, "analysis_status")
    # mirrors of the results part's traits
    curve = mirror(AnalysisResults, "curve")
    entropy = mirror(AnalysisResults, "entropy")
    importance = mirror(AnalysisResults, "importance")
    probe = mirror(AnalysisResults, "probe")
    # mirrors of the heads part's traits
    ablation = mirror(HeadAnalyses, "ablation")
    corrupted_text = mirror(HeadAnalyses, "corrupted_text")
    head_means = mirror(HeadAnalyses, "head_means")
    patching = mirror(HeadAnalyses, "patching")
    role_measures = mirror(HeadAnalyses, "role_measures")
    roles = mirror(HeadAnalyses, "roles")
    # mirrors of the explanation part's traits
    attention_measure = mirror(ExplanationPart, "attention_measure")
    explain = mirror(ExplanationPart, "explain")
    explain_method = mirror(ExplanationPart, "explain_method")
    explain_unmasked = mirror(ExplanationPart, "explain_unmasked")
    explanation_busy = mirror(ExplanationPart, "explanation_busy")
    explanation_error = mirror(ExplanationPart, "explanation_error")
    norms = mirror(ExplanationPart, "norms")
    rollout = mirror(ExplanationPart, "rollout")
    token_scores = mirror(ExplanationPart, "token_scores")
    unmasked_token_scores = mirror(ExplanationPart, "unmasked_token_scores")
    # mirror of the pipeline part's result (its other traits: session.pipeline_part)
    pipeline = mirror(PipelinePart, "pipeline")
    # mirrors of the prediction part's traits (a language model's; empty for a classifier)
    lens_measure = mirror(PredictionPart, "lens_measure")
    lm_predictions = mirror(PredictionPart, "lm_predictions")
    lm_predictions_unmasked = mirror(PredictionPart, "lm_predictions_unmasked")
    logit_lens = mirror(PredictionPart, "logit_lens")
    prediction_busy = mirror(PredictionPart, "prediction_busy")
    prediction_error = mirror(PredictionPart, "prediction_error")
    show_lens = mirror(PredictionPart, "show_lens")

    def __init__(self, model, tokenizer, examples, task=None, *, batch_size=None,
                 max_length=DEFAULT_MAX_LENGTH, precision="auto", live=True, lru_size=128, debounce_s=0.02,
                 capture_lru_size=16, label_map=None, cache_mb=DEFAULT_CACHE_MB,
                 cache_every=None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        cap_onednn_caches()  # before any bf16 work: ~45 MiB less per bf16 kernel
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TaskMismatchWarning)
            bound = session_bound(model, tokenizer, task if task is not None else getattr(examples, "task", None),
                                  label_map)
        for warning in caught:  # shown once in the notebook, and kept in the notice
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        self._label_notice = "\n".join([str(w.message) for w in caught] + [bound.label_notice()]).strip()
        self.bound = bound  # the model bound once: its label order is applied to the logits, the model is untouched
        self.eval_set = bound.encode(examples, max_length)
        bound.require_objective().check(self.eval_set)
        glue_task = bound.task
        super().__init__()
        # The model stays in the mode it was in: every forward of the session runs under core.modes.eval_mode.
        self.model, self.tokenizer, self.examples = model, tokenizer, list(examples)
        reads_hidden = bound.require_objective().reads_hidden
        if batch_size is None:  # a language model's smaller batches: its first estimate comes after an eighth
            batch_size = LIVE_LM_BATCH_SIZE if reads_hidden else DEFAULT_BATCH_SIZE
        if cache_every is None:  # a language model's few texts keep every layer's input (tens of MB)
            cache_every = LIVE_LM_CACHE_EVERY if reads_hidden else DEFAULT_CACHE_EVERY
        self.batch_size, self.max_length = int(batch_size), max_length
        regression = glue_task is not None and glue_task.is_regression
        self.set_trait("precision", lm_live_precision(precision) if reads_hidden
                       else resolve_precision(precision, bound.device, regression))
        self.model_lock = threading.RLock()
        self._dispatcher = Dispatcher()
        self._set_model_traits(model, glue_task, examples)
        scorer = LiveScorer(bound, self.eval_set, self.model_lock,
                            batch_size=batch_size, precision=self.precision, lru_size=lru_size,
                            debounce_s=debounce_s, cache_mb=cache_mb, cache_every=cache_every)
        self._wire_parts(scorer, live, capture_lru_size)
        ones = np.ones((self.num_layers, self.num_heads), dtype=np.float32)
        # Live: open now (shape, tokens, the shown example's attention); the baseline lands through the
        # dispatcher, from the shared results cache or the worker. Not live: it is scored before this returns.
        self.live.open_baseline(background=live)
        self._show_example(0, also={"mask": ones})
        if live:
            self.live.start(self._dispatcher.post)
            self.live.request_baseline()
            weakref.finalize(self, scorer.close, 1.0)
        weakref.finalize(self, self.explanation.worker.close)  # its thread holds the part weakly

    def _wire_parts(self, scorer: LiveScorer, live: bool, capture_lru_size: int) -> None:
        """Build the session's parts and mirror their traits (:class:`~.part.Forwarding`).

        Each part owns its traits and gets, as callables, what it needs of the session and of the other
        parts; a new part is built here and listed in ``parts`` (which :meth:`close` closes)."""
        hold, post, lock = self.hold_trait_notifications, self._dispatcher.post, self.model_lock
        current_mask = lambda: np.array(self.mask)  # noqa: E731
        self.analyses = AnalysisRunner(post, self._dispatcher.drain, self.bound, lock, hold=hold)
        # The label mapping is part of every shared key (results_key); the precision and batching are the baseline's.
        baseline_options = dict(precision=self.precision, batch_size=self.batch_size, max_length=self.max_length)
        self.live = LiveScore(scorer, on_scored=self._on_scored, current_mask=lambda: self.mask,
                              baseline_key=lambda: self.analyses.results_key(self.task, self.examples,
                                                                             **baseline_options), hold=hold)
        self.shown = ShownInput(
            lambda: ShownState(self.text, self.text_pair, self.mask, self.example_index, self.layer, self.head),
            self.bound, lock, self.max_length, worker=scorer, is_live=lambda: self.live.live,
            baseline_predictions=lambda: self.live.baseline_predictions,
            is_regression=bool(self.bound.task is not None and self.bound.task.is_regression),
            predicts=self.bound.require_objective().stat_shape == (),
            notices=lambda: [self._label_notice, scorer.budget.notice], lru_size=capture_lru_size,
            on_shown=self._explain_shown, hold=hold)
        data = AnalysisData(self.tokenizer, self.examples, self.eval_set, self.task, list(self.label_names),
                            (self.num_layers, self.num_heads), self.batch_size, self.max_length)
        self.results = AnalysisResults(self.analyses, data, current_mask, self._set_mask, hold=hold)
        self.heads = HeadAnalyses(
            self.analyses, data, current_mask,
            lambda: ShownText(self.text, self.text_pair, self.example_index, self.example_label),
            self._set_model_ablation, hold=hold)
        bound = self.bound
        self.explanation = ExplanationPart(
            bound=lambda: bound, model_lock=lock, post=post, shown=self._for_explanation,
            work_generation=lambda: (scorer.generation, scorer.capture_generation), ablation=lambda: bound.ablation,
            max_length=self.max_length, live=live, hold=hold)
        self.prediction = PredictionPart(
            bound=lambda: bound, model_lock=lock, post=post, shown=self._for_explanation,
            ablation=lambda: bound.ablation, max_length=self.max_length, live=live, hold=hold)
        self.pipeline_part = self._pipeline_part(current_mask, hold)
        self.parts: dict[str, HasTraits] = {
            "live": self.live, "shown": self.shown, "analyses": self.analyses, "results": self.results,
            "heads": self.heads, "explanation": self.explanation, "pipeline": self.pipeline_part,
            "prediction": self.prediction}
        self._forwardings = [Forwarding(part, self, part_traits(type(part))) for part in self.parts.values()
                             if part is not self.pipeline_part]
        self._forwardings.append(Forwarding(self.pipeline_part, self, ["pipeline"]))

    def _set_mask(self, mask) -> None:
        self.mask = mask

    # -- the pipeline probes (a part of its own: session/pipeline_part.py) ---------------
    def _pipeline_part(self, current_mask, hold) -> PipelinePart:
        def task_examples():
            from ..glue import load_glue

            if self.bound.task is None:
                raise ValueError(f"the 'task' probe needs a GLUE task's labels, and {self.task} has none; "
                                 "probe tasks=('upos', 'deprel') only")

            return list(load_glue(self.task, "train", max_examples=20000)), list(self.examples)

        part = PipelinePart(
            self.analyses.run, self.tokenizer, current_mask, task_examples,
            batch_size=self.batch_size, max_length=self.max_length, hold=hold)
        self.observe(lambda change: part.mask_changed(change["new"]), "mask")
        return part

    def compute_pipeline(self, tasks=("upos", "deprel", "task"), background: bool = True, **options):
        """Probe every layer for POS, dependencies and the task's label under the current mask (``pipeline``).

        See :meth:`PipelinePart.compute <bertology_widgets.session.pipeline_part.PipelinePart.compute>`.
        """
        return self.pipeline_part.compute(tasks, background=background, **options)

    # -- the analyses' methods, the parts' own -----------------------------------------------
    compute_importance = delegate(AnalysisResults.compute_importance, "results")
    compute_masking_curve = delegate(AnalysisResults.compute_masking_curve, "results")
    compute_probe = delegate(AnalysisResults.compute_probe, "results")
    load_shared_results = delegate(AnalysisResults.load_shared_results, "results")
    mask_least_important = delegate(AnalysisResults.mask_least_important, "results")
    compute_head_means = delegate(HeadAnalyses.compute_head_means, "heads")
    compute_roles = delegate(HeadAnalyses.compute_roles, "heads")
    compute_patching = delegate(HeadAnalyses.compute_patching, "heads")
    suggest_corrupted = delegate(HeadAnalyses.suggest_corrupted, "heads")
    private_model = delegate(AnalysisRunner.private_model, "analyses")
    private_bound = delegate(AnalysisRunner.private_bound, "analyses")

    # -- the explanation of the shown input ----------------------------------------------------
    def _for_explanation(self) -> ShownForExplanation:
        """The shown input for the explanation part: ready once the mask's score and the capture are in."""
        mask, shown = np.array(self.mask), self.shown
        scored = self.scored_mask is not None and np.array_equal(self.scored_mask, mask)
        captured = shown.key == (self.text, self.text_pair, mask_key(mask))
        ready = not shown.pending and captured and not self.busy and scored
        return ShownForExplanation(self.text, self.text_pair, mask, shown.current, ready)

    def _explain_shown(self) -> None:
        """The shown input's explanation and LM predictions follow a new capture or score."""
        for name in ("explanation", "prediction"):
            part = getattr(self, name, None)  # None while the parts are being built
            if part is not None:
                part.refresh()

    def wait_explained(self, timeout: float = 60.0) -> bool:
        """Apply results until the explanation of the shown input is in (or failed); False on timeout."""
        return self.explanation.wait(self.settled, self._dispatcher.wait, timeout)

    def _on_scored(self) -> None:
        """A score landed: the shown input's predictions follow it, then its explanation (if one is asked for)."""
        self.shown.update_predictions()
        self._explain_shown()

    @property
    def scorer(self) -> LiveScorer:
        """The live scorer (memoised scores ``scorer.lru``, the bf16 guard ``scorer.guard``)."""
        return self.live.scorer

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model=None, task="sst2", glue_dir=None, split="validation", max_examples=None,
                        device=None, precision="auto", shared_results=True, text_file=None,
                        **kwargs) -> "ModelSession":
        """Load a model (``None``: the default fine-tuned MiniLM) and a GLUE split, and open a session.

        ``task="lm"`` (or ``"causal_lm"``, ``"masked_lm"``) opens a language model (``None``:
        ``"default-lm"``) on its own objective, perplexity and token accuracy, over the texts of
        :func:`~bertology_widgets.analyses.lm_texts.load_lm_texts`: ``text_file``'s lines, else the
        UD English-EWT test sentences, the first ``max_examples`` (default
        :data:`~bertology_widgets.analyses.lm_texts.LIVE_DEFAULT_TEXTS`, 32, small enough to re-score live).
        A language model opened for a GLUE task raises
        :class:`~bertology_widgets.models.loading.NoClassificationHeadError`.

        With ``shared_results`` the importance and masking curve already in
        the shared results cache are shown at once (:meth:`load_shared_results`).

        Prints one line saying where the GLUE split (or the texts) came from (also kept in
        the ``data_source`` trait).
        """
        from ..glue import load_glue
        from ..models.default_model import load_default_or

        examples: Sequence[Example]
        if task in LM_TASKS:
            from ..analyses.lm_texts import LIVE_DEFAULT_TEXTS, load_lm_texts
            from ..models.default_lm import DEFAULT_LM

            net, tokenizer = load_default_or(DEFAULT_LM if model is None else model, device=device, task=task)
            examples = load_lm_texts(text_file, LIVE_DEFAULT_TEXTS if max_examples is None else max_examples)
        else:
            net, tokenizer = load_default_or(model, device=device, task=task)
            examples = load_glue(task, split, glue_dir=glue_dir, max_examples=max_examples)
        print(examples.describe())
        session = cls(net, tokenizer, examples, task=task, precision=precision, **kwargs)
        if shared_results:
            session.load_shared_results()
        return session

    def _set_model_traits(self, model, glue_task, examples) -> None:
        layers, heads = self.bound.shape
        self.set_trait("num_layers", layers)
        self.set_trait("num_heads", heads)
        self.set_trait("model_name", display_name(model))
        self.set_trait("task", self.bound.require_objective().name)  # a GLUE task, or causal_lm / masked_lm
        self.set_trait("label_names", [] if glue_task is None else list(glue_task.label_names))
        self.set_trait("metric_names", list(self.bound.require_objective().metrics))
        describe = getattr(examples, "describe", None)  # a GlueSplit knows its source; a plain list does not
        self.set_trait("data_source", describe() if callable(describe) else "")
        try:
            causal = self.bound.is_causal
            notes = [self.bound.layer_note(layer) for layer in range(layers)]
        except Exception:  # noqa: BLE001 - an unknown architecture still gets its attention drawn
            causal, notes = False, [""] * layers
        kv_heads = int(getattr(getattr(model, "config", None), "num_key_value_heads", None) or heads)
        if kv_heads < heads:  # grouped-query attention: a gate per query head, key/value heads shared
            self.set_trait("heads_note", f"over query heads ({layers} × {heads}; {kv_heads} key/value heads)")
        self.set_trait("causal", causal)
        self.set_trait("layer_notes", notes)

    def pruned_params(self, mask=None) -> tuple[int, int]:
        """``(now, after)``: the model's parameter count, and what pruning the heads ``mask`` (default:
        the current mask) masks would leave (:func:`~bertology_widgets.core.pruning.expected_params_after`)."""
        from ..core.pruning import expected_params_after

        mask = self.mask if mask is None else mask
        return sum(p.numel() for p in self.model.parameters()), expected_params_after(self.bound, mask)

    # -- validation ------------------------------------------------------------------
    @validate("layer")
    def _check_layer(self, proposal):
        layer = int(proposal["value"])
        self._valid_selection(layer, None)
        return layer

    @validate("head")
    def _check_head(self, proposal):
        head = int(proposal["value"])
        self._valid_selection(0, head)
        return head

    @validate("example_index")
    def _check_example(self, proposal):
        return self._valid_example(int(proposal["value"]))

    def _valid_selection(self, layer: int, head: int | None) -> None:
        """TraitError unless ``layer`` (and ``head``, when given) exist in the model."""
        try:
            validate_layer_head((self.num_layers, self.num_heads), layer, head)
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    def _valid_example(self, index: int) -> int:
        if not -1 <= index < len(self.examples):
            raise TraitError(f"example {index} does not exist; choose 0..{len(self.examples) - 1} (or -1 for own text)")
        return index

    # -- reactions -------------------------------------------------------------------
    @observe("mask", "layer", "head")
    def _on_mask_or_selection(self, change):
        if self.mask is None:
            return
        with self.hold_trait_notifications():  # views redraw once, with the count, busy and score in step
            self._derive_mask_state()
            if change["name"] != "mask":
                self.shown.slice_attention()
            elif change["old"] is None or not np.array_equal(change["old"], change["new"]):
                self.live.rescore(self.mask)
                self.shown.recapture()

    def _derive_mask_state(self) -> None:
        """``head_masked`` and ``masked_count`` follow from ``mask``, ``layer`` and ``head`` here, and only here."""
        masked = bool(self.mask[self.layer, self.head] == 0)
        if self.head_masked != masked:
            self.set_trait("head_masked", masked)
        count = int((np.asarray(self.mask) == 0).sum())
        if self.masked_count != count:
            self.set_trait("masked_count", count)

    @observe("example_index")
    def _on_example(self, change):
        if change["new"] >= 0:
            self._show_example(change["new"])

    @observe("text", "text_pair")
    def _on_text(self, change):
        """The one reaction to a new input: leave the dev example, capture it, then suggest its corrupted partner."""
        if self.example_index >= 0:
            example = self.examples[self.example_index]
            if (self.text, self.text_pair) != (example.text_a, example.text_b):
                self.example_index = -1
        self.shown.recapture()
        if change["name"] == "text":
            self.heads.on_text_for_patching()

    def _show_example(self, index: int, also: dict | None = None) -> None:
        example = self.examples[index]
        with self.hold_trait_notifications():
            for name, value in (also or {}).items():
                setattr(self, name, value)
            self.shown.publish(example_label=example.label)
            self.text, self.text_pair = example.text_a, example.text_b
        self.shown.recapture()  # also when the text did not change (its predictions may have)

    def _set_model_ablation(self, wanted: str, means) -> None:
        """Make ``wanted`` the model's ablation; rescore and recapture under it."""
        if self.bound.ablation[0] == wanted:
            return
        # on the bound model: both runners (bf16 too) and the captures read it there
        self.live.set_ablation(lambda: self.bound.set_ablation(wanted, means), self.model_lock)
        self.shown.forget()  # captures are keyed by (text, pair, mask): the ablation changes them all
        self.live.rescore(self.mask)
        self.shown.recapture()

    # -- public methods ----------------------------------------------------------------
    def set_head(self, layer: int, head: int, keep: float) -> None:
        """Set one gate: ``keep`` 1 keeps head ``(layer, head)``, 0 masks it (TraitError for a head out of range)."""
        self._valid_selection(layer, head)
        mask = np.array(self.mask)
        mask[layer, head] = keep
        self.mask = mask

    def toggle_head(self, layer: int, head: int) -> None:
        """Mask head ``(layer, head)`` if it is kept, keep it if masked."""
        self._valid_selection(layer, head)
        self.set_head(layer, head, 0.0 if self.mask[layer, head] != 0 else 1.0)

    def reset_mask(self) -> None:
        """Keep every head."""
        self.mask = np.ones((self.num_layers, self.num_heads), dtype=np.float32)

    def evaluate(self, mask=None) -> dict:
        """Score ``mask`` (default: the current mask) synchronously, as ``bertology evaluate`` does
        (same batches, same precision rule, so the numbers agree exactly)."""
        mask = self.mask if mask is None else mask
        with self.model_lock:
            return evaluate(self.bound, self.eval_set, mask=mask, batch_size=self.batch_size, precision=self.precision)

    def settled(self) -> bool:
        """Whether the score belongs to the current mask and the shown capture (and a language model's predictions)
        are up to date."""
        return (not self.busy and not self.shown.pending and self._dispatcher.pending() == 0
                and not self.prediction.pending()
                and self.scored_mask is not None and np.array_equal(self.scored_mask, self.mask))

    def wait(self, timeout: float = 60.0, analysis: bool = False) -> bool:
        """Apply the workers' results until the session has settled (see :meth:`settled`).

        Safe in a notebook cell: it applies the queued results itself. With
        ``analysis=True`` it also waits for a running analysis. True if it
        settled, False on timeout or when scoring failed (``score_error``).
        """
        def done():
            failed = bool(self.score_error) and not self.busy and not self.shown.pending
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
            layer, head = int(data["layer"]), int(data["head"])
            self._valid_selection(layer, head)
            example = self._valid_example(int(data["example_index"]))
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
        """Stop the background workers (also done when the session is garbage-collected)."""
        for part in self.parts.values():
            close = getattr(part, "close", None)
            if callable(close):
                close()

    @property
    def cache_bytes(self) -> int:
        return self.scorer.cache_bytes()
