"""The GLUE tasks: label order, metrics, file layout and split names.

One :class:`GlueTask` per GLUE task, keyed by its canonical lower-case name
in :data:`GLUE_TASKS`. Class ids follow the label order of the Hugging Face
``datasets`` GLUE configs (``nyu-mll/glue``), so a model fine-tuned on either
source reads the same ids.

Split names are those of ``nyu-mll/glue``: ``"train"``, ``"validation"``,
``"test"``; MNLI has ``"validation_matched"``, ``"validation_mismatched"``,
``"test_matched"`` and ``"test_mismatched"`` instead of the last two, and
``"validation"`` / ``"test"`` mean the matched sets. ``"dev"`` is accepted for
``"validation"`` (and ``"dev_matched"`` for ``"validation_matched"``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Column of a TSV file: a 0-based index (negative counts from the end) or a header name.
ColumnSpec = int | str

_STANDARD_SPLITS = (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv"))
_MNLI_SPLITS = (
    ("train", "train.tsv"),
    ("validation_matched", "dev_matched.tsv"),
    ("validation_mismatched", "dev_mismatched.tsv"),
    ("test_matched", "test_matched.tsv"),
    ("test_mismatched", "test_mismatched.tsv"),
)


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: what its files look like and how it is scored.

    Attributes
    ----------
    name : str
        Canonical key, e.g. ``"sst2"``; also the ``nyu-mll/glue`` config name.
    display_name : str
        Name for people, e.g. ``"SST-2"``.
    folder : str
        Folder of the task in the standard GLUE layout, e.g. ``"SST-2"``.
    text_columns : tuple of (int or str)
        Columns of the train/dev TSV files holding the text(s): header names,
        or 0-based indices for files without a header.
    label_column : int or str
        Column of the train/dev TSV files holding the label (``-1``: last).
    label_names : tuple of str
        Class names in class-id order; empty for regression.
    metrics : tuple of str
        Metric names reported by :func:`~bertology_widgets.glue.compute_metrics`;
        the first is the primary metric.
    split_files : tuple of (str, str)
        ``(split, file name)`` pairs, in the order train, validation(s), test(s).
    hub_text_columns : tuple of str
        Text columns of the ``nyu-mll/glue`` config.
    has_header : bool
        Whether the train/dev TSV files start with a header row.
    num_columns : int or None
        Columns per row of header-less files (with a header, the header decides).
    test_text_columns : tuple of str or None
        Text columns of the test file when they differ from ``text_columns``
        (CoLA: its test file has a header, its train/dev files do not).
    is_regression : bool
        True for STS-B (a similarity score, not a class).
    """

    name: str
    display_name: str
    folder: str
    text_columns: tuple[ColumnSpec, ...]
    label_column: ColumnSpec
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    split_files: tuple[tuple[str, str], ...]
    hub_text_columns: tuple[str, ...]
    has_header: bool = True
    num_columns: int | None = None
    test_text_columns: tuple[str, ...] | None = None
    is_regression: bool = False

    @property
    def primary_metric(self) -> str:
        """The metric to rank by (the first of :attr:`metrics`)."""
        return self.metrics[0]

    @property
    def num_labels(self) -> int:
        """Output size of a model head for this task: 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        """Whether each example is a pair of texts."""
        return len(self.text_columns) == 2

    @property
    def splits(self) -> tuple[str, ...]:
        """Canonical split names of this task."""
        return tuple(split for split, _ in self.split_files)

    def file_for(self, split: str) -> str:
        """File name (``"dev.tsv"``, ...) of ``split``; aliases as in :meth:`resolve_split`."""
        return dict(self.split_files)[self.resolve_split(split)]

    def resolve_split(self, split: str, *, mismatched: bool = False) -> str:
        """Canonical name of ``split`` for this task.

        Parameters
        ----------
        split : str
            A split name, its ``dev`` spelling or its file stem
            (``"dev_mismatched"``); case and ``-`` versus ``_`` do not matter.
        mismatched : bool
            For MNLI, make ``"validation"`` / ``"test"`` mean the mismatched
            sets (as when the task was named ``"mnli-mm"``).

        Raises
        ------
        ValueError
            When the task has no such split; the message lists the splits.
        """
        key = str(split).strip().lower().replace("-", "_")
        key = re.sub(r"^dev(?=$|_)", "validation", key)
        if key in self.splits:
            return key
        suffixed = f"{key}_{'mismatched' if mismatched else 'matched'}"
        if suffixed in self.splits:
            return suffixed
        raise ValueError(
            f"GLUE task {self.display_name!r} has no split {split!r}; "
            f"valid splits: {', '.join(self.splits)}"
        )

    def is_labelled(self, split: str) -> bool:
        """Whether ``split`` has gold labels (GLUE test files do not)."""
        return not self.resolve_split(split).startswith("test")


def _task(**fields) -> GlueTask:
    fields.setdefault("split_files", _STANDARD_SPLITS)
    return GlueTask(**fields)


_PAIR = ("sentence1", "sentence2")

GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        _task(
            name="cola", display_name="CoLA", folder="CoLA",
            text_columns=(3,), label_column=1, has_header=False, num_columns=4,
            test_text_columns=("sentence",),
            label_names=("unacceptable", "acceptable"),
            metrics=("matthews_correlation",), hub_text_columns=("sentence",),
        ),
        _task(
            name="sst2", display_name="SST-2", folder="SST-2",
            text_columns=("sentence",), label_column="label",
            label_names=("negative", "positive"),
            metrics=("accuracy",), hub_text_columns=("sentence",),
        ),
        _task(
            name="mrpc", display_name="MRPC", folder="MRPC",
            text_columns=("#1 String", "#2 String"), label_column="Quality",
            label_names=("not_equivalent", "equivalent"),
            metrics=("f1", "accuracy"), hub_text_columns=_PAIR,
        ),
        _task(
            name="qqp", display_name="QQP", folder="QQP",
            text_columns=("question1", "question2"), label_column="is_duplicate",
            label_names=("not_duplicate", "duplicate"),
            metrics=("f1", "accuracy"), hub_text_columns=("question1", "question2"),
        ),
        _task(
            name="stsb", display_name="STS-B", folder="STS-B",
            text_columns=_PAIR, label_column=-1, label_names=(), is_regression=True,
            metrics=("pearson", "spearmanr"), hub_text_columns=_PAIR,
        ),
        _task(
            name="mnli", display_name="MNLI", folder="MNLI",
            text_columns=_PAIR, label_column=-1, split_files=_MNLI_SPLITS,
            label_names=("entailment", "neutral", "contradiction"),
            metrics=("accuracy",), hub_text_columns=("premise", "hypothesis"),
        ),
        _task(
            name="qnli", display_name="QNLI", folder="QNLI",
            text_columns=("question", "sentence"), label_column="label",
            label_names=("entailment", "not_entailment"),
            metrics=("accuracy",), hub_text_columns=("question", "sentence"),
        ),
        _task(
            name="rte", display_name="RTE", folder="RTE",
            text_columns=_PAIR, label_column="label",
            label_names=("entailment", "not_entailment"),
            metrics=("accuracy",), hub_text_columns=_PAIR,
        ),
        _task(
            name="wnli", display_name="WNLI", folder="WNLI",
            text_columns=_PAIR, label_column="label",
            label_names=("not_entailment", "entailment"),
            metrics=("accuracy",), hub_text_columns=_PAIR,
        ),
    )
}

# Spellings beyond "name, display name or folder with punctuation dropped".
_MNLI_MATCHED_ALIASES = ("mnlim", "mnlimatched")
_MNLI_MISMATCHED_ALIASES = ("mnlimm", "mnlimismatched")


def _alias_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _lookup(name: str) -> tuple[GlueTask, bool]:
    """Task named ``name`` and whether the name asked for MNLI's mismatched sets."""
    key = _alias_key(str(name))
    if key in _MNLI_MATCHED_ALIASES or key in _MNLI_MISMATCHED_ALIASES:
        return GLUE_TASKS["mnli"], key in _MNLI_MISMATCHED_ALIASES
    for task in GLUE_TASKS.values():
        if key in {task.name, _alias_key(task.display_name), _alias_key(task.folder)}:
            return task, False
    raise ValueError(
        f"Unknown GLUE task {name!r}; valid tasks: {', '.join(GLUE_TASKS)} "
        "(also accepted: display names such as 'SST-2', and 'mnli-m' / 'mnli-mm')"
    )


