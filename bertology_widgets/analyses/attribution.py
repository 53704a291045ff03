"""Which words drive this prediction: token attributions under the head mask.

:func:`token_attributions` scores every token and every word of one input
for the function ``F`` = the target class's logit (task label order; the
predicted class unless told otherwise), by

- ``"grad_x_input"``: gradient x input on the word-embedding layer
  (captum's ``LayerGradientXActivation``);
- ``"integrated_gradients"``: captum's ``LayerIntegratedGradients`` on the
  word-embedding layer, from a baseline where every token but the special
  ones (``[CLS]``, ``[SEP]``) is ``[PAD]`` (GPT-2 without a pad token: its
  end-of-text token), :data:`DEFAULT_IG_STEPS` Gauss-Legendre steps. By
  completeness the token scores add up to ``F(x) - F(baseline)``; the
  relative gap is reported (:attr:`TokenAttribution.completeness_gap`);
- ``"occlusion"``: each word's sub-word tokens replaced by ``[MASK]``
  (where the tokenizer has none, as GPT-2's, by its pad token, else its
  end-of-text token; :attr:`TokenAttribution.replacement` says which); the
  score is the drop ``F(x) - F(occluded)``;
- ``"rollout"`` and ``"attention"``: the classification token's row of the
  last layer's attention rollout, or of its raw head-averaged attention
  (see :mod:`.attention_flow`), from one capture.

Every method runs under the head mask and ablation given (``bound.masked``)
and in fp32, whatever precision a session scores in. Words are the fast
tokenizer's sub-word groups (``word_ids``); a word's score is the sum of its
tokens' scores (occlusion: the drop when all of them are replaced).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..core.bound import BoundModel
from ..core.capturing import Capture, _model_inputs, capture, encode
from ..core.gating import HeadMaskLike
from ..core.modes import eval_mode
from .attention_flow import attention_rollout, classification_position, layer_head_weights


class AttributionCancelled(Exception):
    """``should_stop()`` said the attribution is no longer wanted (a newer request superseded it)."""


GRADIENT_METHODS = ("grad_x_input", "integrated_gradients")
ATTENTION_METHODS = ("rollout", "attention")
METHODS = (*GRADIENT_METHODS, "occlusion", *ATTENTION_METHODS)
#: Short names the CLI and views accept.
METHOD_ALIASES = {"ig": "integrated_gradients", "gxi": "grad_x_input", "grad": "grad_x_input"}
#: Method names for people, in the order a picker shows them.
METHOD_LABELS = {"grad_x_input": "gradient x input", "integrated_gradients": "integrated gradients",
                 "occlusion": "occlusion", "rollout": "attention rollout", "attention": "raw attention"}
#: Integrated Gradients steps (captum's Gauss-Legendre rule). On the default
#: model the completeness gap is well under 5 % with 32 steps (see the README figures).
DEFAULT_IG_STEPS = 32


@dataclass
class TokenAttribution:
    """Scores for one input, per token and per word.

    Attributes
    ----------
    method : str
    tokens : list of str
        ``pos`` tokens, special tokens included.
    token_scores : np.ndarray, shape ``(pos,)``
        Special tokens score 0 for Integrated Gradients (the baseline keeps
        them) and occlusion (never occluded); gradient x input credits them too.
    words : list of str
        The input's words (sub-word groups), in order; special tokens are not words.
    word_scores : np.ndarray, shape ``(words,)``
    word_tokens : list of list of int
        Token positions of each word.
    target : int
        The class attributed, in the task's label order.
    logit : float
        ``F(x)``: the target's logit for the input, under the mask.
    baseline_logit : float or None
        ``F(baseline)`` (Integrated Gradients only).
    completeness_gap : float or None
        ``|sum(scores) - (F(x) - F(baseline))| / |F(x) - F(baseline)|`` (Integrated Gradients only).
    steps : int or None
        Integrated Gradients steps.
    replacement : str or None
        The token occlusion put in place of each word.
    truncated : bool
        The text was cut to the model's maximum length (with a ``TextTruncatedWarning``).
    seconds : float
        Time the method took.
    """

    method: str
    tokens: list
    token_scores: np.ndarray
    words: list
    word_scores: np.ndarray
    word_tokens: list
    target: int
    logit: float
    baseline_logit: float | None = None
    completeness_gap: float | None = None
    steps: int | None = None
    replacement: str | None = None
    truncated: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready: words, scores, method, target and the method's extras."""
        out = {"words": list(self.words), "scores": [float(s) for s in self.word_scores], "method": self.method,
               "target": int(self.target), "logit": float(self.logit), "tokens": list(self.tokens),
               "token_scores": [float(s) for s in self.token_scores], "truncated": bool(self.truncated),
               "seconds": float(self.seconds)}
        if self.method == "integrated_gradients":
            out.update(completeness_gap=self.completeness_gap, baseline_logit=self.baseline_logit, steps=self.steps,
                       difference=float(self.logit - (self.baseline_logit or 0.0)))
        if self.replacement is not None:
            out["replacement"] = self.replacement
        return out


