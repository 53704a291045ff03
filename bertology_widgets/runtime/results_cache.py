"""Analysis results shared on disk between kernels (a class of students on one server).

Head importance, entropy, the masking curve (and any other analysis that
depends only on the model, the examples and the options) are stored as one
JSON file per result in ``$BERTOLOGY_RESULTS_DIR``, else
``$BERTOLOGY_CACHE_DIR/results``, else ``~/.cache/bertology_widgets/results``
(``BERTOLOGY_RESULTS_DIR=off`` turns the cache off).

* **Keyed by content**: a SHA-256 of the kind, a fingerprint of the model
  (weights digest, config, dtype), the examples and the options.
* **Computed once**: :func:`cached_result` takes a per-entry file lock
  (``filelock``) before computing, so 30 kernels starting at once compute
  each result once and the others read it.
* **Atomic**: a result is written to a temporary file and renamed over the
  entry, so a reader never sees half a file.
* **Never trusted blindly**: an entry that does not parse, or whose recorded
  kind and key differ from the ones asked for, is ignored and rebuilt.
  Entries are plain JSON (no pickle), so a shared folder cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .files import MODEL_MANIFEST, atomic_write_text, cache_root, file_sha256

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..glue import Example

FORMAT = "bertology-widgets-result"
VERSION = 1
OFF = ("off", "0", "none", "false")
_FILE_DIGESTS: dict = {}  # (path, size, mtime_ns) -> sha256, so a file is read once per process


def results_dir() -> Path | None:
    """The folder of shared results, or None when the cache is turned off."""
    explicit = os.environ.get("BERTOLOGY_RESULTS_DIR")
    if explicit is not None:
        return None if explicit.strip().lower() in OFF else Path(explicit)
    return cache_root() / "results"


# -- keys ------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = None
        try:  # the default model's manifest already holds the digest
            meta = json.loads((path.parent / MODEL_MANIFEST).read_text())["files"][path.name]
            if meta["size"] == stat.st_size:
                digest = meta["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        _FILE_DIGESTS[key] = digest or file_sha256(path)
    return _FILE_DIGESTS[key]


def weights_digest(model: PreTrainedModel) -> str:
    """SHA-256 of the model's weights: the safetensors file it was loaded from, else its tensors' bytes.

    The file digest is read once per process (or taken from the default
    model's manifest); hashing the tensors of MiniLM (90 MB) takes ~0.1 s.
    """
    import torch

    name = str(getattr(model.config, "_name_or_path", "") or "")
    weights = Path(name) / "model.safetensors"
    if name and weights.is_file():
        return "file:" + _sha256_file(weights)
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "tensors:" + h.hexdigest()


def model_fingerprint(model: PreTrainedModel) -> dict:
    """What a result depends on in the model: weights digest, config and dtype."""
    param = next(model.parameters())
    return {"weights": weights_digest(model), "config": model.config.to_json_string(use_diff=False),
            "dtype": str(param.dtype)}


def examples_digest(examples: Sequence[Example]) -> str:
    """SHA-256 of the examples' texts and labels, in order."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.text_a, ex.text_b, ex.label], default=str).encode())
    return h.hexdigest()


def result_key(kind: str, key_parts: Any) -> str:
    """Hex SHA-256 of ``kind`` and ``key_parts`` (anything :func:`encode` takes)."""
    blob = json.dumps({"kind": kind, "parts": encode(key_parts)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- values (JSON with arrays) --------------------------------------------------------------
def encode(value: Any) -> Any:
    """``value`` as JSON-ready data; arrays become ``{"__ndarray__": ..., "dtype": ..., "shape": ...}``."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.ravel().tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in the results cache")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (tuples come back as lists)."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# -- entries -------------------------------------------------------------------------------
def entry_path(kind: str, key: str, folder: Path) -> Path:
    return folder / f"{kind.replace(' ', '_')}-{key[:32]}.json"


def _read(path: Path, kind: str, key: str):
    """The stored value, or None when missing, unreadable or not this entry's (a foreign file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            return None
        if data.get("kind") != kind or data.get("key") != key:
            return None
        return decode(data["value"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write(path: Path, kind: str, key: str, value) -> None:
    text = json.dumps({"format": FORMAT, "version": VERSION, "kind": kind, "key": key, "value": encode(value)})
    atomic_write_text(path, text, mode=0o644)  # readable by every student's kernel


def lookup(kind: str, key_parts: Any) -> Any:
    """The cached value for ``(kind, key_parts)``, or None (no compute, no lock)."""
    folder = results_dir()
    if folder is None:
        return None
    key = result_key(kind, key_parts)
    return _read(entry_path(kind, key, folder), kind, key)


def cached_result(kind: str, key_parts: Any, compute: Callable[[], Any]) -> tuple[Any, bool]:
    """``(value, from_cache)``: the stored result, or ``compute()``'s, stored for the next kernel.

    ``compute()`` must return what :func:`encode` takes (arrays, dicts, lists,
    numbers, strings). While one process computes an entry, the others wait
    on its lock and then read it. When the folder cannot be written, the
    result is computed and returned without being stored.
    """
    folder = results_dir()
    if folder is None:
        return compute(), False
    key = result_key(kind, key_parts)
    path = entry_path(kind, key, folder)
    value = _read(path, kind, key)
    if value is not None:
        return value, True
    try:
        folder.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        lock = FileLock(str(path) + ".lock")
        lock.acquire()
    except OSError:  # a read-only shared folder: still answer
        return compute(), False
    try:
        value = _read(path, kind, key)  # another kernel may have finished it while we waited
        if value is not None:
            return value, True
        value = compute()
        try:
            _write(path, kind, key, value)
        except OSError:
            pass
        return decode(encode(value)), False
    finally:
        lock.release()
