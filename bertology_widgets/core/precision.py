"""bf16 speed with fp32 answers: choosing the precision, and the fp32 guard.

``precision="auto"`` scores in bf16 where the hardware multiplies bf16 fast
and in fp32 elsewhere. Fast means a CUDA GPU, or a CPU with bf16 dot
products in hardware: AMX (the ``amx_bf16`` / ``amx_tile`` flags of
``/proc/cpuinfo``) or AVX512-BF16 (``avx512_bf16``).
``torch.backends.cpu.get_cpu_capability()`` only says "AVX512" on either.
Measured on 2 cores of an AVX512-BF16 CPU without AMX (AMD EPYC, Zen 4), a
``(832, 384) x (384, 1536)`` matmul ran at 344 GFLOP/s in bf16 against 161 in
fp32, and a full re-score of SST-2 dev on the default model took 1.95 s
against 3.1 s (guard included). bf16 means a bf16 *copy of the weights* (no
autocast re-casting them on every call), so the layer cache is bf16 as well,
half the memory.

**The fp32 guard.** bf16 moves the logits a little, which can flip an
example whose two best logits are close. Every example whose bf16 logit
margin (best minus second best) is below

    bound = GUARD_ABS + GUARD_REL * max|logit|

is re-scored in fp32. Only those rows run again, as a smaller batch with
the same padding: their fp32 logits then differ from the whole batch's by
float rounding only (at most 6e-7 measured on the default model). Where
such a re-scored row's own fp32 margin is below :data:`ROUNDING_MARGIN`
(1e-4, over 100x that rounding), the whole length-sorted batch runs in fp32,
exactly as the fp32 evaluation runs it. So the predictions equal fp32's
whenever bf16's margin error stays below the bound, at the price of the
close rows alone (about 1 % of SST-2 dev) rather than of their batches.

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
import io
import itertools
import os
from typing import Callable

import numpy as np
import torch

PRECISIONS = ("auto", "fp32", "bf16")
#: Environment variable that fixes what ``"auto"`` resolves to (see :func:`resolve_precision`).
AUTO_PRECISION_ENV = "BERTOLOGY_AUTO_PRECISION"
GUARD_ABS = 0.1
GUARD_REL = 0.02
#: fp32 margin below which a row re-scored on its own is re-scored within its whole batch.
ROUNDING_MARGIN = 1e-4


@functools.lru_cache(maxsize=4)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
    """The CPU's feature flags, from the first ``flags`` line of ``cpuinfo`` (empty if unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises AMX for bf16 (``amx_bf16`` and ``amx_tile`` flags)."""
    return {"amx_bf16", "amx_tile"} <= cpu_flags(cpuinfo)


def cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has bf16 dot products in hardware: AMX, or AVX512-BF16."""
    return cpu_has_amx(cpuinfo) or "avx512_bf16" in cpu_flags(cpuinfo)


def has_fast_bf16(device: str | torch.device) -> bool:
    """bf16 in hardware on ``device``: a CUDA GPU that supports bf16, or a CPU with AMX or AVX512-BF16."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_fast_bf16()


