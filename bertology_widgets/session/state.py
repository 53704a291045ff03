"""Save and load a session's state (mask, layer, head, example) as JSON.

Saving writes a temporary file in the same folder, flushes it to disk and
renames it over the target, so a crash mid-save never leaves a half-written
file; loading validates everything before anything in the session changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..runtime.files import atomic_write_text  # noqa: F401  (session.save_state writes through it)

FORMAT = "bertology-widgets-session"
VERSION = 1


def model_identity(session) -> dict:
    config = session.model.config
    return {
        "name_or_path": str(getattr(config, "_name_or_path", "") or ""),
        "model_type": str(config.model_type),
        "num_layers": int(session.num_layers),
        "num_heads": int(session.num_heads),
    }


def state_dict(session) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model_identity(session),
        "task": session.task,
        "mask": np.asarray(session.mask, dtype=np.float32).tolist(),
        "layer": int(session.layer),
        "head": int(session.head),
        "example_index": int(session.example_index),
        "text": session.text,
        "text_pair": session.text_pair,
    }


def read_state(path, session) -> dict:
    """Read and validate a state file against ``session``; raises ``ValueError`` naming the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable session file ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a bertology-widgets session file (no '\"format\": \"{FORMAT}\"')")
    if data.get("version") != VERSION:
        raise ValueError(f"{path} has session format version {data.get('version')!r}; this version reads {VERSION}")
    missing = [k for k in ("model", "task", "mask", "layer", "head", "example_index") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    ours, theirs = model_identity(session), data["model"]
    for key in ("model_type", "num_layers", "num_heads"):
        if theirs.get(key) != ours[key]:
            raise ValueError(
                f"{path} was saved from another model ({theirs.get('model_type')}, {theirs.get('num_layers')} layers x "
                f"{theirs.get('num_heads')} heads); this session has {ours['model_type']}, "
                f"{ours['num_layers']} layers x {ours['num_heads']} heads"
            )
    if data["task"] != session.task:
        raise ValueError(f"{path} was saved for task {data['task']!r}; this session scores {session.task!r}")
    return data