def resolve_method(method: str) -> str:
    """The canonical name of ``method`` (aliases such as ``"ig"`` accepted); ``ValueError`` naming the choices."""
    name = METHOD_ALIASES.get(str(method), str(method))
    if name not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)} "
                         f"(or {', '.join(METHOD_ALIASES)})")
    return name


@contextlib.contextmanager
def _fp32_gated(bound: BoundModel, mask, ablation, means) -> Iterator[None]:
    """Eval mode, no autocast, the head gates: what every method runs under."""
    dtype = bound.dtype
    if dtype != torch.float32:
        raise ValueError(f"attributions need fp32 weights and the model is {dtype}; "
                         "use a float32 copy (model.float())")
    device = bound.device
    with eval_mode(bound.model), torch.autocast(device.type, enabled=False), \
            bound.masked(mask, ablation, means):
        yield


def _word_groups(batch, tokenizer, ids: list[int]) -> tuple[list[str], list[list[int]]]:
    """Words (sub-word groups of the fast tokenizer's ``word_ids``, per segment) and their token positions."""
    word_ids = batch.word_ids(0)
    segments = batch.sequence_ids(0)
    groups: dict = {}
    for position, (word, segment) in enumerate(zip(word_ids, segments)):
        if word is not None:
            groups.setdefault((segment, word), []).append(position)
    positions = list(groups.values())
    words = [tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens([ids[p] for p in group])).strip()
             for group in positions]
    return words, positions


def _classifier(bound: BoundModel, batch: dict, should_stop: Callable[[], bool] | None = None):
    """``forward(input_ids) -> (n, classes)`` task-order logits, through the word-embedding layer.

    The word embeddings are computed here and handed to the model as
    ``inputs_embeds``, so captum can attribute to that layer; the other
    inputs (attention mask, segments) are repeated to the batch's size.
    Decoder models pool their last position (the input has no padding).
    """
    model: Any = bound.model  # a classifier: get_input_embeddings(), and score() for decoders
    adapter = bound.adapter
    embed = model.get_input_embeddings()
    extra = {k: v for k, v in batch.items() if k != "input_ids"}

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise AttributionCancelled
        n = input_ids.shape[0]
        kwargs = {k: v.expand(n, *v.shape[1:]) for k, v in extra.items()}
        embeds = embed(input_ids)
        if adapter.causal:  # the base model applies the final norm; the score head reads the last position
            hidden = adapter.base_model(model)(inputs_embeds=embeds, **kwargs).last_hidden_state
            logits = model.score(hidden[:, -1])
        else:
            logits = model(inputs_embeds=embeds, **kwargs).logits
        return bound.task_logits(logits.float())

    return forward


