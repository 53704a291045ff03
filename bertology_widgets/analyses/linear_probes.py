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
  with ``a``, ``gamma``, ``W`` and ``b`` trained jointly.
* **Optimiser:** full-batch L-BFGS (strong Wolfe line search) in float32 on
  the mean cross-entropy plus ``l2 / 2 * (|W|^2 + gamma^2)``, from zeros
  (``a = 0``, ``gamma = 1``), for at most ``max_iter`` iterations. No
  randomness at all, and no mini-batches: equal inputs give equal
  probes, and inputs that differ by float round-off give probes whose
  accuracies differ far below 1e-3.

Defaults: ``l2 = 1e-3``, ``max_iter = 50``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_L2 = 1e-3
DEFAULT_MAX_ITER = 50


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


class _Probe(torch.nn.Module):
    def __init__(self, layers: int, hidden: int, k: int, classes: int, mix: bool):
        super().__init__()
        self.mix = mix
        self.a = torch.nn.Parameter(torch.zeros(layers, dtype=torch.float32), requires_grad=mix)
        self.gamma = torch.nn.Parameter(torch.ones((), dtype=torch.float32), requires_grad=mix)
        self.weight = torch.nn.Parameter(torch.zeros(k, hidden, classes, dtype=torch.float32))
        self.bias = torch.nn.Parameter(torch.zeros(classes, dtype=torch.float32))

    def mixed(self, states: torch.Tensor) -> torch.Tensor:
        """``(layers, units, hidden) -> (units, hidden)``."""
        if not self.mix:
            return states[0]
        return self.gamma * torch.einsum("l,luh->uh", torch.softmax(self.a, 0), states)

    def forward(self, states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if not self.mix:  # fit_probe gathers a single layer's item features once: (1, items, k * hidden)
            return states[0][index[:, 0]] @ self.weight[0] + self.bias
        units = self.mixed(states)
        logits = self.bias.expand(index.shape[0], -1)
        for j in range(index.shape[1]):  # [x_1; x_2] W = x_1 W_1 + x_2 W_2
            logits = logits + units[index[:, j]] @ self.weight[j]
        return logits


@dataclass(frozen=True)
class FittedProbe:
    """A trained probe's test accuracy, and its mix when it had one."""

    accuracy: float
    mix_weights: np.ndarray  # (layers used,)
    gamma: float


def fit_probe(train: torch.Tensor, train_index: np.ndarray, train_labels: np.ndarray, test: torch.Tensor,
              test_index: np.ndarray, test_labels: np.ndarray, classes: int, *, mix: bool,
              l2: float = DEFAULT_L2, max_iter: int = DEFAULT_MAX_ITER) -> FittedProbe:
    """Train one probe on ``train (layers used, units, hidden)`` and score it on ``test``.

    ``mix=False`` needs exactly one layer. See the module docstring for the
    loss and the optimiser.
    """
    if not mix and train.shape[0] != 1:
        raise ValueError(f"a single-layer probe takes one layer, got {train.shape[0]}")
    torch.manual_seed(0)  # nothing is random; fixed anyway, should a future probe draw
    index = torch.from_numpy(np.asarray(train_index, dtype=np.int64))
    if not mix:  # gather the items' features once, not at every evaluation
        train = train[0][index].reshape(1, index.shape[0], -1)
        test = test[0][torch.from_numpy(np.asarray(test_index, dtype=np.int64))].reshape(1, len(test_index), -1)
        index = torch.arange(index.shape[0])[:, None]
        test_index = np.arange(test.shape[1])[:, None]
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    k = 1 if not mix else index.shape[1]
    probe = _Probe(train.shape[0], train.shape[2], k, classes, mix)
    params = [p for p in probe.parameters() if p.requires_grad]
    optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(train, index), labels)
        loss = loss + 0.5 * l2 * (probe.weight.pow(2).sum() + (probe.gamma.pow(2) if mix else 0.0))
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        logits = probe(test, torch.from_numpy(np.asarray(test_index, dtype=np.int64)))
        accuracy = float((logits.argmax(dim=1).numpy() == np.asarray(test_labels)).mean())
        weights = torch.softmax(probe.a, 0).numpy().copy()
    return FittedProbe(accuracy, weights, float(probe.gamma.detach()))


@dataclass(frozen=True)
class TaskScores:
    """Everything the pipeline reports for one task (arrays over layers ``0..L``)."""

    accuracy: np.ndarray      # (L + 1,) per-layer probe
    majority: float
    mix_weights: np.ndarray   # (L + 1,) softmax(a) of the mix of all layers
    mix_gamma: float
    mix_accuracy: float
    cumulative: np.ndarray    # (L + 1,) P(l): probe on the mix of layers 0..l; P(L) is the full mix


def _fit_layers(data: ProbeData, train: torch.Tensor, test: torch.Tensor, *, mix: bool, l2: float,
                max_iter: int) -> FittedProbe:
    return fit_probe(train, data.train_index, data.train_labels, test, data.test_index, data.test_labels,
                     len(data.classes), mix=mix, l2=l2, max_iter=max_iter)


def score_task(data: ProbeData, *, l2: float = DEFAULT_L2, max_iter: int = DEFAULT_MAX_ITER,
               report=None) -> TaskScores:
    """Per-layer probes, the full scalar mix and cumulative scoring for one task.

    ``report()`` is called after each of the ``2 * (layers + 1) - 1`` fits.
    P(0) is the layer-0 probe (a mix of one layer is that layer).
    """
    train, test = torch.from_numpy(data.train_states), torch.from_numpy(data.test_states)
    layers = data.num_layers + 1
    fit = functools.partial(_fit_layers, data, l2=l2, max_iter=max_iter)
    accuracy = np.zeros(layers)
    for layer in range(layers):
        fitted = fit(train[layer:layer + 1], test[layer:layer + 1], mix=False)
        accuracy[layer] = fitted.accuracy
        if report is not None:
            report()
    cumulative = np.zeros(layers)
    cumulative[0] = accuracy[0]
    full = None
    for top in range(1, layers):
        full = fit(train[:top + 1], test[:top + 1], mix=True)
        cumulative[top] = full.accuracy
        if report is not None:
            report()
    if full is None:  # an embeddings-only "model": the mix is layer 0
        full = FittedProbe(accuracy[0], np.ones(1), 1.0)
    return TaskScores(accuracy=accuracy, majority=data.majority, mix_weights=full.mix_weights,
                      mix_gamma=full.gamma, mix_accuracy=full.accuracy, cumulative=cumulative)


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
           "deltas", "expected_layer", "fit_probe", "score_task", "standardise"]
