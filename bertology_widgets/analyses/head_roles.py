"""What kind of head is this? Attention statistics and a role per head.

Clark et al. 2019 ("What Does BERT Look At?") found heads that attend to the
previous or next token, to ``[CLS]``, to ``[SEP]`` (a "no-op"), to
punctuation, and broad heads; Voita et al. 2019 found positional heads among
the important ones. :func:`head_roles` measures each of these for every head,
averaged over query tokens (padding excluded) and examples, and names the
dominant one.

Role rule (documented thresholds)
---------------------------------
For each head, the largest of the *share* measures (``cls``, ``sep``,
``punct``, ``prev``, ``next``, ``self``: the mean attention weight a query
puts there) names the role if it is at least :data:`ROLE_SHARE_THRESHOLD`
(0.5: the head puts most of its attention there). Otherwise a head whose
normalised entropy (entropy / log(number of visible keys)) is at least
:data:`BROAD_ENTROPY_THRESHOLD` (0.75) is ``"broad"``; anything else is
``"mixed"``. With causal attention (GPT-2) there is no next token: ``next``
is NaN and never a role; the first token plays ``[CLS]``'s part (BOS or,
when the tokenizer adds none, the first word, the usual attention sink).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..core.batching import collate, length_sorted_batches
from ..core.bound import BoundModel, EvalSet, as_scored
from ..core.capturing import _attentions_per_layer, attention_implementation
from ..core.modes import eval_mode
from ..runtime.progress import Progress, progress_reporter
from .evaluation import DEFAULT_MAX_LENGTH
from .induction import induction_scores, probe_fits

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..glue import Example
    from ..runtime.files import PathLike

SHARE_MEASURES = ("cls", "sep", "punct", "prev", "next", "self")
MEASURES = SHARE_MEASURES + ("entropy", "entropy_ratio", "distance")
ROLES = SHARE_MEASURES + ("broad", "mixed")
ROLE_SHARE_THRESHOLD = 0.5
BROAD_ENTROPY_THRESHOLD = 0.75
ROLE_DESCRIPTIONS = {
    "cls": "attends to [CLS] / BOS (the first token)",
    "sep": "attends to [SEP] / EOS",
    "punct": "attends to punctuation",
    "prev": "attends to the previous token",
    "next": "attends to the next token",
    "self": "attends to the token itself",
    "broad": "spreads attention broadly (high entropy)",
    "mixed": "no single pattern dominates",
}


@dataclass
class HeadRoles:
    """Per-head attention statistics and roles.

    Attributes
    ----------
    measures : dict of str -> np.ndarray, each ``(layers, heads)``
        ``cls``, ``sep``, ``punct``, ``prev``, ``next``, ``self``: mean
        attention share (0..1); ``entropy``: mean entropy in nats;
        ``entropy_ratio``: entropy / log(visible keys), 0..1; ``distance``:
        mean ``|query - key|`` in tokens. NaN where undefined (``next`` under
        causal attention, heads pruned away).
    roles : np.ndarray of str, shape ``(layers, heads)``
        One of :data:`ROLES` (``"pruned"`` for a head pruned away).
    n_examples, n_queries : int
    causal : bool
    induction : np.ndarray, shape ``(layers, heads)``, or None
        Causal models: each head's induction score, 0..1, on repeated random tokens
        (:mod:`~bertology_widgets.analyses.induction`); None for bidirectional models.
    in_context_loss : float or None
        Causal LMs: the mean loss (nats per token) on the repeated half of those sequences.
    """

    measures: dict
    roles: np.ndarray
    n_examples: int
    n_queries: int
    causal: bool
    induction: np.ndarray | None = None
    in_context_loss: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.roles.shape)

    def role_counts(self) -> dict:
        names, counts = np.unique(self.roles, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts)}

    def to_dict(self) -> dict:
        """JSON-ready: measures as nested lists (NaN -> None), roles, thresholds."""
        def clean(array):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in array]

        extra = {} if self.induction is None else {"induction": clean(self.induction),
                                                   "in_context_loss": self.in_context_loss}
        return {
            **extra,
            "measures": {k: clean(v) for k, v in self.measures.items()},
            "roles": self.roles.tolist(),
            "role_counts": self.role_counts(),
            "role_share_threshold": ROLE_SHARE_THRESHOLD,
            "broad_entropy_threshold": BROAD_ENTROPY_THRESHOLD,
            "n_examples": self.n_examples, "n_queries": self.n_queries, "causal": self.causal,
        }

    def save(self, directory: PathLike) -> tuple[Path, Path]:
        """Write ``head_roles.npz`` and ``head_roles.json`` into ``directory``; returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        npz, js = directory / "head_roles.npz", directory / "head_roles.json"
        arrays: dict[str, Any] = dict(self.measures, roles=self.roles.astype(str))
        if self.induction is not None:
            arrays["induction"] = self.induction
        np.savez(npz, **arrays)
        js.write_text(json.dumps(self.to_dict(), indent=1))
        return npz, js

    @classmethod
    def load(cls, path: PathLike) -> "HeadRoles":
        """Read a ``head_roles.json`` (or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "head_roles.json"
        data = json.loads(path.read_text())
        def array(m):
            return np.array([[np.nan if v is None else v for v in row] for row in m], dtype=np.float64)

        measures = {k: array(m) for k, m in data["measures"].items()}
        induction = array(data["induction"]) if "induction" in data else None
        return cls(measures, np.array(data["roles"]), data["n_examples"], data["n_queries"], data["causal"],
                   induction, data.get("in_context_loss"))

    def table(self) -> str:
        """A readable table: one line per head with its role and main measures."""
        lines = [f"{'layer':>5} {'head':>4}  {'role':<6} " + " ".join(f"{m:>7}" for m in SHARE_MEASURES)
                 + f" {'entropy':>7} {'dist':>6}"]
        layers, heads = self.shape
        for layer in range(layers):
            for head in range(heads):
                values = " ".join(_fmt(self.measures[m][layer, head], 7, 3) for m in SHARE_MEASURES)
                lines.append(f"{layer:>5} {head:>4}  {self.roles[layer, head]:<6} {values} "
                             f"{_fmt(self.measures['entropy'][layer, head], 7, 2)} "
                             f"{_fmt(self.measures['distance'][layer, head], 6, 2)}")
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.role_counts().items(), key=lambda kv: -kv[1]))
        lines.append(f"roles: {counts}")
        return "\n".join(lines)


def _fmt(value: float, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if not np.isfinite(value) else f"{value:>{width}.{digits}f}"


def assign_roles(measures: dict) -> np.ndarray:
    """Roles ``(layers, heads)`` from the measures, by the rule in the module docstring."""
    shares = np.stack([np.nan_to_num(measures[m], nan=-1.0) for m in SHARE_MEASURES])  # (6, layers, heads)
    best = shares.argmax(0)
    top = shares.max(0)
    roles = np.where(top >= ROLE_SHARE_THRESHOLD, np.array(SHARE_MEASURES, dtype=object)[best], "mixed")
    broad = (top < ROLE_SHARE_THRESHOLD) & (np.nan_to_num(measures["entropy_ratio"]) >= BROAD_ENTROPY_THRESHOLD)
    roles = np.where(broad, "broad", roles)
    roles = np.where(np.isnan(measures["entropy"]), "pruned", roles)
    return roles.astype(str)


def _token_sets(tokenizer, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sep, punct)`` boolean tensors like ``ids`` ``(batch, pos)``."""
    sep_ids = {i for i in (getattr(tokenizer, "sep_token_id", None), getattr(tokenizer, "eos_token_id", None))
               if i is not None}
    unique = ids.unique().tolist()
    tokens = tokenizer.convert_ids_to_tokens(unique)
    punct_ids = [i for i, t in zip(unique, tokens) if _is_punctuation(t)]
    return _is_in(ids, sorted(sep_ids)), _is_in(ids, punct_ids)


