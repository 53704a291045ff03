"""The GLUE files shipped inside the package: SST-2 train and dev only.

SST-2 is the default task of the dashboard and of the default model, so it
must load with no GLUE folder and no network. Its GLUE TSV files lie,
xz-compressed and byte-identical once decompressed, in
``bertology_widgets/data/sst2/`` (see the README there for provenance,
licence and SHA-256 digests). No other task is embedded.
"""

from __future__ import annotations

from pathlib import Path

from .tasks import GlueTask

#: Folder of the embedded files (package data).
EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "data" / "sst2"

#: ``(task name, canonical split) -> file name`` inside :data:`EMBEDDED_DIR`.
EMBEDDED_FILES = {
    ("sst2", "train"): "train.tsv.xz",
    ("sst2", "validation"): "dev.tsv.xz",
}


def embedded_file(task: GlueTask, split: str) -> Path | None:
    """The embedded file of ``split`` of ``task``, or None when the package ships none.

    Parameters
    ----------
    task : GlueTask
        The task.
    split : str
        Canonical split name (``"train"``, ``"validation"``).
    """
    name = EMBEDDED_FILES.get((task.name, split))
    if name is None:
        return None
    path = EMBEDDED_DIR / name
    return path if path.is_file() else None
