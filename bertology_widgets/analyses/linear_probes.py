"""Linear softmax probes on one layer, on a scalar mix of layers, and cumulative scoring.

The probes of Tenney, Das and Pavlick (2019), *BERT Rediscovers the Classical
NLP Pipeline*, made deterministic:

* **Inputs.** ``states (layers + 1, units, hidden)`` and items
  ``index (items, k)``: an item reads the vectors of ``k`` units (a word, or a
  dependent and its head), concatenated. Each layer is standardised with the
  mean and standard deviation of its training units, so that layers of
  different scales compete fairly in the mix.
* **Per-layer probe:** ``softmax(W [x_1; ...; x_k] + b)`` on one layer.
* **Scalar mix:** the same probe on ``h = gamma * sum_l softmax(a)_l h_l``,
  with ``a``, ``W`` and ``b`` trained jointly. Tenney et al.'s scale
  ``gamma`` is fixed at 1: before a linear probe it is redundant with ``W``
  (``gamma h W = h (gamma W)``), and training it would let the mix escape
  the L2 penalty (a large ``gamma`` with a small ``W``), so that a mix of
  layers would be less regularised than a single layer and overfit it.
* **Optimiser:** full-batch L-BFGS (strong Wolfe line search) in float32 on
  the mean cross-entropy plus ``l2 / 2 * |W|^2``, for at most
  ``max_iter`` iterations per probe. The probe of layer ``l`` starts from
  the trained probe of layer ``l - 1`` (the single-layer problem is convex,
  so the start changes only how soon it gets there; neighbouring layers are
  alike, so that is sooner); the layer-0 probe and every mix start from
  zeros (``a = 0``: equal weights). A mix is not started from ``P(l - 1)``:
  where the training items can be fitted by almost any layer (the ``task``
  row trains on a few hundred sentences) such a start keeps the mix on the
  layers it began with. No randomness at all, and no mini-batches: equal
  inputs give equal probes, and inputs that differ by float round-off give
  probes whose accuracies differ far below 1e-3. The iteration cap is also
  an early stop: on the default model, mixes trained for 50 iterations
  instead of 25 move cumulative accuracies by at most about 0.005 (see
  ``docs/performance.md``).
* **Features:** each probe reads its items' vectors gathered once,
  ``(layers used, items, k * hidden)``; a mix is one weighted sum over
  them, so each evaluation reads the features once forwards and once
  backwards.

Defaults: ``l2 = 1e-3``, ``max_iter = 25``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch

DEFAULT_L2 = 1e-3
DEFAULT_MAX_ITER = 25


@dataclass
class ProbeData:
    """One probing task's data, as the probes read it.

    Attributes
    ----------
    train_states, test_states : np.ndarray float32 ``(layers + 1, units, hidden)``
        Standardised (:func:`standardise`); several tasks may share them.
    train_index, test_index : np.ndarray int ``(items, k)``
        Unit rows each item reads (``k`` = 1 for a word or a sentence, 2 for an edge).
    train_labels, test_labels : np.ndarray int ``(items,)``
    classes : list of str
    """

    train_states: np.ndarray
    train_index: np.ndarray
    train_labels: np.ndarray
    test_states: np.ndarray
    test_index: np.ndarray
    test_labels: np.ndarray
    classes: list

    @property
    def num_layers(self) -> int:
        return self.train_states.shape[0] - 1

    @property
    def majority(self) -> float:
        """Test accuracy of always answering the most frequent training label."""
        counts = np.bincount(self.train_labels, minlength=len(self.classes))
        return float((self.test_labels == int(np.argmax(counts))).mean())


def standardise(train_states: np.ndarray, test_states: np.ndarray, train_kept: np.ndarray | None = None) -> None:
    """Scale each layer, in place, by the mean and std of its kept training units (float64 statistics)."""
    rows = train_states if train_kept is None else train_states[:, np.asarray(train_kept, dtype=bool)]
    for layer in range(train_states.shape[0]):
        sample = rows[layer].astype(np.float64)
        mean = sample.mean(axis=0)
        std = np.maximum(sample.std(axis=0), 1e-6)
        for states in (train_states, test_states):
            states[layer] -= mean.astype(states.dtype)
            states[layer] /= std.astype(states.dtype)


def item_features(states: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """``(layers, units, hidden)`` and ``index (items, k)`` -> ``(layers, items, k * hidden)``, contiguous."""
    rows = torch.from_numpy(np.asarray(index, dtype=np.int64))
    return states[:, rows].reshape(states.shape[0], rows.shape[0], -1).contiguous()


@dataclass(frozen=True)
class FittedProbe:
    """A trained probe: its test accuracy, its mix weights (``[1.0]`` for one layer) and its classifier.

    ``weight (k * hidden, classes)`` and ``bias (classes,)`` are float32
    tensors; the next fit may start from them.
    """

    accuracy: float
    mix_weights: np.ndarray  # (layers used,)
    weight: torch.Tensor = field(repr=False, compare=False)
    bias: torch.Tensor = field(repr=False, compare=False)


def _mixed(features: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``(layers, items, f) -> (items, f)``: ``sum_l softmax(a)_l x_l``."""
    return torch.einsum("l,lnf->nf", torch.softmax(a, 0), features)