def resolve_precision(precision: str, device: str | torch.device, is_regression: bool = False) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` in :data:`PRECISIONS` on ``device``.

    ``$BERTOLOGY_AUTO_PRECISION`` (``fp32`` or ``bf16``), where set, is what
    ``"auto"`` means on this machine, e.g. to keep a class on fp32 figures.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        forced = os.environ.get(AUTO_PRECISION_ENV, "").strip()
        if forced and forced not in ("fp32", "bf16"):
            raise ValueError(f"${AUTO_PRECISION_ENV} must be fp32 or bf16, got {forced!r}")
        if forced:
            return "fp32" if is_regression else forced
        return "bf16" if has_fast_bf16(device) and not is_regression else "fp32"
    if precision == "bf16" and is_regression:
        raise ValueError("bf16 scoring needs a classification task (the fp32 guard compares logit margins)")
    return precision


def bf16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with bf16 weights (the original stays fp32).

    Each floating-point parameter and buffer is cast straight to bf16 (tied
    weights stay tied), so the copy costs half the weights' size and no fp32
    transient; integer buffers (position ids) are shared with the original.
    Where the shared results folder is on (:func:`~bertology_widgets.runtime.results_cache.results_dir`),
    the bf16 weights are written there once and memory-mapped, so every
    kernel on the machine shares one copy (a class of 30 pays for it once).
    """
    shared = _shared_bf16_state(model)
    memo: dict = {}
    named = itertools.chain(model.named_parameters(remove_duplicate=False),
                            model.named_buffers(remove_duplicate=False))
    for name, tensor in named:
        if id(tensor) in memo:
            continue
        if not tensor.is_floating_point():
            memo[id(tensor)] = tensor
            continue
        low = shared.get(name) if shared else None
        low = tensor.detach().to(torch.bfloat16) if low is None else low
        is_parameter = isinstance(tensor, torch.nn.Parameter)
        memo[id(tensor)] = torch.nn.Parameter(low, requires_grad=False) if is_parameter else low
    return copy.deepcopy(model, memo).to(torch.bfloat16).eval()


def _shared_bf16_state(model) -> dict | None:
    """``{name: bf16 tensor}`` memory-mapped from the shared results folder, or None.

    Written once per weights (keyed like the shared results), under a lock;
    every tensor is checked against the model's own, cast, so a file that does
    not match (the model was changed in memory after loading) is never used.
    """
    from filelock import FileLock

    from ..runtime.files import atomic_write_bytes
    from ..runtime.results_cache import model_fingerprint, result_key, results_dir

    folder = results_dir()
    if folder is None or next(model.parameters()).device.type != "cpu":  # on a GPU the copy is in its memory
        return None
    try:
        path = folder / f"bf16-weights-{result_key('bf16-weights', model_fingerprint(model))}.pt"
        state = {name: t.detach() for name, t in model.state_dict().items() if t.is_floating_point()}
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock"):
                if not path.exists():
                    buffer = io.BytesIO()
                    torch.save({name: t.to(torch.bfloat16) for name, t in state.items()}, buffer)
                    atomic_write_bytes(path, buffer.getvalue(), mode=0o644)
        shared = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        same = shared.keys() == state.keys() and all(
            shared[name].shape == t.shape and torch.equal(shared[name], t.to(torch.bfloat16))
            for name, t in state.items())
        return shared if same else None
    except (OSError, RuntimeError, ValueError):  # a read-only or broken cache only costs memory
        return None


def margins(logits: torch.Tensor) -> torch.Tensor:
    """Best minus second-best logit per row: ``(batch, labels)`` -> ``(batch,)``."""
    top = logits.float().topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def needs_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Rows of bf16 ``logits`` ``(batch, labels)`` too close to call: ``(batch,)`` bool."""
    logits = logits.float()
    bound = GUARD_ABS + GUARD_REL * logits.abs().amax(dim=-1)
    return margins(logits) < bound


def guarded(
    logits: torch.Tensor, fp32_logits: Callable[[torch.Tensor | None], torch.Tensor]
) -> tuple[torch.Tensor, int]:
    """bf16 ``logits`` ``(batch, labels)`` with the close rows replaced by fp32 ones.

    ``fp32_logits(rows)`` returns fp32 logits ``(rows.sum(), labels)`` for the
    rows picked by the bool ``rows`` ``(batch,)`` (see :func:`take_rows`), or
    ``(batch, labels)`` for the whole batch when ``rows`` is None. It is
    called only when a row needs it: once for the close rows, and once more
    for the whole batch where one of them is within float rounding of a tie.
    Returns the logits (fp32) and how many rows were re-scored.
    """
    low = needs_fp32(logits)
    n = int(low.sum())
    out = logits.float()
    if n:
        exact = fp32_logits(low).float()
        if bool((margins(exact) < ROUNDING_MARGIN).any()):
            exact = fp32_logits(None).float()[low]
        out = out.clone()
        out[low] = exact
    return out, n


def take_rows(inputs: dict, rows: torch.Tensor | None) -> dict:
    """The ``rows`` (bool, ``(batch,)``) of each ``(batch, pos)`` input, padding kept; all of them for None."""
    if rows is None:
        return inputs
    rows = rows.to(next(iter(inputs.values())).device)
    return {name: value[rows] for name, value in inputs.items()}


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
