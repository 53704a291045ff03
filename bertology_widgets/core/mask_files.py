"""Head masks to and from files: ``.npy`` (a float32 array, as ``run_bertology.py``'s
``head_mask.npy``) or ``.json`` (``{"mask": [[...], ...]}`` or a bare nested list).

Used by the command line (``--mask``) and the dashboard's export buttons.
Pictures are exported by bqplot in the browser instead (``Figure.save_png`` /
``save_svg``, see :meth:`AttentionGrid.save_png`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .gating import HeadMaskLike
from ..runtime.files import PathLike, atomic_save_npy, atomic_write_text

MASK_SUFFIXES = (".npy", ".json")


def _suffix(path: PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MASK_SUFFIXES:
        raise ValueError(f"{path}: a mask file ends in .npy or .json, not {suffix or 'nothing'!r}")
    return suffix


def save_mask(mask: HeadMaskLike, path: PathLike) -> Path:
    """Write ``mask`` (shape ``(layers, heads)``; 1 keeps a head, 0 masks it) to ``path``."""
    path = Path(path)
    suffix = _suffix(path)
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise ValueError(f"a head mask has shape (layers, heads), not {mask.shape}")
    if suffix == ".json":
        atomic_write_text(path, json.dumps({"mask": mask.tolist()}))
    else:
        atomic_save_npy(path, mask)
    return path


def load_mask(path: PathLike) -> np.ndarray:
    """Read a mask written by :func:`save_mask`; shape ``(layers, heads)``, float32."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mask file at {path}; `bertology mask` writes one (head_mask.npy), and the "
                                f"dashboard's export buttons too")
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc})") from None
        if isinstance(data, dict) and "mask" in data:
            data = data["mask"]
        if not isinstance(data, list):
            raise ValueError(f'{path} holds no {{"mask": [[...]]}} object or nested list')
        try:
            mask = np.asarray(data, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{path} must hold a (layers, heads) grid of numbers, every row as long, "
                             f"1 keep / 0 mask, such as [[1, 0], [1, 1]]") from None
    else:
        try:
            mask = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the mask file {path}: {exc}") from None
    if mask.ndim != 2:
        raise ValueError(f"{path} holds an array of shape {mask.shape}; a head mask has shape (layers, heads)")
    return mask
