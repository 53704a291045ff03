"""Universal Dependencies treebanks for the pipeline probes: CoNLL-U reading and probing tasks.

:func:`read_conllu` reads a CoNLL-U file (plain or ``.xz``) with the
``conllu`` package into :class:`UDSentence` s, keeping only the syntactic
words: multi-word-token lines (``1-2``) and empty nodes (``3.1``) are
skipped. A malformed line raises ``ValueError`` naming the file and line.

:func:`load_ud` finds the English-EWT files: ``ud_dir=``, else
``$BERTOLOGY_UD_DIR``, else the copy embedded in the package
(``bertology_widgets/data/ud``, CC BY-SA 4.0).

A probing task turns sentences into items ``(word indices, label)``: one
word for ``upos``, a (dependent, head) pair for ``deprel``. A new task is
one small function registered with :func:`register_task`.
"""

from __future__ import annotations

import lzma
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

UD_DIR_ENV = "BERTOLOGY_UD_DIR"
#: Folder of the embedded English-EWT dev and test files (package data, CC BY-SA 4.0).
EMBEDDED_UD_DIR = Path(__file__).resolve().parents[1] / "data" / "ud"
#: Split name -> file name stem in a UD English-EWT folder.
EWT_FILES = {"train": "en_ewt-ud-train.conllu", "dev": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}


@dataclass(frozen=True)
class UDSentence:
    """The syntactic words of one sentence and their annotation.

    Attributes
    ----------
    words : tuple of str
        Word forms, in order (multi-word tokens and empty nodes left out).
    upos : tuple of str
        Universal POS tag of each word.
    heads : tuple of int
        Index (0-based, into ``words``) of each word's head; -1 for the root.
    deprels : tuple of str
        Dependency relation of each word to its head, with its subtype (``nmod:poss``).
    sent_id : str
    """

    words: tuple
    upos: tuple
    heads: tuple
    deprels: tuple
    sent_id: str = ""

    def __len__(self) -> int:
        return len(self.words)


def _open_text(path: Path) -> str:
    if path.suffix == ".xz":
        with lzma.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


def _blocks(lines: Sequence[str]) -> Iterator[list[tuple[int, str]]]:
    """Sentences as lists of ``(line number, line)`` (1-based), split on blank lines."""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _sentence(block: list[tuple[int, str]], where: str) -> UDSentence | None:
    from conllu.exceptions import ParseException
    from conllu.parser import DEFAULT_FIELDS, parse_line

    sent_id = ""
    tokens = []
    for number, line in block:
        if line.startswith("#"):
            if line.startswith("# sent_id"):
                sent_id = line.split("=", 1)[-1].strip()
            continue
        if line.count("\t") != 9:
            raise ValueError(f"{where}, line {number}: expected 10 tab-separated CoNLL-U fields, "
                             f"got {line.count(chr(9)) + 1}: {line[:60]!r}")
        try:
            token = parse_line(line, DEFAULT_FIELDS)
        except ParseException as exc:
            raise ValueError(f"{where}, line {number}: {exc}") from None
        if not isinstance(token["id"], int):
            continue  # a multi-word token (1-2) or an empty node (3.1): not a syntactic word
        if not isinstance(token["head"], int):
            raise ValueError(f"{where}, line {number}: word {token['id']} has no head ({line.split(chr(9))[6]!r})")
        tokens.append((number, token))
    if not tokens:
        return None
    ids = [t["id"] for _, t in tokens]
    if ids != list(range(1, len(ids) + 1)):
        number = tokens[0][0]
        raise ValueError(f"{where}, line {number}: word ids {ids[:8]}... are not 1..{len(ids)} in order")
    for number, t in tokens:
        if not 0 <= t["head"] <= len(ids):
            raise ValueError(f"{where}, line {number}: head {t['head']} is not a word of this sentence")
    return UDSentence(
        words=tuple(t["form"] for _, t in tokens),
        upos=tuple(t["upos"] for _, t in tokens),
        heads=tuple(t["head"] - 1 for _, t in tokens),
        deprels=tuple(t["deprel"] for _, t in tokens),
        sent_id=sent_id,
    )


