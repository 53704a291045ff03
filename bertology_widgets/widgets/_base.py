"""What every view shares: a session, links and observers that never raise, teardown.

A view is a thin :class:`ipywidgets.VBox` over a :class:`ModelSession`. It links
its controls to session traits (links that work as :func:`traitlets.link` /
``dlink`` do, built on ``observe`` alone) and redraws from ``observe``.
Callbacks run inside the kernel's comm handler (or the scorer's worker
thread), where a traceback helps nobody: every link, observer and button
callback made through this base reports its exception in ``session.error``
(shown by :class:`ScoreReadout`) instead of raising.
"""

from __future__ import annotations

import contextlib
import functools
import html
import os
from typing import Any, Callable

import ipywidgets as w
import traitlets

# How long showing a view under Voilà waits for the session to settle (see SessionView._repr_mimebundle_).
VOILA_SETTLE_S = 120.0


def served_by_voila() -> bool:
    """Whether this kernel runs a notebook for a Voilà page (Voilà sets ``VOILA_BASE_URL`` in its kernels)."""
    return "VOILA_BASE_URL" in os.environ


def describe(exc: BaseException) -> str:
    """One line for the user: ``"TraitError: layer 7 does not exist; ..."``."""
    return f"{type(exc).__name__}: {exc}"


def _identity(value):
    return value


class _GuardedLink:
    """Keeps ``target`` equal to ``transform(source)``, and (``both_ways``) ``source`` to ``target``.

    What :func:`traitlets.link` / :func:`traitlets.dlink` do, through the owners'
    public ``observe`` / ``unobserve`` only, except that a failed update is handed
    to ``report`` instead of raising, and a widget value the session refuses is
    taken back (the widget shows the session's value again). The first
    assignment, made here, raises as traitlets' does.

    ``source`` and ``target`` are ``(owner, trait name)`` pairs. ``transform`` is
    one callable (one way) or a ``(forward, backward)`` pair (both ways).
    """

    def __init__(self, source, target, report, transform=None, both_ways=True):
        self.source, self.target, self._report = source, target, report
        self._forward: Callable[[Any], Any]
        self._backward: Callable[[Any], Any] | None
        if both_ways:
            self._forward, self._backward = transform if transform is not None else (_identity, _identity)
        else:
            self._forward, self._backward = transform or _identity, None
        self._updating = False
        try:
            self._assign(self.target, self._forward(getattr(*self.source)))
        finally:
            source[0].observe(self._source_changed, names=source[1])
            if both_ways:
                target[0].observe(self._target_changed, names=target[1])

    def _assign(self, side, value) -> None:
        self._updating = True
        try:
            setattr(side[0], side[1], value)
        finally:
            self._updating = False

    def _source_changed(self, change) -> None:
        if self._updating:
            return
        try:
            self._assign(self.target, self._forward(change["new"]))
        except Exception as exc:
            self._report(exc)

    def _target_changed(self, change) -> None:
        if self._updating or self._backward is None:
            return
        try:
            self._assign(self.source, self._backward(change["new"]))
        except Exception as exc:
            self._report(exc)
            with contextlib.suppress(Exception):  # the widget's value did not take: show the session's
                self._assign(self.target, self._forward(getattr(*self.source)))

    def unlink(self) -> None:
        self.source[0].unobserve(self._source_changed, names=self.source[1])
        if self._backward is not None:
            self.target[0].unobserve(self._target_changed, names=self.target[1])


@contextlib.contextmanager
def held(*widgets):
    """``hold_sync`` on several widgets: their changes reach the browser as one message each."""
    with contextlib.ExitStack() as stack:
        for widget in widgets:
            stack.enter_context(widget.hold_sync())
        yield


