"""The texts a language model is scored on.

By default, the embedded UD English-EWT test sentences: the ``# text =``
line of each sentence, in file order (2,077 sentences; see
:mod:`bertology_widgets.analyses.ud` for where the file comes from, CC BY-SA
4.0). ``max_examples`` takes the first N. A live session takes the first
:data:`LIVE_DEFAULT_TEXTS` unless told otherwise, so that a mask change is
re-scored while the user watches. ``text_file`` reads one text per line
(UTF-8; blank lines are skipped) instead.

The texts come as unlabelled :class:`~bertology_widgets.glue.Example` s (a
language model's targets are its own tokens) in a :class:`TextSet` that says
where they came from, as a GLUE split does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..glue import Example
from ..glue.examples import ExampleRows

#: How many EWT sentences a live session scores by default (all of them for the command line).
LIVE_DEFAULT_TEXTS = 32
EWT_TEXT_PREFIX = "# text ="


@dataclass(frozen=True)
class TextSet(ExampleRows):
    """Texts for a language model, in order, with where they were read from.

    Attributes
    ----------
    examples : tuple of Example
        ``text_a`` is the text; ``label`` is None; ``source`` is file and 1-based line.
    name : str
        ``"UD English-EWT test"`` or the file's name.
    source : str
        ``"embedded copy"``, or the path read.
    total : int
        Texts in the source before ``max_examples`` took the first N.
    """

    examples: tuple[Example, ...]
    name: str
    source: str
    total: int

    def describe(self) -> str:
        """One line, e.g. ``"UD English-EWT test: embedded copy (first 32 of 2077 texts)"``."""
        count = f"{len(self)} texts" if len(self) == self.total else f"first {len(self)} of {self.total} texts"
        return f"{self.name}: {self.source} ({count})"


def _texts(pairs: list[tuple[int, str]], where: str, max_examples: int | None) -> tuple[Example, ...]:
    if max_examples is not None and int(max_examples) < 1:
        raise ValueError(f"max_examples must be at least 1 (or None for every text), got {max_examples}")
    chosen = pairs if max_examples is None else pairs[: int(max_examples)]
    return tuple(Example(text_a=text, text_b=None, label=None, idx=i, source=f"{where}:{line}")
                 for i, (line, text) in enumerate(chosen))


def ewt_texts(max_examples: int | None = None, ud_dir: str | os.PathLike | None = None) -> TextSet:
    """The UD English-EWT test sentences' ``# text =`` lines, in file order (the first ``max_examples``)."""
    from .ud import _open_text, ud_file

    path = ud_file("test", ud_dir)
    pairs = [(number, line[len(EWT_TEXT_PREFIX):].strip())
             for number, line in enumerate(_open_text(path).splitlines(), start=1)
             if line.startswith(EWT_TEXT_PREFIX)]
    source = "embedded copy" if ud_dir is None and not os.environ.get("BERTOLOGY_UD_DIR") else str(path)
    return TextSet(_texts(pairs, path.name, max_examples), "UD English-EWT test", source, len(pairs))


def read_text_file(path: str | os.PathLike, max_examples: int | None = None) -> TextSet:
    """One text per line of the UTF-8 file ``path`` (blank lines skipped; the first ``max_examples``).

    Raises
    ------
    FileNotFoundError, PermissionError
        When the file cannot be opened (the message names it).
    ValueError
        When it is not UTF-8, or holds no text.
    """
    path = Path(path)
    hint = "give a UTF-8 file with one text per line"
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"the text file {path} does not exist; {hint}") from None
    except IsADirectoryError:
        raise FileNotFoundError(f"the text file {path} is a folder; {hint}") from None
    except PermissionError:
        raise PermissionError(f"the text file {path} cannot be read (permission denied); {hint}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"the text file {path} is not UTF-8 (byte {exc.start} cannot be decoded); {hint}") from None
    pairs = [(number, line.strip()) for number, line in enumerate(content.splitlines(), start=1) if line.strip()]
    if not pairs:
        raise ValueError(f"the text file {path} holds no text (it is empty or blank); {hint}")
    return TextSet(_texts(pairs, path.name, max_examples), path.name, str(path), len(pairs))


def load_lm_texts(text_file: str | os.PathLike | None = None, max_examples: int | None = None) -> TextSet:
    """``text_file``'s texts, else the EWT test sentences; the first ``max_examples`` of them."""
    if text_file is not None:
        return read_text_file(text_file, max_examples)
    return ewt_texts(max_examples)


__all__ = ["LIVE_DEFAULT_TEXTS", "TextSet", "ewt_texts", "load_lm_texts", "read_text_file"]
