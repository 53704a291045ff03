"""What a snapshot shows, computed once from a session: no widget, no kernel needed afterwards.

:func:`collect` runs the model (the shown input's attention for every layer and
head, and one scoring pass per mask of the masking curve) and returns a
:class:`SnapshotData` of plain arrays and strings, which :mod:`.views` turns into
widgets and :mod:`.page` into an HTML file.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from .._version import __version__

#: How a snapshot says what its numbers are.
PRECOMPUTED_NOTE = ("Every value on this page is precomputed (when the page was written): "
                    "no model runs here, and nothing is sent anywhere.")


@dataclass
class MaskState:
    """One position of the mask slider.

    Attributes
    ----------
    label : str
        What the position is, e.g. ``"step 2: 14 of 72 heads masked"``.
    mask : np.ndarray, shape ``(layers, heads)``, float32
        1 keeps a head, 0 masks it.
    score : dict
        The task's metrics under ``mask`` (for a language model, once supported: perplexity).
    flipped : int
        Examples whose prediction differs from the unmasked model's.
    """

    label: str
    mask: np.ndarray
    score: dict
    flipped: int


@dataclass
class SnapshotData:
    """Everything a snapshot page holds (arrays are float32).

    Attributes
    ----------
    model_name, task, example, text, text_pair, created, version : str (``text_pair`` may be None)
        The header. ``example`` says which input is shown ("dev example 3", "own text").
    tokens : list of str
        ``pos`` tokens as written on screen.
    boundaries : list of int
        Positions where a second segment starts (sentence pairs), for separator lines.
    attentions : np.ndarray, shape ``(layers, heads, pos, pos)``
        The shown input's attention, captured under ``mask``.
    mask : np.ndarray, shape ``(layers, heads)``
        The mask the attention was captured under (the session's).
    layer, head : int
        The head selected when the page opens.
    metric_names : list of str
        The task's metrics; the first is the one the curve holds.
    n_examples : int
        How many examples the scores are over.
    baseline : dict
        Metrics with no head masked.
    states : list of MaskState
        The slider's positions: the session's mask, then each step of the masking curve.
    importance : np.ndarray, shape ``(layers, heads)``, or None
    curve : dict or None
        The session's masking curve (:meth:`MaskingCurve.to_dict`), for its plot.
    truncated : bool
        The text was cut to the model's length.
    objective : str
        ``"glue"``; a language model's snapshot (perplexity) will say ``"perplexity"``.
    """

    model_name: str
    task: str
    example: str
    text: str
    text_pair: str | None
    tokens: list
    boundaries: list
    attentions: np.ndarray
    mask: np.ndarray
    layer: int
    head: int
    metric_names: list
    n_examples: int
    baseline: dict
    states: list = field(default_factory=list)
    importance: np.ndarray | None = None
    curve: dict | None = None
    truncated: bool = False
    objective: str = "glue"
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    version: str = __version__

    @property
    def shape(self) -> tuple[int, int]:
        """``(layers, heads)``."""
        return int(self.attentions.shape[0]), int(self.attentions.shape[1])


def _metrics(result: dict, names) -> dict:
    return {name: float(result[name]) for name in names if name in result}


def _masked_label(mask: np.ndarray) -> str:
    masked, total = int((mask == 0).sum()), int(mask.size)
    return f"{masked} of {total} heads masked ({masked / total:.0%})"


def curve_masks(curve: dict | None) -> list[tuple[str, np.ndarray]]:
    """``(label, mask (layers, heads))`` of each step of a masking curve (empty without one)."""
    steps = (curve or {}).get("steps") or []
    out: list[tuple[str, np.ndarray]] = []
    for entry in steps:
        if "mask" not in entry:
            continue
        mask = np.asarray(entry["mask"], dtype=np.float32)
        kept = "" if entry.get("kept", True) else ", below the threshold"
        out.append((f"curve step {entry.get('step', len(out))}: {_masked_label(mask)}{kept}", mask))
    return out


def score_states(session, masks: list[tuple[str, np.ndarray]]) -> tuple[dict, list[MaskState]]:
    """``(baseline metrics, one MaskState per (label, mask))``, scored as ``session.evaluate`` scores.

    One pass over the session's examples per mask, plus one unmasked; flipped
    counts compare each mask's predictions with the unmasked model's.
    """
    from ..analyses.evaluation import evaluate

    names = list(session.metric_names)

    def run(mask):
        with session.model_lock:
            return evaluate(session.bound, session.eval_set, mask=mask, batch_size=session.batch_size,
                            precision=session.precision)

    base = run(None)
    states = []
    for label, mask in masks:
        result = run(mask) if (mask != 1).any() else base
        flipped = int(np.count_nonzero(np.asarray(result["predictions"]) != np.asarray(base["predictions"])))
        states.append(MaskState(label, mask, _metrics(result, names), flipped))
    return _metrics(base, names), states


def collect(session, with_curve: bool = True) -> SnapshotData:
    """A :class:`SnapshotData` of ``session``: its shown input, mask, selected head, importance and curve.

    The shown input's attention is captured for every layer and head under the
    session's mask; each mask of the slider (the session's, then the masking
    curve's steps when ``with_curve`` and the session has a curve) is scored on
    the session's examples. Runs on the caller's thread and assigns no trait.
    """
    from ..core.capturing import capture
    from ..widgets.attention_grid import segment_boundaries
    from ..widgets.tokens import display_tokens, is_byte_level

    mask = np.asarray(session.mask, dtype=np.float32).copy()
    with session.model_lock:
        captured = capture(session.bound, None, session.text, session.text_pair, mask=mask)
    tokens = display_tokens(captured.tokens, is_byte_level(session.tokenizer))
    curve = dict(session.curve) if with_curve and session.curve else None
    masks = [(f"the session's mask: {_masked_label(mask)}", mask)]
    masks += [(label, m) for label, m in curve_masks(curve) if not np.array_equal(m, mask)]
    baseline, states = score_states(session, masks)
    index = session.example_index
    importance = None if session.importance is None else np.asarray(session.importance, dtype=np.float32)
    return SnapshotData(
        model_name=session.model_name, task=session.task,
        example=f"dev example {index}" if index >= 0 else "own text",
        text=session.text, text_pair=session.text_pair, tokens=tokens,
        boundaries=segment_boundaries(captured.token_type_ids) if session.text_pair is not None else [],
        attentions=np.asarray(captured.attentions, dtype=np.float32), mask=mask,
        layer=int(session.layer), head=int(session.head), metric_names=list(session.metric_names),
        n_examples=len(session.examples), baseline=baseline, states=states, importance=importance,
        curve=curve, truncated=bool(captured.truncated),
    )
