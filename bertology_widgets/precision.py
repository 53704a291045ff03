"""bf16 speed with fp32 answers: choosing the precision, and the fp32 guard.

``precision="auto"`` scores in bf16 where the hardware multiplies bf16 fast
(a CUDA GPU, or a CPU with AMX: the ``amx_bf16`` / ``amx_tile`` flags of
``/proc/cpuinfo``; ``torch.backends.cpu.get_cpu_capability()`` only says
"AVX512" there) and in fp32 elsewhere. bf16 means a bf16 *copy of the
weights* (no autocast re-casting them on every call), so the layer cache is
bf16 as well.

**The fp32 guard.** bf16 moves the logits a little, which can flip an
example whose two best logits are close. Every example whose bf16 logit
margin (best minus second best) is below

    bound = GUARD_ABS + GUARD_REL * max|logit|

is re-scored in fp32 (its whole length-sorted batch, exactly as the fp32
evaluation runs it, so its logits are bitwise fp32's). So the predictions
equal fp32's whenever bf16's margin error stays below the bound.

How the constants were derived: between bf16-weight and fp32 logits of the
default MiniLM (SST-2 dev, random masks keeping each head with probability
0.4-1), the largest margin error measured was 0.023 in absolute terms and
0.018 x (1 + max|logit|) in relative ones (on an AVX512-BF16 CPU, which runs
the same bf16 arithmetic as AMX, only slower). The bound is over 4x the
absolute figure and about that relative one combined; ``tests/test_precision.py``
checks random masks on the default model (``slow``) and on a tiny one. A
wider bound only costs time: see the benchmark's ``guard_rescored_fraction``.
Regression tasks (STS-B) have no margin: ``auto`` picks fp32 for them.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch

PRECISIONS = ("auto", "fp32", "bf16")
GUARD_ABS = 0.1
GUARD_REL = 0.02


@functools.lru_cache(maxsize=1)
def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises AMX for bf16 (``amx_bf16`` and ``amx_tile`` flags)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"amx_bf16", "amx_tile"} <= flags
    except OSError:
        return False
    return False


def has_fast_bf16(device) -> bool:
    """bf16 matrix units on ``device``: a CUDA GPU that supports bf16, or an AMX CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_amx()


def resolve_precision(precision: str, device, is_regression: bool = False) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` in :data:`PRECISIONS` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if has_fast_bf16(device) and not is_regression else "fp32"
    if precision == "bf16" and is_regression:
        raise ValueError("bf16 scoring needs a classification task (the fp32 guard compares logit margins)")
    return precision


def bf16_copy(model):
    """A copy of ``model`` with bf16 weights (the original stays fp32)."""
    return copy.deepcopy(model).to(torch.bfloat16).eval()


def margins(logits: torch.Tensor) -> torch.Tensor:
    """Best minus second-best logit per row: ``(batch, labels)`` -> ``(batch,)``."""
    top = logits.float().topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def needs_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Rows of bf16 ``logits`` ``(batch, labels)`` too close to call: ``(batch,)`` bool."""
    logits = logits.float()
    bound = GUARD_ABS + GUARD_REL * logits.abs().amax(dim=-1)
    return margins(logits) < bound


def guarded(logits: torch.Tensor, fp32_logits) -> tuple[torch.Tensor, int]:
    """bf16 ``logits`` ``(batch, labels)`` with the close rows replaced by ``fp32_logits()``'s.

    ``fp32_logits`` is called (once) only when a row needs it. Returns the
    logits (fp32) and how many rows were re-scored.
    """
    low = needs_fp32(logits)
    n = int(low.sum())
    out = logits.float()
    if n:
        out = out.clone()
        out[low] = fp32_logits().float()[low]
    return out, n


class GuardStats:
    """How much work the guard did: examples re-scored out of those scored."""

    def __init__(self):
        self.rescored = 0
        self.scored = 0

    def add(self, rescored: int, scored: int) -> None:
        self.rescored += rescored
        self.scored += scored

    @property
    def fraction(self) -> float:
        return self.rescored / self.scored if self.scored else 0.0


def to_numpy(logits: torch.Tensor) -> np.ndarray:
    return logits.float().cpu().numpy()