def fit_probe(train: torch.Tensor, train_labels: np.ndarray, test: torch.Tensor, test_labels: np.ndarray,
              classes: int, *, mix: bool, l2: float = DEFAULT_L2, max_iter: int = DEFAULT_MAX_ITER,
              start: FittedProbe | None = None) -> FittedProbe:
    """Train one probe on item features ``train (layers used, items, f)`` and score it on ``test``.

    ``mix=False`` needs exactly one layer. ``start`` gives the first ``W``
    and ``b`` (a warm start, e.g. the probe of the layer below); by default
    they start at zero. A mix's ``a`` always starts at zero (equal weights).
    See the module docstring for the loss and the optimiser.
    """
    layers, _, width = train.shape
    if not mix and layers != 1:
        raise ValueError(f"a single-layer probe takes one layer, got {layers}")
    a = torch.zeros(layers)
    weight, bias = torch.zeros(width, classes), torch.zeros(classes)
    if start is not None:
        weight, bias = start.weight.clone(), start.bias.clone()
    params = [weight, bias] + ([a] if mix else [])
    for p in params:
        p.requires_grad_(True)
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))

    def features(x: torch.Tensor) -> torch.Tensor:
        return _mixed(x, a) if mix else x[0]

    optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(features(train) @ weight + bias, labels)
        loss = loss + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        predicted = (features(test) @ weight + bias).argmax(dim=1).numpy()
        accuracy = float((predicted == np.asarray(test_labels)).mean())
        return FittedProbe(accuracy, torch.softmax(a, 0).numpy().copy(), weight.detach().clone(),
                           bias.detach().clone())


@dataclass(frozen=True)
class TaskScores:
    """Everything the pipeline reports for one task (arrays over layers ``0..L``)."""

    accuracy: np.ndarray      # (L + 1,) per-layer probe
    majority: float
    mix_weights: np.ndarray   # (L + 1,) softmax(a) of the mix of all layers
    mix_gamma: float          # always 1 (see the module docstring); pipeline.json keeps the field
    mix_accuracy: float
    cumulative: np.ndarray    # (L + 1,) P(l): probe on the mix of layers 0..l; P(L) is the full mix


def score_task(data: ProbeData, *, l2: float = DEFAULT_L2, max_iter: int = DEFAULT_MAX_ITER,
               report=None) -> TaskScores:
    """Per-layer probes, the full scalar mix and cumulative scoring for one task.

    ``report()`` is called after each of the ``2 * (layers + 1) - 1`` fits.
    P(0) is the layer-0 probe (a mix of one layer is that layer). The probe
    of layer ``l`` starts from the probe of layer ``l - 1``; each mix starts
    from zeros (see the module docstring).
    """
    layers = data.num_layers + 1
    train = item_features(torch.from_numpy(data.train_states), data.train_index)  # (L + 1, items, k * hidden)
    test = item_features(torch.from_numpy(data.test_states), data.test_index)
    fit = functools.partial(fit_probe, train_labels=data.train_labels, test_labels=data.test_labels,
                            classes=len(data.classes), l2=l2, max_iter=max_iter)
    singles: list[FittedProbe] = []
    for layer in range(layers):
        singles.append(fit(train[layer:layer + 1], test=test[layer:layer + 1], mix=False,
                           start=singles[-1] if singles else None))
        if report is not None:
            report()
    accuracy = np.array([probe.accuracy for probe in singles])
    cumulative = np.zeros(layers)
    cumulative[0] = accuracy[0]
    full = singles[0]
    for top in range(1, layers):
        full = fit(train[:top + 1], test=test[:top + 1], mix=True)
        cumulative[top] = full.accuracy
        if report is not None:
            report()
    return TaskScores(accuracy=accuracy, majority=data.majority, mix_weights=full.mix_weights,
                      mix_gamma=1.0, mix_accuracy=full.accuracy, cumulative=cumulative)


def expected_layer(mix_weights: np.ndarray) -> float:
    """``E_s[l] = sum_l l * s_l``."""
    weights = np.asarray(mix_weights, dtype=float)
    return float((np.arange(len(weights)) * weights).sum())


def deltas(cumulative: np.ndarray) -> np.ndarray:
    """``(L + 1,)``: ``Delta(l) = P(l) - P(l - 1)``; ``Delta(0)`` is NaN (no layer below)."""
    cumulative = np.asarray(cumulative, dtype=float)
    return np.concatenate([[np.nan], np.diff(cumulative)])


def centre_of_gravity(cumulative: np.ndarray) -> float:
    """``sum_l l * Delta(l) / sum_l Delta(l)`` over ``l = 1..L`` (Tenney et al.'s expected layer of the gains).

    The deltas are used as they are (a layer may lose a little accuracy);
    NaN when the gains sum to zero or less.
    """
    gains = deltas(cumulative)[1:]
    total = gains.sum()
    if not total > 0:
        return float("nan")
    return float((np.arange(1, len(gains) + 1) * gains).sum() / total)


__all__ = ["DEFAULT_L2", "DEFAULT_MAX_ITER", "FittedProbe", "ProbeData", "TaskScores", "centre_of_gravity",
           "deltas", "expected_layer", "fit_probe", "item_features", "score_task", "standardise"]
