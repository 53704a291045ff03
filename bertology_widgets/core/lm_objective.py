"""A language model's own objective: perplexity and token accuracy.

:class:`CausalLMObjective` (``…ForCausalLM``, GPT-2's and GPT's
``…LMHeadModel``): each text is tokenized as ``tokenizer(text)`` does by
default (cut to ``max_length``), and every token after the first is
predicted from the tokens before it.

:class:`MaskedLMObjective` (``…ForMaskedLM``): a fixed, seeded 15 % of each
text's non-special tokens are replaced by the mask token, and the model
predicts the original tokens there. The positions, exactly: for the text at
0-based position ``i`` of the set, take its ``n`` non-special token positions
(``tokenizer.get_special_tokens_mask``, after truncation), let ``k = max(1,
floor(0.15 * n + 0.5))``, and choose ``k`` of them without replacement with
``numpy.random.default_rng([seed, i]).choice(n, k, replace=False)`` (seed
:data:`MASK_SEED` = 0), sorted. So every run, every mask and every prefix of
the set (``max_examples``) masks the same positions.

Both score the predicted tokens of the whole set together: ``perplexity`` is
the exponential of the mean negative log-likelihood over all of them
(token-weighted, not a mean of per-text perplexities), lower is better;
``token_accuracy`` is the share whose top-1 prediction is the target. Each
batch is reduced at once to three numbers per text (the NLL sum, the token
count, the top-1 hits, :meth:`LanguageModelObjective.reduce`), so no
``(tokens, vocabulary)`` matrix is kept for the set; and the LM head runs
only at the positions read (:meth:`LanguageModelObjective.reduce_hidden`):
every position but the last for the causal kind, the masked ones for the
masked kind.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .objective import Objective, PatchMetric, encode_labelled

if TYPE_CHECKING:
    from ..glue import Example
    from .evalset import EvalSet
    from .facts import BoundFacts

#: Seed of the masked positions (see the module docstring).
MASK_SEED = 0
#: Share of each text's non-special tokens that the masked objective masks.
MASK_SHARE = 0.15
#: Columns of a statistics row.
NLL, TOKENS, HITS = 0, 1, 2


class LanguageModelObjective(Objective):
    """What the causal and masked objectives share: the metrics, the statistics and their reduction.

    Rows are ``(nll_sum, tokens, top1_hits)`` float64, one per text (``stat_shape = (3,)``).
    """

    metrics = ("perplexity", "token_accuracy")
    stat_dtype = np.float64
    stat_shape = (3,)
    kind = ""
    reads_hidden = True

    def higher_is_better(self, metric: str | None = None) -> bool:
        """Perplexity: lower is better; token accuracy: higher is better."""
        return self.metric_name(metric) != "perplexity"

    # -- what is predicted where ----------------------------------------------------------------------
    def targets(self, batch: Mapping[str, torch.Tensor], eval_set: EvalSet,
                indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rows, cols, tokens)``, each ``(m,)``: the logits at ``[rows, cols]`` predict ``tokens``."""
        raise NotImplementedError

    def _stats(self, logits: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor, size: int) -> np.ndarray:
        """Rows ``(size, 3)`` from the logits ``(m, vocab)`` at the scored positions of ``size`` texts."""
        logits = logits.float()
        nll = F.cross_entropy(logits, tokens, reduction="none").double()
        hits = (logits.argmax(-1) == tokens).double()
        out = torch.zeros(size, 3, dtype=torch.float64, device=logits.device)
        out[:, NLL].index_add_(0, rows, nll)
        out[:, TOKENS].index_add_(0, rows, torch.ones_like(nll))
        out[:, HITS].index_add_(0, rows, hits)
        return out.cpu().numpy()

    def reduce(self, logits, batch, eval_set, indices):
        """Rows ``(batch, 3)`` from the model's logits ``(batch, pos, vocab)``."""
        rows, cols, tokens = self._on(self.targets(batch, eval_set, indices), logits.device)
        return self._stats(logits.detach()[rows, cols], rows, tokens, logits.shape[0])

    def reduce_hidden(self, bound: BoundFacts, hidden: torch.Tensor, batch, eval_set, indices,
                      final_norm: bool = True) -> np.ndarray:
        """Rows ``(batch, 3)`` from the last layer's output ``hidden`` ``(batch, pos, hidden)``.

        The model's final norm (when ``final_norm``; a base model's own output has had it) and its LM head
        run only at the scored positions.
        """
        from .unembedding import unembedding_for

        unembed = unembedding_for(bound.model)
        rows, cols, tokens = self._on(self.targets(batch, eval_set, indices), hidden.device)
        chosen = hidden.detach()[rows, cols]
        with torch.no_grad():  # a score, not a loss: no graph through the head's weights
            logits = unembed(chosen) if final_norm else unembed.head(chosen)
        return self._stats(logits, rows, tokens, hidden.shape[0])

    def reduce_output(self, bound, output, batch, eval_set, indices):
        """Rows ``(batch, 3)`` from the last layer's output ``(batch, pos, hidden)``, before the final norm."""
        return self.reduce_hidden(bound, output, batch, eval_set, indices, final_norm=True)

    @staticmethod
    def _on(targets, device) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(device) for t in targets)

    # -- scores ---------------------------------------------------------------------------------------
    def score(self, stats, eval_set=None, indices=None) -> dict[str, float]:
        """``{"perplexity": exp(sum NLL / tokens), "token_accuracy": hits / tokens}`` over the rows."""
        stats = np.asarray(stats, dtype=np.float64).reshape(-1, 3)
        tokens = float(stats[:, TOKENS].sum())
        if tokens == 0:
            raise ValueError("no token to score: every text is a single token (a causal LM predicts every "
                             "token after the first); give longer texts")
        return {"perplexity": math.exp(float(stats[:, NLL].sum()) / tokens),
                "token_accuracy": float(stats[:, HITS].sum()) / tokens}

    @staticmethod
    def scored_tokens(stats: np.ndarray) -> int:
        """How many tokens the rows ``(n, 3)`` scored."""
        return int(np.asarray(stats).reshape(-1, 3)[:, TOKENS].sum())

    def estimate(self, stats, eval_set, indices, population):
        """The metrics on the texts seen so far, with 95 % intervals of a ratio estimator.

        The mean NLL per token and the hit rate are ratios of per-text sums; their standard errors come
        from the linearised variance, with the finite-population correction for ``population`` texts.
        """
        stats = np.asarray(stats, dtype=np.float64).reshape(-1, 3)
        values = self.score(stats)
        m = len(stats)
        if m < 2:
            return values, {}
        tokens = stats[:, TOKENS]
        correction = max(0.0, 1.0 - m / max(int(population), m))
        intervals = {}
        for column, metric in ((NLL, "perplexity"), (HITS, "token_accuracy")):
            ratio = stats[:, column].sum() / tokens.sum()
            residual = stats[:, column] - ratio * tokens
            se = math.sqrt(correction * residual.var(ddof=1) / m) / tokens.mean()
            low, high = ratio - 1.96 * se, ratio + 1.96 * se
            intervals[metric] = ((math.exp(low), math.exp(high)) if metric == "perplexity"
                                 else (max(0.0, low), min(1.0, high)))
        return values, intervals

    def losses(self, logits, batch, eval_set, indices):
        """``(batch,)``: each text's mean NLL over its predicted tokens (0 for a text with none)."""
        rows, cols, tokens = self._on(self.targets(batch, eval_set, indices), logits.device)
        nll = F.cross_entropy(logits[rows, cols].float(), tokens, reduction="none")
        size = logits.shape[0]
        total = torch.zeros(size, device=logits.device).index_add(0, rows, nll)
        count = torch.zeros(size, device=logits.device).index_add(0, rows, torch.ones_like(nll))
        return total / count.clamp(min=1)

    # -- patching -------------------------------------------------------------------------------------
    def readout(self, logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the next token after each input's last real token: ``(rows, vocab)``."""
        last = attention_mask.long().sum(-1) - 1
        chosen = logits[torch.arange(logits.shape[0], device=logits.device), last.to(logits.device)]
        return torch.log_softmax(chosen.float(), -1)

    def patch_metric(self, target: int | None = None) -> PatchMetric:
        """The log-probability of the next token ``target`` (None: the clean input's top token)."""

        def metric(patched: np.ndarray, clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
            token = int(np.argmax(clean)) if target is None else int(target)
            return np.asarray(patched, dtype=np.float64)[..., token]

        return metric


class CausalLMObjective(LanguageModelObjective):
    """Next-token prediction: every token after the first of each text (see the module docstring)."""

    name = "causal_lm"
    kind = "causal"

    def targets(self, batch, eval_set, indices):
        mask = batch["attention_mask"][:, 1:].bool() & batch["attention_mask"][:, :-1].bool()
        rows, cols = mask.nonzero(as_tuple=True)
        return rows, cols, batch["input_ids"][:, 1:][rows, cols]


class MaskedLMObjective(LanguageModelObjective):
    """The original tokens at a seeded 15 % of each text's non-special positions (see the module docstring)."""

    name = "masked_lm"
    kind = "masked"

    def __init__(self, seed: int = MASK_SEED, share: float = MASK_SHARE):
        self.seed, self.share = int(seed), float(share)

    def positions(self, tokenizer, ids: Sequence[int], index: int) -> np.ndarray:
        """The masked positions of the text at ``index`` whose token ids are ``ids`` (sorted, at least one)."""
        special = tokenizer.get_special_tokens_mask(list(ids), already_has_special_tokens=True)
        candidates = np.flatnonzero(np.asarray(special) == 0)
        if len(candidates) == 0:
            return candidates.astype(np.int64)
        k = max(1, int(math.floor(self.share * len(candidates) + 0.5)))
        chosen = np.random.default_rng([self.seed, int(index)]).choice(len(candidates), k, replace=False)
        return np.sort(candidates[chosen]).astype(np.int64)

    def encode(self, bound: BoundFacts, examples: Sequence[Example], max_length: int) -> EvalSet:
        """Tokenize, then replace each text's chosen positions by the mask token; ``targets[i]`` is
        ``(positions, original token ids)``, each ``(k_i,)``."""
        tokenizer = bound.tokenizer
        if tokenizer.mask_token_id is None:
            raise ValueError(f"{type(tokenizer).__name__} has no mask token, so a masked LM cannot be scored")
        eval_set = encode_labelled(bound, examples, max_length)
        encoded, targets, masked_ids = eval_set.encoded, [], []
        for i, ids in enumerate(encoded.input_ids):
            where = self.positions(tokenizer, ids, i)
            ids = list(ids)
            targets.append((where, np.asarray([ids[p] for p in where], dtype=np.int64)))
            for p in where:
                ids[p] = tokenizer.mask_token_id
            masked_ids.append(ids)
        return replace(eval_set, encoded=replace(encoded, input_ids=masked_ids), labels=None,
                       targets=tuple(targets))

    def targets(self, batch, eval_set, indices):
        assert eval_set.targets is not None, "encode the texts with MaskedLMObjective.encode"
        rows, cols, tokens = [], [], []
        for row, index in enumerate(np.asarray(indices)):
            where, original = eval_set.targets[int(index)]
            rows.extend([row] * len(where))
            cols.extend(where.tolist())
            tokens.extend(original.tolist())
        return (torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long),
                torch.as_tensor(tokens, dtype=torch.long))


LM_TASKS = ("lm", "causal_lm", "masked_lm")


def lm_objective(model, task: str = "lm") -> LanguageModelObjective:
    """The objective of ``model``'s LM head for ``task`` (``"lm"``: whichever head it has).

    Raises ``ValueError`` for a model without that head.
    """
    from .unembedding import unembedding_for

    if task not in LM_TASKS:
        raise ValueError(f"a language model's task is one of {', '.join(LM_TASKS)}, got {task!r}")
    kind = unembedding_for(model).kind
    if task != "lm" and task != f"{kind}_lm":
        raise ValueError(f'task="{task}" needs a {task.replace("_lm", "")} LM head, but '
                         f"{type(model).__name__} has a {kind} one; use task=\"lm\"")
    return CausalLMObjective() if kind == "causal" else MaskedLMObjective()


__all__ = ["CausalLMObjective", "LM_TASKS", "LanguageModelObjective", "MASK_SEED", "MaskedLMObjective",
           "lm_objective"]