class SessionView(w.VBox):
    """Private base of the views: holds ``session`` and the links and observers made on it.

    Subclasses build their widgets once in ``__init__`` and connect them with
    :meth:`_link`, :meth:`_dlink`, :meth:`_observe` and :meth:`_on_click`;
    :meth:`close` undoes all of them, so a closed view no longer follows the
    session. A view that nobody can see (a folded panel) is made inactive
    with :meth:`set_active`: its redraws wait, and run once when it opens.
    """

    def __new__(cls, session=None, *args, **kwargs):
        # Refused here, not in __init__: a half-built widget would fail again in its __del__.
        if session is not None and not (isinstance(session, traitlets.HasTraits) and session.has_trait("mask")):
            hint = f"ModelSession.from_pretrained(task={session!r})" if isinstance(session, str) else \
                "ModelSession.from_pretrained(task='sst2')"
            raise ValueError(f"{cls.__name__} shows a ModelSession, not {type(session).__name__} "
                             f"{session!r}; open one first: {cls.__name__}({hint})")
        return super().__new__(cls, session, *args, **kwargs)

    def __init__(self, session, **kwargs):
        super().__init__(**kwargs)
        self.add_class("bw-view")  # the shared style sheet (_style.CSS) applies to views
        self.session = session
        self._links = []
        self._observers = []
        self._active = True
        self._deferred = {}  # redraws skipped while inactive, in order

    def _repr_mimebundle_(self, **kwargs):
        """Shown under Voilà, the view first lets the session settle (the baseline, the shown input).

        Voilà sends a page once its notebook has run, and the page then builds
        every widget from the kernel's state. An update that reaches the page
        while it builds them is lost (ipywidgets' front end drops a message for
        a model it has not finished creating), so a readout could stay at
        "scoring the baseline…". Settled first, the page starts from the final
        state; it could not be seen earlier anyway. Elsewhere (JupyterLab,
        Notebook) the view is shown at once and the baseline follows.
        """
        if served_by_voila():
            self.session.wait(VOILA_SETTLE_S)
        return super()._repr_mimebundle_(**kwargs)

    def set_active(self, active: bool) -> None:
        """Inactive views compute and send nothing; activating one runs its skipped redraws once."""
        self._active = bool(active)
        if self._active:
            deferred, self._deferred = self._deferred, {}
            for handler in deferred:
                handler(None)

    # -- failure reporting -------------------------------------------------------------
    def _report(self, exc: BaseException) -> None:
        message = describe(exc)
        if self.session.error != message:
            self.session.error = message

    def _guarded(self, fn):
        """``fn`` wrapped so that an exception lands in ``session.error``."""

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                self._report(exc)
                return None

        return call

    # -- connections ----------------------------------------------------------------------
    def _link(self, source, target, transform=None):
        """Both ways, as ``traitlets.link(source, target)``, but reporting instead of raising."""
        link = _GuardedLink(source, target, self._report, transform, both_ways=True)
        self._links.append(link)
        return link

    def _dlink(self, source, target, transform=None):
        """One way, as ``traitlets.dlink(source, target)``, but reporting instead of raising."""
        link = _GuardedLink(source, target, self._report, transform, both_ways=False)
        self._links.append(link)
        return link

    def _observe(self, handler, names, owner=None, call_now=True):
        """Observe ``names`` of ``owner`` (default: the session); run ``handler(None)`` once now."""
        owner = self.session if owner is None else owner
        guarded = self._guarded(handler)
        if call_now:  # a redraw: skipped while the view is inactive
            redraw = guarded

            def guarded(change):
                if self._active:
                    redraw(change)
                else:
                    self._deferred[redraw] = None

            guarded = functools.wraps(redraw)(guarded)
        owner.observe(guarded, names=names)
        self._observers.append((owner, guarded, names))
        if call_now:
            guarded(None)
        return guarded

    def _on_click(self, button, fn):
        """Run ``fn()`` when ``button`` is clicked, reporting failures."""
        guarded = self._guarded(fn)
        button.on_click(lambda _button: guarded())
        return guarded

    def _message_box(self, trait: str, colour: str, background: str) -> w.HTML:
        """An ``HTML`` box that shows ``session.<trait>`` in a coloured frame, hidden while empty."""
        box = w.HTML()
        box.add_class(f"bw-{trait}")
        self._dlink((self.session, trait), (box, "value"),
                    lambda text: error_html(text, colour, background) if text else "")
        self._dlink((self.session, trait), (box.layout, "display"), lambda text: None if text else "none")
        return box

    def close(self):
        for link in self._links:
            link.unlink()
        for owner, handler, names in self._observers:
            owner.unobserve(handler, names=names)
        self._links, self._observers = [], []
        super().close()


def follow_analysis(view, name: str) -> None:
    """Set ``view.running`` and ``view.error`` from the session's analysis traits, for the analysis called ``name``.

    A view that starts one kind of analysis (the layer probe, the pipeline) shows only its own progress and errors.
    """
    session = view.session
    mine = session.analysis_status.startswith(name)
    running = bool(session.analysis_busy and mine)
    if view.running != running:
        view.running = running
    error = session.analysis_error if mine else ""
    if view.error != error:
        view.error = error


def error_html(text: str, colour: str, background: str) -> str:
    """``text`` in a coloured frame (HTML-escaped)."""
    style = (f"color:{colour};background:{background};border:1px solid {colour};"
             "border-radius:3px;padding:4px 8px;margin:2px 0;white-space:pre-wrap")
    return f'<div style="{style}">{html.escape(text)}</div>'
