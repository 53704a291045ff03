"""Load a GLUE split from a local GLUE folder or from the Hugging Face hub.

Where the data comes from, first match wins:

1. the ``glue_dir=`` argument (the CLI's ``--glue-dir``);
2. the ``BERTOLOGY_GLUE_DIR`` environment variable;
3. the copy embedded in the package, for SST-2 train and dev only
   (:mod:`.embedded`);
4. the hub dataset ``nyu-mll/glue`` through the optional ``datasets``
   package (``pip install bertology-widgets[hub]``, needs a network or a
   filled ``datasets`` cache).

A local folder has the standard GLUE layout, ``<glue_dir>/<TASK>/<file>``
(``SST-2/dev.tsv``, ``MNLI/dev_mismatched.tsv``, ...). A folder that is
named but lacks the file is an error, never a silent download.
"""

from __future__ import annotations

import os
from pathlib import Path

from .embedded import embedded_file
from .examples import Example, GlueSplit
from .hub import HUB_DATASET, load_from_hub
from .tasks import GlueTask, resolve_task_split
from .tsv import read_glue_tsv

__all__ = ["GLUE_DIR_ENV", "Example", "GlueSplit", "glue_file_path", "load_glue"]

#: Environment variable naming a GLUE folder, used when no ``glue_dir=`` is given.
GLUE_DIR_ENV = "BERTOLOGY_GLUE_DIR"

_HOW_TO_POINT = (
    "Point the tool at a GLUE folder with glue_dir=... (Python), --glue-dir (command line) "
    f"or the {GLUE_DIR_ENV} environment variable; or, when online, "
    "`pip install bertology-widgets[hub]` to download GLUE from the Hugging Face hub."
)


def configured_glue_dir(glue_dir: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The local GLUE folder to use and what named it.

    Returns
    -------
    (Path or None, str)
        The folder (None when neither ``glue_dir`` nor ``BERTOLOGY_GLUE_DIR``
        gives one; an empty variable counts as unset) and ``"glue_dir="`` or
        the variable's name.
    """
    if glue_dir is not None:
        return Path(glue_dir).expanduser(), "glue_dir= (--glue-dir on the command line)"
    from_env = os.environ.get(GLUE_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser(), GLUE_DIR_ENV
    return None, ""


def glue_file_path(task: str | GlueTask, split: str, glue_dir: str | os.PathLike) -> Path:
    """Path of ``split`` of ``task`` inside a GLUE folder, e.g. ``<glue_dir>/SST-2/dev.tsv``."""
    spec, canonical = resolve_task_split(task, split)
    return Path(glue_dir).expanduser() / spec.folder / spec.file_for(canonical)


def _missing_file_message(path: Path, origin: str) -> str:
    if path.parent.parent.exists() and not path.parent.parent.is_dir():
        why = f"{path.parent.parent} is a file, not a folder"
    elif not path.parent.parent.is_dir():
        why = f"the folder {path.parent.parent} does not exist"
    elif not path.parent.is_dir():
        why = f"{path.parent.parent} has no {path.parent.name} folder"
    else:
        why = f"{path.parent} has no {path.name}"
    return f"GLUE file not found: {path} ({why}; the folder came from {origin}). {_HOW_TO_POINT}"


def _check_max_examples(max_examples: int | None) -> None:
    valid = isinstance(max_examples, int) and not isinstance(max_examples, bool) and max_examples >= 1
    if max_examples is not None and not valid:
        raise ValueError(f"max_examples must be an integer of at least 1 (or None for every example), "
                         f"got {max_examples!r}")


def load_glue(
    task: str | GlueTask,
    split: str = "validation",
    glue_dir: str | os.PathLike | None = None,
    max_examples: int | None = None,
    *,
    skip_bad_rows: bool = False,
) -> GlueSplit:
    """Load one split of one GLUE task.

    Parameters
    ----------
    task : str or GlueTask
        Task name or alias (``"sst2"``, ``"SST-2"``, ``"mnli-mm"``, ...).
    split : str
        ``"train"``, ``"validation"`` (or ``"dev"``), ``"test"``; for MNLI
        also ``"validation_matched"``, ``"validation_mismatched"``,
        ``"test_matched"``, ``"test_mismatched"``. For MNLI ``"validation"``
        is the matched set, unless the task was named ``"mnli-mm"``.
    glue_dir : str or PathLike, optional
        GLUE folder; overrides ``BERTOLOGY_GLUE_DIR``.
    max_examples : int, optional
        Keep only the first this many examples.
    skip_bad_rows : bool
        Skip malformed rows of local files instead of raising.

    Returns
    -------
    GlueSplit
        A sequence of :class:`Example` with ``task``, canonical ``split``,
        ``source`` (the file read, or the hub dataset) and ``origin``
        (``"folder"``, ``"embedded"`` or ``"hub"``); ``describe()`` says so
        in one line.

    Raises
    ------
    FileNotFoundError
        When no data can be found; the message names the file looked for
        and how to point the tool at GLUE data.
    ValueError
        For an unknown task or split, or a malformed row (naming file and line).
    """
    spec, canonical = resolve_task_split(task, split)
    _check_max_examples(max_examples)
    folder, origin = configured_glue_dir(glue_dir)
    if folder is not None:
        path = glue_file_path(spec, canonical, folder)
        if not path.is_file():
            raise FileNotFoundError(_missing_file_message(path, origin))
        examples = read_glue_tsv(
            path, spec, canonical, max_examples=max_examples, skip_bad_rows=skip_bad_rows
        )
        if not examples:
            raise ValueError(f"{path} holds no examples (a header at most); give a GLUE file with rows")
        return GlueSplit(task=spec, split=canonical, examples=tuple(examples), source=str(path))
    embedded = embedded_file(spec, canonical)
    if embedded is not None:
        examples = read_glue_tsv(embedded, spec, canonical, max_examples=max_examples, skip_bad_rows=skip_bad_rows,
                                 location=f"{spec.folder}/{spec.file_for(canonical)}")
        return GlueSplit(task=spec, split=canonical, examples=tuple(examples), source=str(embedded),
                         origin="embedded")
    wanted = f"<glue_dir>/{spec.folder}/{spec.file_for(canonical)}"
    try:
        examples = load_from_hub(spec, canonical, max_examples=max_examples)
    except ModuleNotFoundError as exc:
        if exc.name != "datasets":
            raise
        raise FileNotFoundError(
            f"No GLUE data for {spec.display_name} {canonical}: looked for {wanted}, but no GLUE "
            f"folder is set (no glue_dir=, {GLUE_DIR_ENV} unset) and the optional `datasets` "
            f"package is not installed. {_HOW_TO_POINT}"
        ) from None
    except Exception as exc:  # network, cache or hub errors of the optional path
        raise FileNotFoundError(
            f"No GLUE data for {spec.display_name} {canonical}: no GLUE folder is set, and "
            f"loading {HUB_DATASET!r} config {spec.name!r} from the hub failed "
            f"({type(exc).__name__}: {exc}). {_HOW_TO_POINT} (a folder holding {wanted})"
        ) from exc
    source = f"{HUB_DATASET}:{spec.name}"
    return GlueSplit(task=spec, split=canonical, examples=tuple(examples), source=source, origin="hub")
