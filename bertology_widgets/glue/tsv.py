"""Read a GLUE task's TSV file in its real column layout.

GLUE files are tab-separated with *no* quoting: texts contain unbalanced
``"`` characters that a default CSV reader would treat as the start of a
quoted field (and then swallow the following lines). Every file is read with
``csv.QUOTE_NONE`` and the ``utf-8-sig`` encoding (MRPC starts with a
byte-order mark). Texts are kept exactly as written, trailing spaces included.
A file whose name ends in ``.xz`` (the embedded SST-2) is decompressed on the fly.
"""

from __future__ import annotations

import csv
import lzma
import math
from dataclasses import dataclass
from pathlib import Path

from .examples import Example
from .tasks import ColumnSpec, GlueTask


class BadRowError(ValueError):
    """A row that does not fit the task's layout; the message names file and line."""


@dataclass(frozen=True)
class _Columns:
    """Resolved 0-based positions of the columns to read, and the row width."""

    text: tuple[int, ...]
    label: int | None
    width: int


def parse_label(task: GlueTask, token: str) -> int | float:
    """Turn a label cell into a class id (or a float score for STS-B).

    A class may be written as its name (``"entailment"``) or its id
    (``"0"``); ids must lie in ``range(task.num_labels)``.

    Raises
    ------
    ValueError
        For an unknown class or a score that is not a finite number.
    """
    token = token.strip()
    if task.is_regression:
        try:
            score = float(token)
        except ValueError:
            raise ValueError(f"score {token!r} is not a number") from None
        if not math.isfinite(score):
            raise ValueError(f"score {token!r} is not a finite number")
        return score
    if token in task.label_names:
        return task.label_names.index(token)
    if token.lstrip("-").isdigit() and 0 <= int(token) < task.num_labels:
        return int(token)
    valid = ", ".join(f"{i} ({name})" for i, name in enumerate(task.label_names))
    raise ValueError(f"unknown {task.display_name} label {token!r}; expected one of {valid}")


def _position(spec: ColumnSpec, header: list[str] | None, width: int) -> int:
    if isinstance(spec, str):
        if header is None or spec not in header:
            found = ", ".join(repr(name) for name in header or [])
            raise ValueError(f"header has no column {spec!r} (found: {found})")
        return header.index(spec)
    if not -width <= spec < width:
        raise ValueError(f"expected a column {spec}, but rows have {width} columns")
    return spec % width


def _resolve_columns(task: GlueTask, labelled: bool, header: list[str] | None) -> _Columns:
    if header is not None:
        width = len(header)
        text_specs = task.text_columns if labelled else task.test_text_columns or task.text_columns
    else:
        width = task.num_columns or 0
        text_specs = task.text_columns
    text = tuple(_position(spec, header, width) for spec in text_specs)
    label = _position(task.label_column, header, width) if labelled else None
    return _Columns(text=text, label=label, width=width)


def _example(row: list[str], columns: _Columns, task: GlueTask, idx: int, source: str) -> Example:
    if len(row) != columns.width:
        raise ValueError(f"expected {columns.width} tab-separated columns, found {len(row)}")
    texts = [row[i] for i in columns.text]
    label = parse_label(task, row[columns.label]) if columns.label is not None else None
    return Example(
        text_a=texts[0],
        text_b=texts[1] if len(texts) > 1 else None,
        label=label,
        idx=idx,
        source=source,
    )


def read_glue_tsv(
    path: str | Path,
    task: GlueTask,
    split: str,
    *,
    max_examples: int | None = None,
    skip_bad_rows: bool = False,
    location: str | None = None,
) -> list[Example]:
    """Read the examples of one GLUE file.

    Parameters
    ----------
    path : str or Path
        The TSV file, e.g. ``<glue_dir>/SST-2/dev.tsv``; an ``.xz`` file is
        decompressed while read.
    task : GlueTask
        Its task, which fixes the column layout.
    split : str
        Its split; test splits are read without labels (``label=None``).
    max_examples : int, optional
        Stop after this many examples.
    skip_bad_rows : bool
        Skip rows that do not fit the layout instead of raising.
    location : str, optional
        How example sources name the file (default ``"<folder>/<file>"``,
        e.g. ``"SST-2/dev.tsv"``).

    Returns
    -------
    list of Example
        In file order; ``idx`` counts from 0 and ``source`` gives
        ``"<folder>/<file>:<line>"``. Empty lines are ignored.

    Raises
    ------
    BadRowError
        (a ``ValueError``) for a header or row that does not fit the layout,
        naming the file and the 1-based line, e.g.
        ``".../SST-2/dev.tsv line 14: expected 2 tab-separated columns, found 1"``.
    """
    path = Path(path)
    labelled = task.is_labelled(split)
    has_header = task.has_header or not labelled
    location = location or f"{path.parent.name}/{path.name}"
    try:
        return _read_rows(path, task, labelled, has_header, location, max_examples, skip_bad_rows)
    except UnicodeDecodeError as exc:
        raise BadRowError(f"{path} is not UTF-8 text (it holds the byte {exc.object[exc.start]:#04x}); "
                          f"save it as UTF-8, e.g. with iconv -t utf-8") from None


def _read_rows(path, task, labelled, has_header, location, max_examples, skip_bad_rows) -> list[Example]:
    examples: list[Example] = []
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) if has_header else None
        if has_header and header is None:
            raise BadRowError(f"{path} line 1: the file is empty; expected a header row")
        try:
            columns = _resolve_columns(task, labelled, header)
        except ValueError as exc:
            raise BadRowError(f"{path} line 1: {exc}") from None
        for row in reader:
            if max_examples is not None and len(examples) >= max_examples:
                break
            if not row:
                continue
            line = reader.line_num
            try:
                examples.append(_example(row, columns, task, len(examples), f"{location}:{line}"))
            except ValueError as exc:
                if not skip_bad_rows:
                    raise BadRowError(f"{path} line {line}: {exc}") from None
    return examples
