"""The package's own warning class, at the bottom of the house so that every module can use it.

Every warning bertology-widgets issues is a :class:`BertologyWarning`, so a
user (or the test suite, see ``filterwarnings`` in ``pyproject.toml``) can
silence or escalate the package's warnings alone, apart from those of torch
and transformers.
"""

from __future__ import annotations


class BertologyWarning(UserWarning):
    """Base class of the warnings bertology-widgets issues."""


__all__ = ["BertologyWarning"]