def parse_conllu(text: str, where: str = "<string>") -> list[UDSentence]:
    """Sentences of CoNLL-U ``text``; ``where`` names the source in error messages."""
    sentences = []
    for block in _blocks(text.splitlines()):
        sentence = _sentence(block, where)
        if sentence is not None:
            sentences.append(sentence)
    return sentences


def read_conllu(path: str | os.PathLike) -> list[UDSentence]:
    """Sentences of the CoNLL-U file ``path`` (``.conllu`` or ``.conllu.xz``).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        On a malformed line, naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CoNLL-U file {path}")
    try:
        text = _open_text(path)
    except (UnicodeDecodeError, lzma.LZMAError) as exc:
        raise ValueError(f"{path}: not a UTF-8 CoNLL-U file ({exc})") from None
    sentences = parse_conllu(text, str(path))
    if not sentences:
        raise ValueError(f"{path}: no sentences (is it a CoNLL-U file?)")
    return sentences


def ud_file(split: str, ud_dir: str | os.PathLike | None = None) -> Path:
    """The English-EWT file of ``split`` (``"dev"`` or ``"test"``): ``ud_dir``, ``$BERTOLOGY_UD_DIR``, embedded."""
    if split not in EWT_FILES:
        raise ValueError(f"UD split must be one of {sorted(EWT_FILES)}, got {split!r}")
    folder = ud_dir if ud_dir is not None else os.environ.get(UD_DIR_ENV) or None
    name = EWT_FILES[split]
    if folder is not None:
        for candidate in (Path(folder) / name, Path(folder) / (name + ".xz")):
            if candidate.is_file():
                return candidate
        source = "--ud-dir / ud_dir" if ud_dir is not None else f"${UD_DIR_ENV}"
        raise FileNotFoundError(f"no {name} in {folder} (from {source}); give a folder holding UD English-EWT's "
                                "files, or --train FILE --test FILE")
    embedded = EMBEDDED_UD_DIR / (name + ".xz")
    if not embedded.is_file():
        raise FileNotFoundError(f"the package ships no {name} (only dev and test are embedded); "
                                f"set {UD_DIR_ENV} or give --train FILE --test FILE")
    return embedded


def load_ud(split: str, ud_dir: str | os.PathLike | None = None) -> list[UDSentence]:
    """The sentences of English-EWT's ``split`` (see :func:`ud_file` for where they come from)."""
    return read_conllu(ud_file(split, ud_dir))


# -- probing tasks -----------------------------------------------------------------------------
#: ``items(sentence) -> [(word indices, label), ...]``: what one probing task asks of one sentence.
ItemsFunction = Callable[[UDSentence], list]


@dataclass(frozen=True)
class WordTask:
    """A probing task over the words of a treebank.

    Attributes
    ----------
    name : str
    span_count : int
        Words per item (1: a word, 2: an edge); the probe reads their vectors concatenated.
    items : callable
        ``items(sentence)`` -> list of ``(tuple of word indices, label str)``.
    description : str
    """

    name: str
    span_count: int
    items: ItemsFunction
    description: str = ""


#: Registered word-level probing tasks by name (``"task"``, the GLUE label, is handled by the pipeline).
WORD_TASKS: dict[str, WordTask] = {}


def register_task(name: str, span_count: int, description: str = "") -> Callable[[ItemsFunction], ItemsFunction]:
    """Decorator: register ``items(sentence)`` as the probing task ``name``."""

    def register(items: ItemsFunction) -> ItemsFunction:
        WORD_TASKS[name] = WordTask(name, span_count, items, description)
        return items

    return register


@register_task("upos", 1, "universal part of speech of each word (17 classes)")
def upos_items(sentence: UDSentence) -> list:
    return [((i,), tag) for i, tag in enumerate(sentence.upos)]


@register_task("deprel", 2, "relation of each word to its head, subtype stripped (edge probing; no root arcs)")
def deprel_items(sentence: UDSentence) -> list:
    return [((i, head), rel.split(":")[0]) for i, (head, rel) in enumerate(zip(sentence.heads, sentence.deprels))
            if head >= 0]


__all__ = ["EMBEDDED_UD_DIR", "UD_DIR_ENV", "WORD_TASKS", "UDSentence", "WordTask", "load_ud", "parse_conllu",
           "read_conllu", "register_task", "ud_file"]
