"""GLUE loaders: every task's real file layout, data-source resolution and errors.

The small files here are written in each task's real GLUE format; SST-2's
real train and dev sets are embedded in the package; the last tests read the
real MRPC and RTE files of the GLUE folder named by ``BERTOLOGY_GLUE_DIR``
(else ``<root>/../shared/glue``) and skip when there is none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import lzma
import os
import sys
import types
from pathlib import Path

import pytest

from bertology_widgets.glue import GLUE_DIR_ENV, Example, GlueSplit, load_glue
from bertology_widgets.glue.embedded import EMBEDDED_DIR

SHARED_GLUE = Path(__file__).resolve().parents[3] / "shared" / "glue"
# SHA-256 of the GLUE release's SST-2 files (as listed in shared/glue/README.md).
SST2_SHA256 = {
    "train.tsv": "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
    "dev.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
}

STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
MNLI_DEV_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\t"
    "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
)


def write_tsv(path: Path, lines: list[str], *, bom: bool = False) -> Path:
    """Write ``lines`` as a UTF-8 file (optionally with a byte-order mark), one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def mnli_row(index: int, premise: str, hypothesis: str, label1: str, gold: str) -> str:
    parses = ["( x )", "( y )", "(ROOT x)", "(ROOT y)"]
    return "\t".join([str(index), "31193", f"{index}n", "fiction", *parses, premise, hypothesis,
                      label1, label1, gold, gold, gold, gold])


def texts_and_labels(split: GlueSplit) -> list[tuple]:
    return [(e.text_a, e.text_b, e.label) for e in split]


# ---------------------------------------------------------------- each task's layout


def test_sst2_keeps_text_exactly_and_survives_unbalanced_quotes(tmp_path):
    write_tsv(tmp_path / "SST-2" / "dev.tsv", [
        "sentence\tlabel",
        "it 's a charming and often affecting journey . \t1",
        'He said "hi \t0',
        "after the quote , rows still split on tabs\t1",
    ])
    dev = load_glue("sst2", "validation", glue_dir=tmp_path)
    assert texts_and_labels(dev) == [
        ("it 's a charming and often affecting journey . ", None, 1),
        ('He said "hi ', None, 0),
        ("after the quote , rows still split on tabs", None, 1),
    ]
    assert [e.idx for e in dev] == [0, 1, 2]
    assert [e.source for e in dev] == ["SST-2/dev.tsv:2", "SST-2/dev.tsv:3", "SST-2/dev.tsv:4"]


def test_cola_train_and_dev_have_no_header(tmp_path):
    write_tsv(tmp_path / "CoLA" / "dev.tsv", [
        "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.",
        "gj04\t0\t*\tThey drank the pub.",
    ])
    dev = load_glue("cola", glue_dir=tmp_path)
    assert texts_and_labels(dev) == [
        ("Our friends won't buy this analysis, let alone the next one we propose.", None, 1),
        ("They drank the pub.", None, 0),
    ]
    assert dev[0].source == "CoLA/dev.tsv:1"


def test_cola_test_file_has_a_header_and_no_labels(tmp_path):
    write_tsv(tmp_path / "CoLA" / "test.tsv", ["index\tsentence", "0\tBill whistled past the house."])
    test = load_glue("cola", "test", glue_dir=tmp_path)
    assert texts_and_labels(test) == [("Bill whistled past the house.", None, None)]


def test_mrpc_byte_order_mark_label_first_and_quotes(tmp_path):
    write_tsv(tmp_path / "MRPC" / "dev.tsv", [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        "1\t1355540\t1355592\tHe said the pie business doesn't fit.\t\"The pie business does not fit.",
        '0\t2029631\t2029565\tMagnarelli said "100 percent" too\tHis wife said he was "100 percent behind"',
    ], bom=True)
    dev = load_glue("mrpc", glue_dir=tmp_path)
    assert texts_and_labels(dev) == [
        ("He said the pie business doesn't fit.", '"The pie business does not fit.', 1),
        ('Magnarelli said "100 percent" too', 'His wife said he was "100 percent behind"', 0),
    ]


