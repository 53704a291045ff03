"""What every view shares: a session, links and observers that never raise, teardown.

A view is a thin :class:`ipywidgets.VBox` over a :class:`ModelSession`. It links
its controls to session traits with :func:`traitlets.link` / ``dlink`` and
redraws from ``observe``. Callbacks run inside the kernel's comm handler (or
the scorer's worker thread), where a traceback helps nobody: every link,
observer and button callback made through this base reports its exception in
``session.error`` (shown by :class:`ScoreReadout`) instead of raising.
"""

from __future__ import annotations

import contextlib
import functools
import html

import ipywidgets as w
import traitlets


def describe(exc: BaseException) -> str:
    """One line for the user: ``"TraitError: layer 7 does not exist; ..."``."""
    return f"{type(exc).__name__}: {exc}"


def _reported(update):
    """A link's update method that hands its exception to ``self._report`` instead of raising."""

    @functools.wraps(update)
    def call(self, change):
        try:
            update(self, change)
        except Exception as exc:
            self._report(exc)
            self._refused(change)

    return call


class _GuardedLink(traitlets.link):
    """A two-way link that reports a failed update; a value the session refuses is taken back."""

    def __init__(self, source, target, report, transform=None):
        self._report = report
        super().__init__(source, target, transform=transform)

    _update_target = _reported(traitlets.link._update_target)
    _update_source = _reported(traitlets.link._update_source)

    def _refused(self, change):
        if change.owner is self.target[0]:  # the widget's value did not take: show the session's
            with self._busy_updating(), contextlib.suppress(Exception):
                setattr(self.target[0], self.target[1], self._transform(getattr(*self.source)))


class _GuardedDlink(traitlets.dlink):
    """A one-way link that reports a failed update."""

    def __init__(self, source, target, report, transform=None):
        self._report = report
        super().__init__(source, target, transform=transform)

    _update = _reported(traitlets.dlink._update)

    def _refused(self, change):
        pass


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
        self.session = session
        self._links = []
        self._observers = []
        self._active = True
        self._deferred = {}  # redraws skipped while inactive, in order

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
        """``traitlets.link(source, target)`` that reports instead of raising."""
        link = _GuardedLink(source, target, self._report, transform)
        self._links.append(link)
        return link

    def _dlink(self, source, target, transform=None):
        """``traitlets.dlink(source, target)`` that reports instead of raising."""
        link = _GuardedDlink(source, target, self._report, transform)
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


def message_box(view: SessionView, trait: str, colour: str, background: str) -> w.HTML:
    """An ``HTML`` box that shows ``session.<trait>`` in a coloured frame, hidden while empty."""
    box = w.HTML()
    box.add_class(f"bw-{trait}")
    view._dlink((view.session, trait), (box, "value"),
                lambda text: error_html(text, colour, background) if text else "")
    view._dlink((view.session, trait), (box.layout, "display"), lambda text: None if text else "none")
    return box