def replacement_token(tokenizer) -> tuple[int, str]:
    """The token occlusion puts in place of a word: ``[MASK]``, else the pad token, else end-of-text."""
    for name in ("mask_token", "pad_token", "eos_token"):
        token_id = getattr(tokenizer, f"{name}_id", None)
        if token_id is not None:
            return int(token_id), str(getattr(tokenizer, name))
    raise ValueError("the tokenizer has no [MASK], pad or end-of-text token to occlude words with")


def baseline_token(tokenizer) -> int:
    """The Integrated Gradients baseline token: ``[PAD]``, else end-of-text (GPT-2)."""
    for name in ("pad_token_id", "eos_token_id"):
        token_id = getattr(tokenizer, name, None)
        if token_id is not None:
            return int(token_id)
    raise ValueError("the tokenizer has no pad or end-of-text token for the Integrated Gradients baseline")


def _check_target(target, classes: int) -> int:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"target must be a class index, got {target!r}")
    if not 0 <= int(target) < classes:
        raise ValueError(f"target {target} does not exist; this model has classes 0..{classes - 1} (task order)")
    return int(target)


def token_attributions(bound: BoundModel, text: str, pair: str | None = None, method: str = "grad_x_input",
                       target: int | None = None, *, mask: HeadMaskLike = None, ablation: str | None = None,
                       means: np.ndarray | torch.Tensor | None = None,
                       max_length: int | None = None, steps: int = DEFAULT_IG_STEPS,
                       capture_: Capture | None = None, batch_size: int | None = None,
                       should_stop: Callable[[], bool] | None = None) -> TokenAttribution:
    """Attribute the target class's logit to the tokens and words of one input.

    Parameters
    ----------
    bound : BoundModel
        A sequence classifier in fp32 (any supported family; ``"rollout"`` too).
    text, pair : str
        The input (an empty text raises ``ValueError``; one longer than
        ``max_length``, default the model's limit, is truncated with a ``TextTruncatedWarning``).
    method : str
        One of :data:`METHODS` (or an alias in :data:`METHOD_ALIASES`).
    target : int, optional
        Class to attribute, in the task's label order (default: the prediction under the mask).
    mask, ablation, means
        Head gates ``(layers, heads)`` and what masked heads output, as :meth:`BoundModel.masked`.
    steps : int
        Integrated Gradients steps (default :data:`DEFAULT_IG_STEPS`).
    capture_ : Capture, optional
        For ``"rollout"`` / ``"attention"``: a capture of this input under
        ``mask`` already made (a session's), instead of a new forward pass.
    batch_size : int, optional
        Integrated Gradients runs its steps in batches of this size (default: all at once).
    should_stop : callable, optional
        Checked before every forward pass; once it returns True the call
        raises :class:`AttributionCancelled` (a session's worker gives way to a newer request).

    Returns
    -------
    TokenAttribution
    """
    method = resolve_method(method)
    start = time.perf_counter()
    model, tokenizer = bound.model, bound.tokenizer
    batch, truncated = encode(tokenizer, model, text, pair, max_length)
    ids = batch["input_ids"][0].tolist()
    words, word_tokens = _word_groups(batch, tokenizer, ids)
    if not words:
        raise ValueError("the text has no words to attribute (only special tokens)")
    device = bound.device
    inputs = {k: v.to(device) for k, v in _model_inputs(model, batch).items()}
    forward = _classifier(bound, inputs, should_stop)
    input_ids = inputs["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    extras: dict = {}
    with _fp32_gated(bound, mask, ablation, means):
        with torch.no_grad():
            logits = forward(input_ids)[0]
        target = int(logits.argmax()) if target is None else _check_target(target, logits.shape[-1])
        logit = float(logits[target])
        if method in ATTENTION_METHODS:
            token_scores = _attention_scores(bound, text, pair, mask, max_length, method, capture_)
        elif method == "occlusion":
            token_scores, word_scores, extras = _occlusion(forward, input_ids, word_tokens, tokenizer, target, logit)
        else:
            token_scores, extras = _gradient(bound, forward, input_ids, tokenizer, target, method, steps, logit,
                                             batch_size)
    if method != "occlusion":
        word_scores = np.array([token_scores[group].sum() for group in word_tokens], dtype=np.float32)
    return TokenAttribution(method=method, tokens=tokens, token_scores=np.asarray(token_scores, dtype=np.float32),
                            words=words, word_scores=word_scores, word_tokens=word_tokens, target=target,
                            logit=logit, truncated=truncated, seconds=time.perf_counter() - start, **extras)


def _special_positions(tokenizer, ids: list[int]) -> list[int]:
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    return [i for i, flag in enumerate(special) if flag]


def _gradient(bound, forward, input_ids, tokenizer, target, method, steps, logit, batch_size=None):
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    embed_layer = bound.model.get_input_embeddings()
    with torch.enable_grad():
        if method == "grad_x_input":
            attributions = LayerGradientXActivation(forward, embed_layer).attribute(input_ids, target=target)
            scores = attributions[0].sum(-1).detach().cpu().numpy()
            return scores, {}
        baseline = torch.full_like(input_ids, baseline_token(tokenizer))
        keep = _special_positions(tokenizer, input_ids[0].tolist())
        baseline[0, keep] = input_ids[0, keep]
        ig = LayerIntegratedGradients(forward, embed_layer)
        attributions = ig.attribute(input_ids, baselines=baseline, target=target, n_steps=int(steps),
                                    internal_batch_size=int(batch_size or steps))
    with torch.no_grad():
        baseline_logit = float(forward(baseline)[0, target])
    scores = attributions[0].sum(-1).detach().cpu().numpy()
    difference = logit - baseline_logit
    gap = abs(float(scores.sum()) - difference) / max(abs(difference), 1e-12)
    return scores, {"baseline_logit": baseline_logit, "completeness_gap": gap, "steps": int(steps)}


@torch.no_grad()
def _occlusion(forward, input_ids, word_tokens, tokenizer, target, logit):
    """One batch: each word occluded, then each token of a multi-token word occluded on its own."""
    replace_id, replace_name = replacement_token(tokenizer)
    groups = [list(g) for g in word_tokens]
    singles = [[p] for g in word_tokens if len(g) > 1 for p in g]
    rows = input_ids.repeat(len(groups) + len(singles), 1)
    for row, positions in enumerate(groups + singles):
        rows[row, positions] = replace_id
    drops = logit - forward(rows)[:, target].cpu().numpy()
    word_scores = drops[:len(groups)].astype(np.float32)
    token_scores = np.zeros(input_ids.shape[1], dtype=np.float32)
    for group, drop in zip(groups, word_scores):
        if len(group) == 1:
            token_scores[group[0]] = drop
    for single, drop in zip(singles, drops[len(groups):]):
        token_scores[single[0]] = drop
    return token_scores, word_scores, {"replacement": replace_name}


def _attention_scores(bound, text, pair, mask, max_length, method, capture_):
    """The classification token's row of the last layer's rollout (or raw head-averaged attention)."""
    if capture_ is None:
        import warnings

        from ..core.capturing import TextTruncatedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)  # encode() above has already warned
            with torch.no_grad():
                capture_ = capture(bound, None, text, pair, None, max_length)  # gated by the caller
        capture_.mask = bound.gates(mask).detach().cpu().numpy()
    row = classification_position(capture_)
    if method == "rollout":
        return attention_rollout(capture_)[-1, row]
    weights = layer_head_weights(capture_)[-1]
    last = np.einsum("h,hk->k", weights, capture_.attentions[-1, :, row]) / max(float(weights.sum()), 1e-12)
    return last.astype(np.float32)


__all__ = [
    "ATTENTION_METHODS",
    "AttributionCancelled",
    "DEFAULT_IG_STEPS",
    "GRADIENT_METHODS",
    "METHODS",
    "METHOD_ALIASES",
    "METHOD_LABELS",
    "TokenAttribution",
    "baseline_token",
    "replacement_token",
    "resolve_method",
    "token_attributions",
]
