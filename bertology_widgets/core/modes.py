"""Model modes that analyses switch for a block and put back."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

_LOCK = threading.Lock()
#: ``id(model) -> (blocks open, training flag before the first)``: nested and concurrent blocks share one switch.
_OPEN: dict[int, tuple[int, bool]] = {}


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for the block, then back in the mode it was in (train or eval).

    Blocks may nest and overlap across threads (a live session's worker and the kernel): the first to
    open records the mode and the last to close puts it back, so an overlapping block never restores
    train mode under another's forward.
    """
    key = id(model)
    with _LOCK:
        count, was_training = _OPEN.get(key, (0, model.training))
        _OPEN[key] = (count + 1, was_training)
        model.eval()
    try:
        yield model
    finally:
        with _LOCK:
            count, was_training = _OPEN.pop(key)
            if count > 1:
                _OPEN[key] = (count - 1, was_training)
            else:
                model.train(was_training)


__all__ = ["eval_mode"]
