"""The texts a language model is scored on: EWT test sentences by default, or a file of one text per line."""

from __future__ import annotations

import lzma

import pytest

from bertology_widgets.analyses.lm_texts import LIVE_DEFAULT_TEXTS, ewt_texts, load_lm_texts, read_text_file
from bertology_widgets.analyses.ud import EMBEDDED_UD_DIR


def test_the_default_texts_are_the_ewt_test_text_lines_in_file_order():
    with lzma.open(EMBEDDED_UD_DIR / "en_ewt-ud-test.conllu.xz", "rt", encoding="utf-8") as f:
        expected = [line[len("# text = "):].rstrip("\n") for line in f if line.startswith("# text = ")]
    texts = load_lm_texts()
    assert [ex.text_a for ex in texts] == expected and len(texts) == 2077
    assert all(ex.label is None and ex.text_b is None for ex in texts)
    assert [ex.idx for ex in texts[:3]] == [0, 1, 2]
    assert texts.describe() == "UD English-EWT test: embedded copy (2077 texts)"


def test_max_examples_takes_the_first_n():
    every, first = ewt_texts(), load_lm_texts(max_examples=LIVE_DEFAULT_TEXTS)
    assert list(first) == list(every[:LIVE_DEFAULT_TEXTS])
    assert first.describe() == f"UD English-EWT test: embedded copy (first {LIVE_DEFAULT_TEXTS} of 2077 texts)"
    with pytest.raises(ValueError, match="at least 1"):
        ewt_texts(0)


def test_a_text_file_gives_one_text_per_line_skipping_blank_ones(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("Der Hund bellt.\n\n  Ça va très bien.  \nThe end\n", encoding="utf-8")
    texts = load_lm_texts(text_file=path)
    assert [ex.text_a for ex in texts] == ["Der Hund bellt.", "Ça va très bien.", "The end"]
    assert [ex.source for ex in texts] == ["texts.txt:1", "texts.txt:3", "texts.txt:4"]
    assert [ex.text_a for ex in load_lm_texts(text_file=path, max_examples=2)] == ["Der Hund bellt.",
                                                                                 "Ça va très bien."]
    assert texts.describe() == f"texts.txt: {path} (3 texts)"


@pytest.mark.parametrize("content,error,message", [
    (b"", ValueError, "holds no text"),
    (b"\n  \n\t\n", ValueError, "holds no text"),
    (b"caf\xe9\n", ValueError, "is not UTF-8"),
    (None, FileNotFoundError, "does not exist"),
])
def test_an_empty_or_unreadable_text_file_gets_one_clear_line(content, error, message, tmp_path):
    path = tmp_path / "texts.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error) as info:
        read_text_file(path)
    text = str(info.value)
    assert message in text and str(path) in text and "one text per line" in text and "\n" not in text


def test_a_folder_given_as_the_text_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is a folder"):
        read_text_file(tmp_path)
