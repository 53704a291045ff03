"""One progress convention for every long engine computation.

A function that takes a while has a ``progress`` argument (type
:data:`Progress`):

- ``True``: a tqdm bar (in a terminal or a notebook);
- ``False``: silent;
- a callable: ``progress(done, total)`` after every unit of work (batches,
  examples or steps, as the function's docstring says), e.g. to drive a
  session's progress trait. ``done / total`` is the fraction done.

:func:`progress_reporter` turns that argument into a :class:`ProgressReporter`.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar, Union

from tqdm.auto import tqdm

#: What a ``progress=`` argument may be: a bar (True), nothing (False) or a ``callback(done, total)``.
Progress = Union[bool, Callable[[int, int], None]]

T = TypeVar("T")


class ProgressReporter:
    """Where a computation reports how far it is: a bar, callbacks, both or neither.

    Use it as a context manager (the bar closes in ``__exit__``), call
    :meth:`update` after each unit of work, or wrap a loop in :meth:`iterate`.
    """

    def __init__(self, total: int, callbacks: list[Callable[[int, int], None]], bar: tqdm | None = None):
        self.total = int(total)
        self.done = 0
        self._callbacks = callbacks
        self._bar = bar

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        for callback in self._callbacks:
            callback(self.done, self.total)

    def update_to(self, done: int) -> None:
        """``done`` units are done in all (never goes back)."""
        self.update(max(0, int(done) - self.done))

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, reporting one unit done after each item's work (when the loop asks for the next)."""
        for item in items:
            yield item
            self.update(1)

    def set_postfix(self, **values: object) -> None:
        """Figures shown after the bar (e.g. the current loss); callbacks do not see them."""
        if self._bar is not None:
            self._bar.set_postfix(values)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shows_bar(progress: Progress | None) -> bool:
    """Whether ``progress`` asks for a bar (and so for the odd line of text around it), not a callback."""
    return bool(progress) and not callable(progress)


def progress_reporter(progress: Progress | None, total: int, *, desc: str | None = None, unit: str = "it",
                      show_bar: bool = True, on_progress: Callable[[int, int], None] | None = None
                      ) -> ProgressReporter:
    """Turn a ``progress=`` argument (see :data:`Progress`) into a :class:`ProgressReporter`.

    Parameters
    ----------
    progress : bool or callable
        True for a tqdm bar, False (or None) for none, a callable for ``progress(done, total)``.
    total : int
        Units of work in all.
    desc, unit : str
        The bar's label and unit.
    show_bar : bool
        False keeps the bar hidden even when asked for (e.g. on every process
        but the main one under ``accelerate launch``); callbacks still run.
    on_progress : callable, optional
        A second ``callback(done, total)``, for functions that keep an
        ``on_progress=`` keyword beside ``progress=``.
    """
    callbacks = [c for c in (progress, on_progress) if callable(c)]
    bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True) if shows_bar(progress) and show_bar else None
    return ProgressReporter(total, callbacks, bar)


__all__ = ["Progress", "ProgressReporter", "progress_reporter", "shows_bar"]
