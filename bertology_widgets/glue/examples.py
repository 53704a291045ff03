"""What the GLUE loaders return: :class:`Example` rows inside a :class:`GlueSplit`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Iterator, overload

from .tasks import GlueTask


@dataclass(frozen=True)
class Example:
    """One GLUE example.

    Attributes
    ----------
    text_a : str
        The (first) text, exactly as in the file: quotes and trailing spaces kept.
    text_b : str or None
        The second text of pair tasks; None for CoLA and SST-2.
    label : int, float or None
        Class id in the task's ``label_names`` order, the STS-B score as a
        float, or None for unlabelled (test) splits.
    idx : int
        0-based position of the example in its split.
    source : str
        Where it came from, e.g. ``"SST-2/dev.tsv:12"`` (file and 1-based line)
        or ``"nyu-mll/glue:sst2/validation[11]"``.
    """

    text_a: str
    text_b: str | None
    label: int | float | None
    idx: int
    source: str = ""


class ExampleRows(Sequence):
    """A read-only sequence over ``self.examples`` (a tuple of :class:`Example`), for the dataclasses that hold one."""

    examples: tuple[Example, ...]

    def __len__(self) -> int:
        return len(self.examples)

    @overload
    def __getitem__(self, index: int) -> Example: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Example, ...]: ...

    def __getitem__(self, index):
        return self.examples[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)


@dataclass(frozen=True)
class GlueSplit(ExampleRows):
    """The examples of one split of one task, with where they were read from.

    Behaves as a read-only sequence of :class:`Example` (``len``, indexing,
    iteration).

    Attributes
    ----------
    task : GlueTask
        The task.
    split : str
        Canonical split name (``"validation"``, ``"validation_mismatched"``, ...).
    examples : tuple of Example
        The examples, in file order.
    source : str
        The file path read, or the hub dataset id and config.
    origin : str
        Which kind of source: ``"folder"`` (a GLUE folder named by
        ``glue_dir=`` or ``BERTOLOGY_GLUE_DIR``), ``"embedded"`` (the copy
        shipped in the package) or ``"hub"``.
    """

    task: GlueTask
    split: str
    examples: tuple[Example, ...]
    source: str
    origin: str = "folder"

    @property
    def labels(self) -> list[int | float | None]:
        """The label of every example, in order."""
        return [example.label for example in self.examples]

    def describe(self) -> str:
        """Where the examples came from, in one line.

        E.g. ``"SST-2 dev: embedded copy (872 examples)"``,
        ``"RTE dev: /data/glue/RTE/dev.tsv (277 examples)"`` or
        ``"MNLI dev_mismatched: hub nyu-mll/glue:mnli (9832 examples)"``.
        """
        split = self.split.replace("validation", "dev")
        where = {"embedded": "embedded copy", "hub": f"hub {self.source}"}.get(self.origin, self.source)
        return f"{self.task.display_name} {split}: {where} ({len(self.examples)} examples)"

    def __repr__(self) -> str:
        return (
            f"GlueSplit(task={self.task.name!r}, split={self.split!r}, "
            f"examples={len(self.examples)}, source={self.source!r})"
        )
