"""Writing files so that a crash never leaves a half-written one, and where the caches live.

The bottom of the house: every module that writes a file or a model folder
atomically (session state, mask files, fine-tune output, the cached default
and from-scratch models) uses these, and this module imports nothing from the
package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from io import BytesIO
from pathlib import Path

import numpy as np

#: A file or folder name: a ``str`` or a ``pathlib.Path`` (any ``os.PathLike``).
PathLike = str | os.PathLike
#: The manifest a cached model folder carries (its files' sizes and SHA-256, and how it was built).
MODEL_MANIFEST = "bertology_manifest.json"


def cache_root() -> Path:
    """The package's cache folder: ``$BERTOLOGY_CACHE_DIR``, else ``~/.cache/bertology_widgets``."""
    return Path(os.environ.get("BERTOLOGY_CACHE_DIR") or Path.home() / ".cache" / "bertology_widgets")


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` via a flushed temporary file in the same folder and an atomic rename.

    ``mode`` (e.g. ``0o644``) sets the permissions before the rename; the
    temporary file is otherwise private to its owner (``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: PathLike, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_save_npy(path: PathLike, array: np.ndarray) -> Path:
    """Save ``array`` in ``.npy`` format to ``path`` atomically (``path`` keeps its name, no suffix is added)."""
    buffer = BytesIO()
    np.save(buffer, np.asarray(array))
    return atomic_write_bytes(path, buffer.getvalue())


def replace_folder(staging: PathLike, folder: PathLike) -> Path:
    """Move the finished folder ``staging`` to ``folder``, removing what was there.

    ``staging`` should sit beside ``folder`` (same file system) so the move is
    one rename; until then readers see the old folder or none, never a half-built one.
    """
    staging, folder = Path(staging), Path(folder)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder


def output_folder(path: PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` (or ``args.out``) and prove it is writable, before any work is done.

    A probe file is written and removed, because permission bits do not tell:
    root writes into a ``chmod 555`` folder, nobody writes on a read-only mount.

    Raises
    ------
    ValueError
        Naming the path, what is wrong (a file in the way, no permission, a
        read-only file system) and what to do.
    """
    path = getattr(path, "out", path)  # the parsed options work too: output_folder(args)
    out = Path(path).expanduser()
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker == out:
        raise ValueError(f"{option} {path} is a file; name a folder (it is created if missing)")
    if blocker is not None:
        raise ValueError(f"{option} {path}: {blocker} is a file, so no folder can be made under it; "
                         f"name another folder")
    probe = out / f".bertology-write-check-{uuid.uuid4().hex}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{option} {path}: cannot write there ({reason}); name a folder you can write to") \
            from None
    return out