def get_task(name: str | GlueTask) -> GlueTask:
    """The :class:`GlueTask` called ``name``.

    Parameters
    ----------
    name : str or GlueTask
        Canonical name (``"sst2"``), display or folder name (``"SST-2"``,
        ``"sts-b"``), or ``"mnli-m"`` / ``"mnli-mm"`` (both give MNLI); case,
        ``-`` and ``_`` do not matter. A :class:`GlueTask` is returned as is.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    """
    if isinstance(name, GlueTask):
        return name
    return _lookup(name)[0]


def resolve_task_split(task: str | GlueTask, split: str = "validation") -> tuple[GlueTask, str]:
    """The task and canonical split that ``(task, split)`` stand for.

    Like :func:`get_task` and :meth:`GlueTask.resolve_split`, except that a
    task named ``"mnli-mm"`` (or ``"mnli_mismatched"``) turns ``"validation"``
    into ``"validation_mismatched"`` and ``"test"`` into ``"test_mismatched"``.

    Examples
    --------
    >>> resolve_task_split("MNLI-MM", "dev")[1]
    'validation_mismatched'
    >>> resolve_task_split("sst-2", "dev")[1]
    'validation'
    """
    if isinstance(task, GlueTask):
        return task, task.resolve_split(split)
    spec, mismatched = _lookup(task)
    return spec, spec.resolve_split(split, mismatched=mismatched)
