"""The CoNLL-U reader and the probing tasks built from it (unit: no model)."""

from __future__ import annotations

import lzma

import pytest

from bertology_widgets.analyses.ud import WORD_TASKS, load_ud, parse_conllu, read_conllu, register_task, ud_file

# Multi-word token (1-2), an empty node (4.1), a subtype (nmod:poss), a comment line.
SAMPLE = """# sent_id = s1
# text = Don't see John's dog
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tsee\tsee\tVERB\tVB\t_\t0\troot\t_\t_
4\tJohn\tJohn\tPROPN\tNNP\t_\t6\tnmod:poss\t_\t_
4.1\tsaw\tsee\tVERB\tVBD\t_\t_\t_\t3:conj\t_
5\t's\t's\tPART\tPOS\t_\t4\tcase\t_\t_
6\tdog\tdog\tNOUN\tNN\t_\t3\tobj\t_\t_

# sent_id = s2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_
"""


def test_reader_skips_multiword_tokens_and_empty_nodes():
    first, second = parse_conllu(SAMPLE)
    assert first.words == ("Do", "n't", "see", "John", "'s", "dog")
    assert first.upos == ("AUX", "PART", "VERB", "PROPN", "PART", "NOUN")
    assert first.heads == (2, 2, -1, 5, 3, 2)  # 0-based; the root's head is -1
    assert first.deprels[3] == "nmod:poss" and first.sent_id == "s1"
    assert second.words == ("Hi", "!")


def test_tasks_strip_subtypes_and_leave_out_root_arcs():
    first, _ = parse_conllu(SAMPLE)
    assert WORD_TASKS["upos"].items(first)[3] == ((3,), "PROPN")
    arcs = WORD_TASKS["deprel"].items(first)
    assert ((3, 5), "nmod") in arcs  # nmod:poss counts as nmod; the pair is (dependent, head)
    assert len(arcs) == 5 and all(label != "root" for _, label in arcs)


def test_a_new_task_is_one_small_function():
    @register_task("arc_left", 2, "does the head come before the dependent?")
    def arc_left(sentence):
        return [((i, h), str(h < i)) for i, h in enumerate(sentence.heads) if h >= 0]

    try:
        assert WORD_TASKS["arc_left"].items(parse_conllu(SAMPLE)[1]) == [((1, 0), "True")]
        from bertology_widgets.analyses.pipeline import known_tasks

        assert "arc_left" in known_tasks()
    finally:
        del WORD_TASKS["arc_left"]


def test_a_broken_line_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.conllu"
    lines = SAMPLE.splitlines()
    lines[4] = "2\tnot\tnot\tPART"  # 4 fields instead of 10, on line 5
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.conllu, line 5: expected 10 tab-separated"):
        read_conllu(path)
    bad_head = SAMPLE.replace("3\tsee\tsee\tVERB\tVB\t_\t0", "3\tsee\tsee\tVERB\tVB\t_\tx")
    path.write_text(bad_head, encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.conllu, line 6: .*head"):
        read_conllu(path)


def test_missing_and_compressed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CoNLL-U file"):
        read_conllu(tmp_path / "nope.conllu")
    packed = tmp_path / "en_ewt-ud-dev.conllu.xz"
    with lzma.open(packed, "wt", encoding="utf-8") as f:
        f.write(SAMPLE)
    assert len(read_conllu(packed)) == 2
    assert ud_file("dev", tmp_path) == packed  # --ud-dir first
    with pytest.raises(FileNotFoundError, match="en_ewt-ud-test.conllu"):
        ud_file("test", tmp_path)


def test_the_embedded_treebank_loads(monkeypatch):
    monkeypatch.delenv("BERTOLOGY_UD_DIR", raising=False)
    assert ud_file("test").name == "en_ewt-ud-test.conllu.xz"
    assert (ud_file("test").parent / "LICENSE.txt").is_file()
    dev = load_ud("dev")
    assert len(dev) == 2001 and sum(len(s) for s in dev) == 25147
