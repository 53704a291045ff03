"""Attention rollout and attention flow (Abnar and Zuidema 2020).

Both follow attention through the layers with the residual connection
added: each layer's head-averaged weights ``W`` become ``A = 0.5 W + 0.5 I``,
rows renormalised. Rollout multiplies these matrices through the layers;
flow treats them as capacities of a layered graph and solves a maximum-flow
problem per (output token, input token) pair.

Masked heads move nothing, and pruned heads do not exist, so both are left
out of each layer's head average (a fractional gate weighs its head by the
gate). Everything here reads a :class:`~bertology_widgets.core.capturing.Capture`:
no forward pass of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..core.capturing import Capture

#: Longest input :func:`attention_flow` accepts by default. One flow is a
#: maximum-flow problem on ``(layers + 1) * pos`` nodes and ``layers * pos**2``
#: edges, and a row of the flow matrix needs ``pos`` of them. Measured on the
#: 6-layer default model, 2 CPU cores shared with other work: the
#: classification token's row takes 0.2 s at 16 tokens, 1.3 s at 24 and 4 to 6 s
#: at 32; the whole matrix 6 s, 45 s and 170 s. That grows about as ``pos**4``.
DEFAULT_FLOW_MAX_TOKENS = 32


def layer_head_weights(capture: Capture) -> np.ndarray:
    """Weight of each head in its layer's average: the gate, 0 for pruned heads; ``(layers, heads)``.

    A pruned head's attention is all zeros in the capture, which is how it is recognised.
    """
    layers, heads = capture.attentions.shape[:2]
    gates = np.ones((layers, heads)) if capture.mask is None else np.asarray(capture.mask, dtype=np.float64)
    present = capture.attentions.reshape(layers, heads, -1).any(axis=-1)
    return gates * present


def residual_attention(capture: Capture) -> np.ndarray:
    """``A_l = 0.5 W_l + 0.5 I``, rows renormalised, for every layer: ``(layers, query, key)``.

    ``W_l`` is the gate-weighted average of the layer's heads that are kept
    (a layer with no head left passes its input on: ``A_l = I``).
    """
    attentions = np.asarray(capture.attentions, dtype=np.float64)  # (layers, heads, q, k)
    layers, _, pos, _ = attentions.shape
    weights = layer_head_weights(capture)
    totals = weights.sum(axis=1)
    mixed = np.einsum("lh,lhqk->lqk", weights, attentions)
    mixed = np.divide(mixed, totals[:, None, None], out=np.zeros_like(mixed), where=totals[:, None, None] > 0)
    residual = 0.5 * mixed + 0.5 * np.eye(pos)[None]
    return residual / residual.sum(axis=-1, keepdims=True)


def attention_rollout(capture: Capture) -> np.ndarray:
    """Attention rollout through the layers.

    Parameters
    ----------
    capture : Capture
        One input's attentions ``(layers, heads, query, key)`` and the mask it ran under.

    Returns
    -------
    np.ndarray, float32, shape ``(layers, query, key)``
        ``rollout[l] = A_l @ A_{l-1} @ ... @ A_0``: how much of each input
        token (key) reaches each position (query) at the output of layer
        ``l``. Every row sums to 1.
    """
    residual = residual_attention(capture)
    out = np.empty_like(residual)
    current = np.eye(residual.shape[-1])
    for layer, matrix in enumerate(residual):
        current = matrix @ current
        out[layer] = current
    return out.astype(np.float32)


def classification_position(capture: Capture) -> int:
    """The token the classifier reads: ``[CLS]`` (0) for the BERT family, the last token for causal models."""
    return len(capture.tokens) - 1 if capture.causal else 0


class FlowTooLongError(ValueError):
    """The input has more tokens than :func:`attention_flow` is allowed to solve for."""


@dataclass
class AttentionFlow:
    """The result of :func:`attention_flow`.

    Attributes
    ----------
    flow : np.ndarray, shape ``(query, key)``
        Maximum flow from each position at the last layer's output to each
        input token (rows for queries not asked for are NaN).
    queries : list of int
        The rows computed.
    seconds : float
        Time the maximum-flow problems took.
    """

    flow: np.ndarray
    queries: list
    seconds: float


def attention_flow(capture: Capture, max_tokens: int = DEFAULT_FLOW_MAX_TOKENS,
                   queries: list[int] | str | None = None) -> AttentionFlow:
    """Attention flow: maximum flow through the layered attention graph.

    Node ``(l, i)`` is token ``i`` at the input of layer ``l`` (``l = 0 .. layers``);
    the edge from ``(l + 1, i)`` to ``(l, j)`` has capacity ``A_l[i, j]`` (see
    :func:`residual_attention`). ``flow[i, j]`` is the maximum flow from
    ``(layers, i)`` to ``(0, j)``, solved with ``networkx.maximum_flow_value``.

    Parameters
    ----------
    capture : Capture
    max_tokens : int
        Refuse inputs longer than this (default :data:`DEFAULT_FLOW_MAX_TOKENS`):
        the cost grows about as ``pos**4``.
    queries : list of int, or "all", optional
        Rows to compute. Default: the classification token's row
        (:func:`classification_position`), which is what a word attribution
        reads; ``"all"`` computes the whole matrix, ``pos`` times the work.

    Raises
    ------
    FlowTooLongError
        When the input has more than ``max_tokens`` tokens, naming the limit.
    """
    import networkx as nx

    pos = len(capture.tokens)
    if pos > max_tokens:
        raise FlowTooLongError(
            f"attention flow is limited to {max_tokens} tokens (max_tokens={max_tokens}) and this input has {pos}: "
            "its cost grows about as tokens**4; use attention_rollout, a shorter text, or raise max_tokens")
    residual = residual_attention(capture)
    layers = residual.shape[0]
    if queries is None:
        rows = [classification_position(capture)]
    elif isinstance(queries, str):
        if queries != "all":
            raise ValueError(f"queries must be a list of positions or 'all', got {queries!r}")
        rows = list(range(pos))
    else:
        rows = [int(q) for q in queries]
    for q in rows:
        if not 0 <= q < pos:
            raise ValueError(f"query {q} does not exist; this input has positions 0..{pos - 1}")
    start = time.perf_counter()
    graph = nx.DiGraph()
    for layer in range(layers):
        for i in range(pos):
            for j in range(pos):
                if residual[layer, i, j] > 0:
                    graph.add_edge((layer + 1, i), (layer, j), capacity=float(residual[layer, i, j]))
    flow = np.full((pos, pos), np.nan)
    for i in rows:
        for j in range(pos):
            source, sink = (layers, i), (0, j)
            flow[i, j] = nx.maximum_flow_value(graph, source, sink) if source in graph and sink in graph else 0.0
    return AttentionFlow(flow=flow.astype(np.float32), queries=rows, seconds=time.perf_counter() - start)


__all__ = [
    "DEFAULT_FLOW_MAX_TOKENS",
    "AttentionFlow",
    "FlowTooLongError",
    "attention_flow",
    "attention_rollout",
    "classification_position",
    "layer_head_weights",
    "residual_attention",
]
