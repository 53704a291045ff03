"""Layer probes: how well a linear classifier reads the task's label from each layer.

For every layer (the embeddings and each transformer layer's output) a
scikit-learn ``StandardScaler`` + ``LogisticRegression`` pipeline is fitted on
pooled hidden states (:func:`~bertology_widgets.analyses.representations.pooled_states`)
of a training subset and scored on dev examples, all under a head mask. The
"centre of gravity" of the accuracy gains says where in the network the
label becomes linearly readable (the "expected layer" of Tenney et al.,
2019, *BERT Rediscovers the Classical NLP Pipeline*).

Probes support classification tasks only: for a regression task (STS-B)
:func:`layer_probe` raises ``ValueError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..runtime.progress import Progress, progress_reporter
from .representations import pooled_states
from .task_examples import class_labels, subsample

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ..core.gating import HeadMaskLike
    from ..glue import Example


@dataclass(frozen=True)
class ProbeResult:
    """Dev accuracy of a linear probe on every layer.

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
    n_train, n_dev : int
        Examples the probes were fitted and scored on.
    """

    accuracy: np.ndarray
    majority_baseline: float
    seconds: float = 0.0
    mask: np.ndarray | None = None
    pooling: str = "cls"
    n_train: int = 0
    n_dev: int = 0

    @property
    def gains(self) -> np.ndarray:
        """``(layers,)``: ``accuracy[l] - accuracy[l - 1]`` for ``l = 1..layers``."""
        return np.diff(np.asarray(self.accuracy, dtype=float))

    @property
    def center_of_gravity(self) -> float:
        """Expected layer ``sum_l l * max(gain_l, 0) / sum_l max(gain_l, 0)``, ``l = 1..layers``.

        Negative gains are clipped to 0 (a layer that loses accuracy does not
        pull the centre towards itself; without clipping the "expectation"
        can leave ``[1, layers]``). NaN when no layer gains anything.
        """
        positive = np.clip(self.gains, 0.0, None)
        total = positive.sum()
        if total <= 0:
            return float("nan")
        return float((np.arange(1, len(positive) + 1) * positive).sum() / total)

    @property
    def heads_masked(self) -> int:
        return 0 if self.mask is None else int((np.asarray(self.mask) == 0).sum())


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, C: float = 1.0, seed: int = 0) -> Pipeline:
    """The probe of one layer: ``StandardScaler`` then ``LogisticRegression``, fitted on ``(n, hidden)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    return probe.fit(train_x, train_y)


def layer_probe(model: nn.Module, tokenizer: PreTrainedTokenizerBase, train_examples: Sequence[Example],
                dev_examples: Sequence[Example], mask: HeadMaskLike = None, pooling: str = "cls",
                max_train: int | None = 2000, C: float = 1.0, seed: int = 0, progress: Progress = False, *,
                max_dev: int | None = None, batch_size: int = 32, max_length: int = 128) -> ProbeResult:
    """Fit a linear probe on every layer's pooled states and score it on dev examples.

    Parameters
    ----------
    model, tokenizer
        A supported model and its tokenizer.
    train_examples, dev_examples : sequence of :class:`~bertology_widgets.glue.Example`
        Labelled examples of a classification task.
    mask : array-like, shape ``(layers, heads)``, optional
        Head mask applied to every forward pass.
    pooling : {"cls", "mean"}
        How token states become one vector (see :func:`~bertology_widgets.analyses.representations.pooling_positions`).
    max_train, max_dev : int, optional
        Random subsets (drawn with ``seed``) of at most this many examples.
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    seed : int
        Subsampling and solver seed: equal arguments give equal results.
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, 100)``, in percent
        of the work (see :mod:`~bertology_widgets.runtime.progress`).

    Returns
    -------
    ProbeResult
    """
    start = time.perf_counter()
    train = subsample(train_examples, max_train, seed)
    dev = subsample(dev_examples, max_dev, seed + 1)
    if not train or not dev:
        raise ValueError(f"probes need training and dev examples; got {len(train)} and {len(dev)}")
    train_y, dev_y = class_labels(train, "training"), class_labels(dev, "dev")
    classes, counts = np.unique(train_y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"all {len(train)} training examples have label {classes[0]}; a probe needs two classes")
    with progress_reporter(progress, 100, desc="layer probes", unit="%") as report:
        report.update(0)
        states = {}
        for step, (name, examples) in enumerate((("train", train), ("dev", dev))):
            states[name] = pooled_states(model, tokenizer, examples, mask, pooling, batch_size, max_length)
            report.update_to(40 * (step + 1))  # the forward passes are most of the work
        num_states = states["train"].shape[0]
        accuracy = np.zeros(num_states)
        for layer in range(num_states):
            probe = fit_probe(states["train"][layer], train_y, C, seed)
            accuracy[layer] = float((probe.predict(states["dev"][layer]) == dev_y).mean())
            report.update_to(round(80 + 20 * (layer + 1) / num_states))
    return ProbeResult(
        accuracy=accuracy,
        majority_baseline=float((dev_y == classes[np.argmax(counts)]).mean()),
        seconds=time.perf_counter() - start,
        mask=None if mask is None else np.array(mask, dtype=np.float32),
        pooling=pooling,
        n_train=len(train),
        n_dev=len(dev),
    )


__all__ = ["ProbeResult", "class_labels", "fit_probe", "layer_probe", "subsample"]
