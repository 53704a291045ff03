"""Give memory that Python and torch have freed back to the operating system.

glibc's allocator keeps freed blocks for reuse: after a score replaces the
layer caches, or an analysis drops its private model copy, a kernel can hold
hundreds of MB it no longer uses (measured: 765 -> 564 MiB USS on the
default model after a layer-0 toggle). With 30 kernels on one server that
is most of the difference between fitting and swapping. ``malloc_trim(0)``
returns those pages; it takes a few milliseconds, so it runs at most
``MIN_INTERVAL_S`` apart. Elsewhere (macOS, musl, Windows) it does nothing.

:func:`cap_onednn_caches` bounds the caches of oneDNN, which runs torch's
bf16 matmuls on the CPU. It keeps a compiled primitive per matmul shape (up
to 1024), and every batch length gives new shapes: after one scoring of
SST-2 dev in bf16 those caches held about 45 MiB per kernel. Sixteen entries
cover the shapes of one batch (a layer's matmuls share them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
import time

MIN_INTERVAL_S = 0.5
# oneDNN's primitive cache, and ideep's (torch's oneDNN wrapper) cache of computations
ONEDNN_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
ONEDNN_CACHE_ENTRIES = 16
_last = [0.0]
_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory(force: bool = False) -> bool:
    """Return freed heap pages to the OS (glibc only); True if it ran."""
    trim = _malloc_trim()
    if trim is None:
        return False
    with _lock:
        now = time.monotonic()
        if not force and now - _last[0] < MIN_INTERVAL_S:
            return False
        _last[0] = now
    trim(0)
    return True


def cap_onednn_caches(entries: int = ONEDNN_CACHE_ENTRIES) -> dict:
    """Set oneDNN's cache capacities to ``entries`` where the user has not set them; returns what was set.

    oneDNN and ideep read these variables once, when they first build a
    primitive, so this takes effect only in a process that has not run a
    oneDNN operation yet (``import bertology_widgets`` calls it). Set either
    variable yourself to choose another size (1024 is oneDNN's default).
    """
    chosen = {}
    for name in ONEDNN_CACHE_VARIABLES:
        if name not in os.environ:
            os.environ[name] = chosen[name] = str(entries)
    return chosen
