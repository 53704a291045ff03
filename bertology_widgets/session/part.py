"""What the parts of a session share: each owns its traits, writes them together, and the facade mirrors them.

A part is a small :class:`traitlets.HasTraits`, as a bqplot ``Mark`` is: it
declares the traits it computes and assigns them through :meth:`SessionPart.publish`,
on the owner thread only. :class:`~.session.ModelSession` (the facade) declares a
mirror of each (:func:`mirror`: the same trait type, so the same validation and
help) and keeps the pair equal both ways (:class:`Forwarding`), so views and
notebooks keep reading, assigning and observing ``session.score`` while the part
is built and tested without a session.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, ContextManager, Iterable

from traitlets import HasTraits, TraitType

Hold = Callable[[], ContextManager]


class SessionPart(HasTraits):
    """A part of a session: a ``HasTraits`` that owns the traits it computes.

    Parameters
    ----------
    hold : callable, optional
        ``hold()`` -> a context manager held around each :meth:`publish` (the facade's
        ``hold_trait_notifications``), so that the facade's observers, too, run once the
        last of the traits published together has changed.
    """

    def __init__(self, hold: Hold | None = None, **kwargs):
        super().__init__(**kwargs)
        self._hold: Hold = hold or contextlib.nullcontext

    def publish(self, **values) -> None:
        """Assign several of this part's traits, observers running after the last (owner thread only)."""
        with self._hold(), self.hold_trait_notifications():
            for name, value in values.items():
                setattr(self, name, value)


def mirror(part: type[HasTraits], name: str) -> TraitType:
    """A copy of ``part``'s trait ``name`` for the facade: the same type, validation, default and help."""
    trait = copy.copy(part.class_traits()[name])
    trait.metadata = dict(trait.metadata)
    return trait


def part_traits(part: type[HasTraits]) -> list[str]:
    """The names of the traits ``part`` declares (``SessionPart``'s own: none)."""
    return sorted(set(part.class_traits()) - set(HasTraits.class_traits()))


class Forwarding:
    """Keeps the facade's mirrors of ``names`` equal to ``part``'s traits, both ways.

    The part's value wins at the start. A change on either side is copied to the
    other; where the part's own validation changes a value, the facade takes the
    part's value, and where it refuses one, the facade goes back to the part's.
    """

    def __init__(self, part: HasTraits, facade: HasTraits, names: Iterable[str]):
        self.part, self.facade, self.names = part, facade, list(names)
        self._updating: set[str] = set()  # the names being copied now (the copy's echo is not copied back)
        for name in self.names:
            facade.set_trait(name, getattr(part, name))
        part.observe(self._from_part, names=self.names)
        facade.observe(self._from_facade, names=self.names)

    @contextlib.contextmanager
    def _copying(self, name: str):
        self._updating.add(name)
        try:
            yield
        finally:
            self._updating.discard(name)

    def _from_part(self, change) -> None:
        name = change["name"]
        if name not in self._updating:
            with self._copying(name):
                self.facade.set_trait(name, change["new"])

    def _from_facade(self, change) -> None:
        name, new = change["name"], change["new"]
        if name in self._updating or getattr(self.part, name) is new:
            return
        with self._copying(name):
            try:
                setattr(self.part, name, new)
            finally:
                value = getattr(self.part, name)
                if value is not new:  # the part changed or refused the value: the facade shows what it holds
                    self.facade.set_trait(name, value)

    def unlink(self) -> None:
        self.part.unobserve(self._from_part, names=self.names)
        self.facade.unobserve(self._from_facade, names=self.names)


class delegate:
    """A facade method that is a part's: ``compute_roles = delegate(HeadAnalyses.compute_roles, "heads")`` makes
    ``session.compute_roles`` the bound method of ``session.heads`` (same name, same docstring)."""

    def __init__(self, function: Callable, part: str):
        self.function, self.part = function, part
        self.__doc__ = function.__doc__

    def __get__(self, obj, objtype=None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.function.__name__)
