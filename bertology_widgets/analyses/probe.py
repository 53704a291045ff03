"""Layer probes: how well a linear classifier reads the task's label from each layer.

The layer probe is a view of the classical pipeline's ``task`` row
(:func:`~bertology_widgets.analyses.pipeline.pipeline_probe` with
``tasks=("task",)``), not a second computation: :func:`layer_probe` draws its
training and dev subsets, then hands them to the pipeline. For every layer
(the embeddings and each transformer layer's output) the pipeline's linear
softmax probe (:mod:`~bertology_widgets.analyses.linear_probes`: each layer
standardised on the training states, mean cross-entropy plus an L2 penalty,
full-batch L-BFGS from zeros, no randomness) is trained on pooled sentence
states of the training subset and scored on the dev examples, all under a
head mask. The same run fits a scalar mix of all layers and scores the
probe on the mix of layers ``0..l`` (cumulative scoring, ``P(l)``). The
"centre of gravity" of the cumulative gains ``P(l) - P(l - 1)`` says where in
the network the label becomes linearly readable (Tenney, Das and Pavlick,
2019, *BERT Rediscovers the Classical NLP Pipeline*); it is the number the
pipeline reports for the ``task`` row.

Probes support classification tasks only: for a regression task (STS-B)
:func:`layer_probe` raises ``ValueError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..core.bound import BoundModel, as_bound
from ..runtime.progress import Progress, progress_reporter
from .linear_probes import DEFAULT_L2, centre_of_gravity, expected_layer
from .pipeline import GLUE_TASK_ROW, PipelineResult, pipeline_probe
from .representations import POOLINGS
from .task_examples import class_labels, subsample

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ..core.gating import HeadMaskLike
    from ..glue import Example


@dataclass(frozen=True)
class ProbeResult:
    """Dev accuracy of a linear probe on every layer: one row of the pipeline (see :meth:`from_pipeline`).

    Attributes
    ----------
    accuracy : np.ndarray, shape ``(layers + 1,)``
        ``accuracy[0]`` probes the embeddings, ``accuracy[l]`` the output of layer ``l - 1``.
    majority_baseline : float
        Dev accuracy of always answering the most frequent training label.
    seconds : float
        Wall time of the whole run (forward passes and fits).
    mask : np.ndarray, shape ``(layers, heads)`` or None
        The head mask the states were computed under (None: no head masked).
    pooling : str
        ``"cls"`` or ``"mean"``: how a sentence's token states became one vector.
    n_train, n_dev : int
        Examples the probes were fitted and scored on.
    cumulative : np.ndarray, shape ``(layers + 1,)``, or None
        ``P(l)``: dev accuracy of the probe on the scalar mix of layers ``0..l`` (``P(0) = accuracy[0]``).
    mix_weights : np.ndarray, shape ``(layers + 1,)``, or None
        ``softmax(a)`` of the scalar mix of all layers.
    """

    accuracy: np.ndarray
    majority_baseline: float
    seconds: float = 0.0
    mask: np.ndarray | None = None
    pooling: str = "cls"
    n_train: int = 0
    n_dev: int = 0
    cumulative: np.ndarray | None = None
    mix_weights: np.ndarray | None = None

    @classmethod
    def from_pipeline(cls, result: PipelineResult, task: str = GLUE_TASK_ROW, *,
                      seconds: float | None = None) -> ProbeResult:
        """The ``task`` row of a pipeline result (``seconds`` defaults to the pipeline's).

        ``pooling`` is the result's ``task_pooling`` option (``"cls"`` when it has none);
        ``n_dev`` is the row's ``n_test``.
        """
        row = result.row(task)
        return cls(accuracy=np.array(result.accuracy[row], dtype=float),
                   majority_baseline=float(result.majority[row]),
                   seconds=float(result.seconds if seconds is None else seconds),
                   mask=None if result.mask is None else np.array(result.mask, dtype=np.float32),
                   pooling=str(result.options.get("task_pooling", "cls")),
                   n_train=int(result.n_train[row]), n_dev=int(result.n_test[row]),
                   cumulative=np.array(result.cumulative[row], dtype=float),
                   mix_weights=np.array(result.mix_weights[row], dtype=float))

    @property
    def gains(self) -> np.ndarray:
        """``(layers,)``: ``accuracy[l] - accuracy[l - 1]`` for ``l = 1..layers`` (per-layer probes)."""
        return np.diff(np.asarray(self.accuracy, dtype=float))

    @property
    def center_of_gravity(self) -> float:
        """``sum_l l * Delta(l) / sum_l Delta(l)``, ``l = 1..layers``, with ``Delta(l) = P(l) - P(l - 1)``.

        The pipeline's centre of gravity
        (:func:`~bertology_widgets.analyses.linear_probes.centre_of_gravity` of :attr:`cumulative`):
        a hidden-state index, 0 = the embeddings. NaN when the gains sum to zero or less, or
        without cumulative scores.
        """
        if self.cumulative is None:
            return float("nan")
        return centre_of_gravity(self.cumulative)

    @property
    def expected_layer(self) -> float:
        """``E_s[l] = sum_l l * s_l`` of the scalar mix (a hidden-state index); NaN without mix weights."""
        if self.mix_weights is None:
            return float("nan")
        return expected_layer(self.mix_weights)

    @property
    def heads_masked(self) -> int:
        return 0 if self.mask is None else int((np.asarray(self.mask) == 0).sum())


def l2_from_C(C: float | None, n_train: int) -> float:
    """The pipeline's ``l2`` for scikit-learn's inverse regularisation strength ``C``.

    scikit-learn's logistic regression minimises ``C * sum_i loss_i + |w|^2 / 2``;
    divided by ``C * n_train`` that is the pipeline's ``mean_i loss_i + l2 / 2 * |w|^2``
    with ``l2 = 1 / (C * n_train)``. ``C=None`` gives
    :data:`~bertology_widgets.analyses.linear_probes.DEFAULT_L2`, the pipeline's default.
    """
    if C is None:
        return DEFAULT_L2
    if not C > 0 or n_train < 1:
        raise ValueError(f"C must be positive and there must be training examples; got C={C}, n_train={n_train}")
    return 1.0 / (float(C) * int(n_train))


def layer_probe(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None,
                train_examples: Sequence[Example], dev_examples: Sequence[Example], mask: HeadMaskLike = None,
                pooling: str = "cls", max_train: int | None = 2000, C: float | None = None, seed: int = 0,
                progress: Progress = False, *, max_dev: int | None = None, batch_size: int = 32,
                max_length: int = 128) -> ProbeResult:
    """Probe every layer's pooled states for the task's label: the pipeline's ``task`` row on these examples.

    Draws the subsets, then runs :func:`~bertology_widgets.analyses.pipeline.pipeline_probe`
    with ``tasks=("task",)`` on them (``max_task_train=None``: no second draw), so the result
    equals that row exactly; see the module docstring for the probe.

    Parameters
    ----------
    model, tokenizer
        A supported model and its tokenizer, or a :class:`~bertology_widgets.core.bound.BoundModel`
        (``tokenizer`` then ``None``).
    train_examples, dev_examples : sequence of :class:`~bertology_widgets.glue.Example`
        Labelled examples of a classification task.
    mask : array-like, shape ``(layers, heads)``, optional
        Head mask applied to every forward pass, with the bound model's default ablation
        (:attr:`BoundModel.ablation <bertology_widgets.core.bound.BoundModel.ablation>`; zero for a plain model).
    pooling : {"cls", "mean"}
        How token states become one vector: the first token (encoders) or the last (decoders),
        or the mean of the sentence's tokens (the pipeline's ``task_pooling``).
    max_train, max_dev : int, optional
        Random subsets of at most this many examples: training drawn with ``seed``, dev with ``seed + 1``.
    C : float, optional
        scikit-learn's inverse L2 strength, mapped to the pipeline's ``l2 = 1 / (C * n_train)``
        (:func:`l2_from_C`). None (the default): the pipeline's default ``l2``
        (:data:`~bertology_widgets.analyses.linear_probes.DEFAULT_L2`), so the result is the
        pipeline's ``task`` row with its default options.
    seed : int
        Subsampling seed (the probes themselves draw nothing): equal arguments give equal results.
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, 100)``, in percent
        of the work (see :mod:`~bertology_widgets.runtime.progress`).
    batch_size, max_length : int
        Forward-pass batches and tokens per example.

    Returns
    -------
    ProbeResult
        :meth:`ProbeResult.from_pipeline` of the pipeline's result.
    """
    start = time.perf_counter()
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    train = subsample(train_examples, max_train, seed)
    dev = subsample(dev_examples, max_dev, seed + 1)
    if not train or not dev:
        raise ValueError(f"probes need training and dev examples; got {len(train)} and {len(dev)}")
    train_y = class_labels(train, "training")
    class_labels(dev, "dev")
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise ValueError(f"all {len(train)} training examples have label {classes[0]}; a probe needs two classes")
    bound = as_bound(model, tokenizer)
    with progress_reporter(progress, 100, desc="layer probes", unit="%") as report:
        report.update(0)
        result = pipeline_probe(bound, None, (GLUE_TASK_ROW,), task_train=train, task_test=dev, mask=mask,
                                max_task_train=None, task_pooling=pooling,
                                l2=l2_from_C(C, len(train)), batch_size=batch_size, max_length=max_length,
                                progress=lambda done, total: report.update_to(100 * done // max(1, total)))
    return ProbeResult.from_pipeline(result, seconds=time.perf_counter() - start)


__all__ = ["ProbeResult", "class_labels", "l2_from_C", "layer_probe", "subsample"]
