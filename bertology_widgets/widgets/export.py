"""Head masks to and from files: ``.npy`` (a float32 array) or ``.json`` (``{"mask": [[...], ...]}``).

Pictures are exported by bqplot in the browser instead (``Figure.save_png`` /
``save_svg``, see :meth:`AttentionGrid.save_png`): they need a live front end
and land in the browser's downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..session.state import atomic_write_text

MASK_SUFFIXES = (".npy", ".json")


def _suffix(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MASK_SUFFIXES:
        raise ValueError(f"{path}: a mask file ends in .npy or .json, not {suffix or 'nothing'!r}")
    return suffix


def save_mask(mask, path) -> Path:
    """Write ``mask`` (shape ``(layers, heads)``; 1 keeps a head, 0 masks it) to ``path``."""
    path = Path(path)
    suffix = _suffix(path)
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise ValueError(f"a head mask has shape (layers, heads), not {mask.shape}")
    if suffix == ".json":
        atomic_write_text(path, json.dumps({"mask": mask.tolist()}))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, mask)
    return path


def load_mask(path) -> np.ndarray:
    """Read a mask written by :func:`save_mask`; shape ``(layers, heads)``, float32."""
    path = Path(path)
    if _suffix(path) == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "mask" not in data:
            raise ValueError(f'{path} holds no {{"mask": [[...]]}} object')
        mask = np.asarray(data["mask"], dtype=np.float32)
    else:
        mask = np.load(path, allow_pickle=False).astype(np.float32)
    if mask.ndim != 2:
        raise ValueError(f"{path} holds an array of shape {mask.shape}; a head mask has shape (layers, heads)")
    return mask