def test_qqp_reads_questions_and_is_duplicate(tmp_path):
    write_tsv(tmp_path / "QQP" / "dev.tsv", [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "201359\t303345\t303346\tWhy are African-Americans so beautiful?\tWhy are hispanics so beautiful?\t0",
        "263843\t69383\t380476\tI want to pursue PhD in Computer Science?\tHow can I do a PhD in CS?\t1",
    ])
    dev = load_glue("qqp", glue_dir=tmp_path)
    assert texts_and_labels(dev) == [
        ("Why are African-Americans so beautiful?", "Why are hispanics so beautiful?", 0),
        ("I want to pursue PhD in Computer Science?", "How can I do a PhD in CS?", 1),
    ]


def test_stsb_reads_float_score_from_last_column(tmp_path):
    write_tsv(tmp_path / "STS-B" / "dev.tsv", [
        STSB_HEADER,
        "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat is dancing.\t"
        "A man wearing a hard hat is dancing.\t5.000",
        "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA young child is riding a horse.\t"
        "A child is riding a horse.\t4.750",
    ])
    dev = load_glue("sts-b", glue_dir=tmp_path)
    assert texts_and_labels(dev) == [
        ("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0),
        ("A young child is riding a horse.", "A child is riding a horse.", 4.75),
    ]
    assert all(isinstance(e.label, float) for e in dev)


def write_mnli(glue_dir: Path) -> None:
    write_tsv(glue_dir / "MNLI" / "dev_matched.tsv", [
        MNLI_DEV_HEADER,
        mnli_row(0, "The new rights are nice enough", "Everyone really likes the rights.", "neutral", "neutral"),
        mnli_row(1, 'He said "hi', "He spoke.", "neutral", "entailment"),
    ])
    write_tsv(glue_dir / "MNLI" / "dev_mismatched.tsv", [
        MNLI_DEV_HEADER,
        mnli_row(0, "Your contribution helped.", "Your contributions were of no help.", "neutral", "contradiction"),
    ])


def test_mnli_matched_and_mismatched_take_gold_label(tmp_path):
    write_mnli(tmp_path)
    matched = load_glue("mnli", "validation", glue_dir=tmp_path)
    assert matched.split == "validation_matched"
    # label1 says "neutral" in row 1: gold_label (the last column) must win.
    assert texts_and_labels(matched) == [
        ("The new rights are nice enough", "Everyone really likes the rights.", 1),
        ('He said "hi', "He spoke.", 0),
    ]
    mismatched = load_glue("mnli", "validation_mismatched", glue_dir=tmp_path)
    assert texts_and_labels(mismatched) == [
        ("Your contribution helped.", "Your contributions were of no help.", 2),
    ]
    assert mismatched.source == str(tmp_path / "MNLI" / "dev_mismatched.tsv")
    by_alias = load_glue("mnli-mm", glue_dir=tmp_path)
    assert by_alias.split == "validation_mismatched"
    assert texts_and_labels(by_alias) == texts_and_labels(mismatched)


def test_mnli_test_file_without_labels(tmp_path):
    header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t" \
             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2"
    write_tsv(tmp_path / "MNLI" / "test_mismatched.tsv", [
        header, "0\t1\t1n\tletters\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tPremise here.\tHypothesis here.",
    ])
    test = load_glue("mnli-mm", "test", glue_dir=tmp_path)
    assert test.split == "test_mismatched"
    assert texts_and_labels(test) == [("Premise here.", "Hypothesis here.", None)]


@pytest.mark.parametrize(
    "folder, task, header, label_token, expected_label",
    [
        ("QNLI", "qnli", "index\tquestion\tsentence\tlabel", "not_entailment", 1),
        ("QNLI", "qnli", "index\tquestion\tsentence\tlabel", "entailment", 0),
        ("RTE", "rte", "index\tsentence1\tsentence2\tlabel", "entailment", 0),
        ("RTE", "rte", "index\tsentence1\tsentence2\tlabel", "not_entailment", 1),
        ("WNLI", "wnli", "index\tsentence1\tsentence2\tlabel", "1", 1),
        ("WNLI", "wnli", "index\tsentence1\tsentence2\tlabel", "0", 0),
    ],
)
def test_index_first_pair_tasks(tmp_path, folder, task, header, label_token, expected_label):
    write_tsv(tmp_path / folder / "dev.tsv", [header, f"0\tFirst \"text\tSecond text.\t{label_token}"])
    dev = load_glue(task, glue_dir=tmp_path)
    assert texts_and_labels(dev) == [('First "text', "Second text.", expected_label)]


def test_sst2_test_split_has_no_labels(tmp_path):
    write_tsv(tmp_path / "SST-2" / "test.tsv", ["index\tsentence", "0\tuneasy mishmash of styles and genres ."])
    test = load_glue("sst2", "test", glue_dir=tmp_path)
    assert texts_and_labels(test) == [("uneasy mishmash of styles and genres .", None, None)]


# ---------------------------------------------------------------- options and containers


def write_sst2_dev(glue_dir: Path, sentences: list[str]) -> None:
    write_tsv(glue_dir / "SST-2" / "dev.tsv", ["sentence\tlabel", *(f"{s}\t{i % 2}" for i, s in enumerate(sentences))])


def test_max_examples_takes_the_first_n(tmp_path):
    write_sst2_dev(tmp_path, ["a", "b", "c", "d"])
    assert [e.text_a for e in load_glue("sst2", glue_dir=tmp_path, max_examples=2)] == ["a", "b"]
    assert len(load_glue("sst2", glue_dir=tmp_path, max_examples=10)) == 4
    for bad in (0, -1, 2.5):  # one message for every bad count, naming the fix
        with pytest.raises(ValueError, match=rf"max_examples must be an integer of at least 1 \(or None for every "
                                             rf"example\), got {bad}"):
            load_glue("sst2", glue_dir=tmp_path, max_examples=bad)


def test_glue_split_is_a_sequence_of_frozen_examples(tmp_path):
    write_sst2_dev(tmp_path, ["a", "b", "c"])
    dev = load_glue("sst2", "dev", glue_dir=tmp_path)
    assert len(dev) == 3 and dev[-1].text_a == "c" and [e.text_a for e in dev[:2]] == ["a", "b"]
    assert dev.labels == [0, 1, 0]
    assert dev.task.name == "sst2" and dev.split == "validation"
    assert isinstance(dev[0], Example)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev[0].label = 1


def test_blank_lines_are_ignored(tmp_path):
    write_tsv(tmp_path / "SST-2" / "dev.tsv", ["sentence\tlabel", "good\t1", "", "bad\t0", ""])
    assert load_glue("sst2", glue_dir=tmp_path).labels == [1, 0]


# ---------------------------------------------------------------- bad rows


@pytest.mark.parametrize(
    "folder, task, lines, message",
    [
        ("SST-2", "sst2", ["sentence\tlabel", "fine\t1", "no label here"],
         "line 3: expected 2 tab-separated columns, found 1"),
        ("SST-2", "sst2", ["sentence\tlabel", "fine\t2"], "line 2: unknown SST-2 label '2'"),
        ("RTE", "rte", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tmaybe"], "line 2: unknown RTE label 'maybe'"),
        ("STS-B", "stsb", [STSB_HEADER, "0\tg\tf\t2012\t1\tnone\tnone\ta\tb\tn/a"],
         "line 2: score 'n/a' is not a number"),
        ("SST-2", "sst2", ["text\tlabel", "fine\t1"], "line 1: header has no column 'sentence'"),
        ("CoLA", "cola", ["gj04\t1\t\tok.", "gj04\t1\tonly three"],
         "line 2: expected 4 tab-separated columns, found 3"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, folder, task, lines, message):
    path = write_tsv(tmp_path / folder / "dev.tsv", lines)
    with pytest.raises(ValueError) as info:
        load_glue(task, glue_dir=tmp_path)
    assert str(info.value).startswith(f"{path} {message}")


def test_skip_bad_rows_keeps_the_good_ones(tmp_path):
    write_tsv(tmp_path / "SST-2" / "dev.tsv", ["sentence\tlabel", "good\t1", "broken", "also good\t0"])
    dev = load_glue("sst2", glue_dir=tmp_path, skip_bad_rows=True)
    assert [(e.text_a, e.source) for e in dev] == [("good", "SST-2/dev.tsv:2"), ("also good", "SST-2/dev.tsv:4")]


# ---------------------------------------------------------------- where the data comes from


def test_environment_variable_names_the_glue_folder(tmp_path, monkeypatch):
    write_sst2_dev(tmp_path, ["from env"])
    monkeypatch.setenv(GLUE_DIR_ENV, str(tmp_path))
    dev = load_glue("sst2")
    assert [e.text_a for e in dev] == ["from env"]
    assert dev.source == str(tmp_path / "SST-2" / "dev.tsv")


def test_explicit_glue_dir_wins_over_environment(tmp_path, monkeypatch):
    write_sst2_dev(tmp_path / "env", ["from env"])
    write_sst2_dev(tmp_path / "arg", ["from argument"])
    monkeypatch.setenv(GLUE_DIR_ENV, str(tmp_path / "env"))
    assert load_glue("sst2", glue_dir=tmp_path / "arg")[0].text_a == "from argument"
    assert load_glue("sst2", glue_dir=str(tmp_path / "arg"))[0].text_a == "from argument"


def test_missing_file_error_names_full_path_and_remedies(tmp_path, monkeypatch):
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    (tmp_path / "MNLI").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        load_glue("mnli", "validation_mismatched", glue_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNLI" / "dev_mismatched.tsv") in message
    for remedy in ("glue_dir=", "--glue-dir", GLUE_DIR_ENV, "pip install bertology-widgets[hub]"):
        assert remedy in message


def test_missing_file_under_environment_folder_says_where_the_folder_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv(GLUE_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        load_glue("rte")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "RTE" / "dev.tsv") in message
    assert f"{tmp_path / 'nowhere'} does not exist" in message
    assert f"came from {GLUE_DIR_ENV}" in message


@pytest.mark.parametrize("task, split, wanted", [("rte", "validation", "<glue_dir>/RTE/dev.tsv"),
                                                  ("sst2", "test", "<glue_dir>/SST-2/test.tsv")])
def test_no_folder_and_no_datasets_package(monkeypatch, task, split, wanted):
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(FileNotFoundError) as info:
        load_glue(task, split)
    message = str(info.value)
    assert wanted in message
    assert "`datasets`" in message and "--glue-dir" in message and GLUE_DIR_ENV in message


class FakeHubDataset:
    """The parts of a ``datasets.Dataset`` the hub loader uses."""

    def __init__(self, records):
        self.records = list(records)

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def select(self, indices):
        return FakeHubDataset(self.records[i] for i in indices)


def fake_datasets_module(records, calls):
    def load_dataset(path, name, split):
        calls.append((path, name, split))
        return FakeHubDataset(records)

    return types.SimpleNamespace(load_dataset=load_dataset)


def test_hub_path_when_no_folder_is_set(monkeypatch):
    calls = []
    records = [
        {"premise": "P0", "hypothesis": "H0", "label": 2, "idx": 0},
        {"premise": "P1", "hypothesis": "H1", "label": 0, "idx": 1},
        {"premise": "P2", "hypothesis": "H2", "label": 1, "idx": 2},
    ]
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(records, calls))
    dev = load_glue("mnli-mm", max_examples=2)
    assert calls == [("nyu-mll/glue", "mnli", "validation_mismatched")]
    assert texts_and_labels(dev) == [("P0", "H0", 2), ("P1", "H1", 0)]
    assert dev.source == "nyu-mll/glue:mnli"
    assert dev[1].source == "nyu-mll/glue:mnli/validation_mismatched[1]"


def test_hub_test_split_labels_become_none(monkeypatch):
    calls = []
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets",
                        fake_datasets_module([{"sentence": "s", "label": -1, "idx": 0}], calls))
    assert texts_and_labels(load_glue("sst2", "test")) == [("s", None, None)]
    assert calls == [("nyu-mll/glue", "sst2", "test")]


def test_hub_failure_becomes_file_not_found_with_the_cause(monkeypatch):
    def offline(path, name, split):
        raise ConnectionError("no network")

    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(FileNotFoundError, match="ConnectionError: no network") as info:
        load_glue("rte")
    assert isinstance(info.value.__cause__, ConnectionError)
    assert "--glue-dir" in str(info.value)


# ---------------------------------------------------------------- SST-2 embedded in the package


def test_embedded_sst2_decompresses_to_the_glue_release_byte_for_byte():
    for name, digest in SST2_SHA256.items():
        data = lzma.decompress((EMBEDDED_DIR / f"{name}.xz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == digest, name
    assert (EMBEDDED_DIR / "README.md").read_text().count("Socher") == 1


def test_sst2_without_a_folder_comes_from_the_embedded_copy(monkeypatch):
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # the hub is never consulted
    dev = load_glue("sst2")
    assert dev.origin == "embedded" and dev.source == str(EMBEDDED_DIR / "dev.tsv.xz")
    assert dev.describe() == "SST-2 dev: embedded copy (872 examples)"
    assert len(dev) == 872
    assert dev.labels.count(1) == 444 and dev.labels.count(0) == 428
    assert dev[0].text_a == "it 's a charming and often affecting journey . "
    assert dev[0].source == "SST-2/dev.tsv:2"  # the same sources as the GLUE folder's file
    train = load_glue("sst-2", "train")
    assert train.describe() == "SST-2 train: embedded copy (67349 examples)"
    assert load_glue("sst2", "train", max_examples=5).describe() == "SST-2 train: embedded copy (5 examples)"


def test_a_folder_or_the_variable_wins_over_the_embedded_copy(tmp_path, monkeypatch):
    write_sst2_dev(tmp_path / "env", ["from env"])
    write_sst2_dev(tmp_path / "arg", ["from argument"])
    monkeypatch.setenv(GLUE_DIR_ENV, str(tmp_path / "env"))
    from_env = load_glue("sst2")
    assert from_env.origin == "folder" and from_env[0].text_a == "from env"
    assert from_env.describe() == f"SST-2 dev: {tmp_path / 'env' / 'SST-2' / 'dev.tsv'} (1 examples)"
    monkeypatch.delenv(GLUE_DIR_ENV)
    assert load_glue("sst2", glue_dir=tmp_path / "arg")[0].text_a == "from argument"
    # A named folder that lacks SST-2 is an error, never a silent fall-back to the embedded copy.
    with pytest.raises(FileNotFoundError, match="SST-2/train.tsv"):
        load_glue("sst2", "train", glue_dir=tmp_path / "arg")


def test_hub_split_describes_itself(monkeypatch):
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module([{"sentence1": "a", "sentence2": "b",
                                                                        "label": 0, "idx": 0}], []))
    dev = load_glue("rte")
    assert dev.origin == "hub" and dev.describe() == "RTE dev: hub nyu-mll/glue:rte (1 examples)"


# ---------------------------------------------------------------- the real GLUE copies


def real_glue_dir(folder: str) -> Path:
    """The GLUE folder holding ``folder`` (``BERTOLOGY_GLUE_DIR``, else ../shared/glue); skips without one."""
    configured = os.environ.get(GLUE_DIR_ENV, "").strip()
    root = Path(configured) if configured else SHARED_GLUE
    if not (root / folder).is_dir():
        pytest.skip(f"needs the real {folder} data: set {GLUE_DIR_ENV} to a GLUE folder that has {folder}/ "
                    f"(looked in {root})")
    return root


def test_embedded_sst2_equals_the_glue_folders_copy(monkeypatch):
    root = real_glue_dir("SST-2")
    for name in SST2_SHA256:
        assert lzma.decompress((EMBEDDED_DIR / f"{name}.xz").read_bytes()) == (root / "SST-2" / name).read_bytes()
    from_folder = load_glue("sst2", glue_dir=root)
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    embedded = load_glue("sst2")
    assert (from_folder.origin, embedded.origin) == ("folder", "embedded")
    assert from_folder.examples == embedded.examples


def test_real_mrpc_dev():
    dev = load_glue("MRPC", "dev", glue_dir=real_glue_dir("MRPC"))
    assert len(dev) == 408
    assert dev[0].label == 1
    assert dev[0].text_a.startswith("He said the foodservice pie business")
    assert dev[0].text_b == '"The foodservice pie business does not fit our long-term growth strategy.'
    assert dev.labels.count(1) == 279


def test_real_rte_dev():
    dev = load_glue("rte", glue_dir=real_glue_dir("RTE"))
    assert len(dev) == 277
    assert dev.labels.count(0) == 146  # entailment
    assert dev[0].label == 1 and dev[0].text_b == "Christopher Reeve had an accident."
