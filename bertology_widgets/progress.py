"""Progress bars for long work: tqdm in a terminal, silent when disabled."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """``tqdm`` over ``iterable`` (a no-op wrapper when ``enabled`` is False)."""
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)
