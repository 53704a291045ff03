"""Hooks that act only in the thread that installed them.

The engine gates, captures and stops a forward pass with hooks it adds to a
model for the length of one call, and removes after. A hook belongs to the
module, so while it is there it would also act on a forward that another
thread runs on the same model: a live session scoring in the background while
the user calls the model, or an engine function, from a notebook cell. Such a
forward would come back gated, or raise the exception that stops a capture,
and the capture would record that forward's tensors. Wrapped with
:func:`this_thread_only`, the hook lets every other thread's forward pass as
if it were not there (PyTorch runs a module's Python hooks in the thread that
called the module). A wrapper that runs a forward in threads of its own
(``torch.nn.DataParallel``'s replicas) would therefore not see these hooks; the
package uses none.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable


def this_thread_only(hook: Callable[..., Any]) -> Callable[..., Any]:
    """``hook``, acting only in the calling thread; in any other thread it returns None (changes nothing)."""
    owner = threading.get_ident()

    @functools.wraps(hook)
    def call(*args, **kwargs):
        if threading.get_ident() != owner:
            return None
        return hook(*args, **kwargs)

    return call