def _is_in(ids: torch.Tensor, chosen: list) -> torch.Tensor:
    return torch.isin(ids, torch.tensor(chosen, dtype=ids.dtype)) if chosen else torch.zeros_like(ids, dtype=torch.bool)


def _is_punctuation(token: str) -> bool:
    text = token.replace("##", "").replace("\u0120", "").strip()
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


def _layer_sums(att: torch.Tensor, valid: torch.Tensor, sep: torch.Tensor, punct: torch.Tensor,
                causal: bool) -> dict:
    """Sums over queries and examples for one layer.

    att: ``(batch, heads, pos, pos)``; valid, sep, punct: ``(batch, pos)`` bool.
    Returns ``{measure: (sum (heads,), count)}``.
    """
    att = att.double()
    q = valid.double()  # query weights (batch, pos)
    n = q.sum()
    pos = att.shape[-1]
    idx = torch.arange(pos, dtype=torch.float64)
    out = {
        "cls": ((att[..., 0] * q[:, None]).sum((0, 2)), n),
        "sep": (((att * sep.double()[:, None, None, :]).sum(-1) * q[:, None]).sum((0, 2)), n),
        "punct": (((att * punct.double()[:, None, None, :]).sum(-1) * q[:, None]).sum((0, 2)), n),
        "self": ((torch.diagonal(att, 0, -2, -1) * q[:, None]).sum((0, 2)), n),
    }
    pair_valid = (valid[:, 1:] & valid[:, :-1]).double()  # both ends of (q, q-1) or (q, q+1) are tokens
    out["prev"] = ((torch.diagonal(att, -1, -2, -1) * pair_valid[:, None]).sum((0, 2)), pair_valid.sum())
    if not causal:
        out["next"] = ((torch.diagonal(att, 1, -2, -1) * pair_valid[:, None]).sum((0, 2)), pair_valid.sum())
    entropy = -(att * att.clamp_min(1e-12).log()).sum(-1)  # (batch, heads, pos)
    visible = valid.double().sum(1, keepdim=True).expand_as(q) if not causal else (idx + 1)[None].expand_as(q)
    log_keys = visible.clamp_min(1).log()
    ratio_weights = q * (visible > 1)
    out["entropy"] = ((entropy * q[:, None]).sum((0, 2)), n)
    ratio = entropy / log_keys.clamp_min(1e-12)[:, None]
    out["entropy_ratio"] = ((ratio * ratio_weights[:, None]).sum((0, 2)), ratio_weights.sum())
    distance = (idx[:, None] - idx[None, :]).abs()
    out["distance"] = (((att * distance).sum(-1) * q[:, None]).sum((0, 2)), n)
    return out


