"""Typed array traits of the session: numpy arrays whose shape and dtype are checked on assignment.

As bqplot does (``bqplot/traits.py``), validation is factored into small
validators over :class:`traittypes.Array`; each raises a ``TraitError`` that
names the trait, the expected axes and the shape it got.

``array_trait("layers", "heads", kinds="f", help="...")`` declares a
``(layers, heads)`` float array (``None`` until first set); its ``help``
ends with the shape, so ``session.traits()["importance"].help`` says it.
"""

from __future__ import annotations

import numpy as np
from traitlets import TraitError, TraitType
from traittypes import Array

from ..core.gating import as_head_mask

KIND_NAMES = {"f": "float", "i": "int", "u": "unsigned int", "b": "bool", "U": "str", "O": "object"}


def array_axes(*axes: str):
    """Validator: the array has ``len(axes)`` dimensions (``axes`` name them, for the message)."""
    def validator(trait, value):
        if value.ndim != len(axes):
            raise TraitError(f"{trait.name} must be an array of shape ({', '.join(axes)}); "
                             f"got shape {tuple(value.shape)}")
        return value
    return validator


def array_kinds(kinds: str):
    """Validator: the array's dtype kind is one of ``kinds`` (numpy's codes: ``"f"`` float, ``"i"`` int ...)."""
    def validator(trait, value):
        if value.dtype.kind not in kinds:
            names = " or ".join(KIND_NAMES.get(k, k) for k in kinds)
            raise TraitError(f"{trait.name} must hold {names} values; got dtype {value.dtype}")
        return value
    return validator


def describe_shape(axes, kinds: str) -> str:
    names = " or ".join(KIND_NAMES.get(k, k) for k in kinds)
    return f"np.ndarray of shape ({', '.join(axes)}), {names}, or None"


def array_trait(*axes: str, kinds: str = "f", help: str = "", **kwargs) -> Array:
    """A numpy array trait of shape ``axes`` and dtype kind in ``kinds``; ``None`` until set.

    ``help`` describes the value; the shape is appended to it.
    """
    text = f"{help} ({describe_shape(axes, kinds)})" if help else describe_shape(axes, kinds)
    return Array(None, allow_none=True, help=text, **kwargs).valid(array_axes(*axes), array_kinds(kinds))


class HeadMaskTrait(TraitType):
    """A head mask: anything :func:`~bertology_widgets.core.gating.as_head_mask` takes, stored as a
    read-only float32 ``np.ndarray`` of shape ``(layers, heads)`` (the owner's ``num_layers``, ``num_heads``).

    A wrong shape raises a ``TraitError`` that says the model's shape.
    """

    info_text = "a (layers, heads) head mask"

    def __init__(self, **kwargs):
        kwargs.setdefault("help", "1 keeps a head, 0 masks it (np.ndarray of shape (layers, heads), float32, "
                                  "read-only; assign a new array, tensor or nested list to change it)")
        super().__init__(None, allow_none=True, **kwargs)

    def validate(self, obj, value):
        if value is None:
            self.error(obj, value)
        return head_mask_array(value, obj.num_layers, obj.num_heads)


def head_mask_array(value, layers: int, heads: int) -> np.ndarray:
    """``value`` (array, tensor or nested list) as a frozen float32 ``(layers, heads)`` array, or TraitError."""
    try:
        gates = as_head_mask(value, layers, heads)
    except ValueError as exc:
        raise TraitError(str(exc)) from None
    return frozen(gates.detach().cpu().numpy())


def frozen(array) -> np.ndarray:
    """A read-only float32 copy of ``array``."""
    array = np.array(array, dtype=np.float32, copy=True)
    array.flags.writeable = False
    return array