@torch.inference_mode()
def head_roles(bound: BoundModel | nn.Module, eval_set: EvalSet | PreTrainedTokenizerBase | Sequence[Example],
               examples: Sequence[Example] | None = None, *, batch_size: int = 16,
               max_length: int = DEFAULT_MAX_LENGTH, progress: Progress = False,
               on_progress: Callable[[int, int], None] | None = None, induction: bool | None = None) -> HeadRoles:
    """Attention statistics and a role for every head, over ``examples`` in batches.

    Parameters
    ----------
    bound, eval_set
        A bound model (BERT family or GPT-2; base or task model) and its encoded examples; or a model,
        its tokenizer and ``examples`` (the dev set or a subset: objects with ``text_a`` / ``text_b``),
        bound here (see :func:`~bertology_widgets.core.bound.as_scored`).
    batch_size, max_length : int
    progress : bool or callable
        A tqdm bar (True), none (False) or ``progress(done, total)`` in batches
        (see :mod:`~bertology_widgets.runtime.progress`).
    on_progress : callable, optional
        Also called as ``on_progress(done, total)`` after every batch (the older keyword).
    induction : bool, optional
        Also score induction heads and the in-context copying loss
        (:func:`~bertology_widgets.analyses.induction.induction_scores`, one extra forward of its fixed
        sequences). Default: for causal models that take its 101 tokens.

    Returns
    -------
    HeadRoles
        Measures ``(layers, heads)`` each, and roles ``(layers, heads)``; ``induction`` ``(layers, heads)``
        and ``in_context_loss`` for causal models.
    """
    bound, eval_set = as_scored(bound, eval_set, examples, max_length=max_length)
    model, tokenizer = bound.model, bound.tokenizer
    num_layers, num_heads = bound.shape
    kept = bound.kept_heads()
    causal = bound.is_causal
    encoded = eval_set.encoded
    batches = length_sorted_batches(encoded.lengths, batch_size)
    device = bound.device
    pad, with_types = bound.pad_id, bound.uses_token_types
    sums = {m: torch.zeros(num_layers, num_heads, dtype=torch.float64) for m in MEASURES}
    counts = {m: torch.zeros(num_layers, dtype=torch.float64) for m in MEASURES}
    queries = 0
    report = progress_reporter(progress, len(batches), desc="head roles", unit="batch", on_progress=on_progress)
    with eval_mode(model), attention_implementation(model, "eager"), report:
        for indices in report.iterate(batches):
            batch = collate(encoded, indices, pad, device, with_types)
            extra = {"use_cache": False} if causal else {}
            out = model(**batch, output_attentions=True, **extra)
            valid = batch["attention_mask"].bool().cpu()
            queries += int(valid.sum())
            sep, punct = _token_sets(tokenizer, batch["input_ids"].cpu())
            for layer, att in enumerate(_attentions_per_layer(out.attentions, kept)):
                if att is None:
                    continue
                for name, (total, count) in _layer_sums(att.float().cpu(), valid, sep, punct, causal).items():
                    sums[name][layer, kept[layer]] += total
                    counts[name][layer] += count
    measures = {}
    for name in MEASURES:
        values = (sums[name] / counts[name][:, None].clamp_min(1)).numpy()
        missing = np.ones((num_layers, num_heads), dtype=bool)
        for layer, heads in enumerate(kept):
            missing[layer, heads] = counts[name][layer] == 0
        values[missing] = np.nan
        measures[name] = values
    copying = None
    if induction or (induction is None and causal and probe_fits(bound)):
        copying = induction_scores(bound)
    return HeadRoles(measures=measures, roles=assign_roles(measures), n_examples=len(encoded),
                     n_queries=queries, causal=causal, induction=None if copying is None else copying.induction,
                     in_context_loss=None if copying is None else copying.in_context_loss)


__all__ = ["BROAD_ENTROPY_THRESHOLD", "HeadRoles", "MEASURES", "ROLES", "ROLE_DESCRIPTIONS",
           "ROLE_SHARE_THRESHOLD", "assign_roles", "head_roles"]
