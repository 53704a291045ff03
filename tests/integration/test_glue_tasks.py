"""The GLUE task registry: names, aliases, label order, metrics and splits."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from bertology_widgets.glue import GLUE_TASKS, GlueTask, get_task, resolve_task_split

NINE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")

# Label order of the Hugging Face `nyu-mll/glue` configs.
HF_LABEL_ORDER = {
    "cola": ("unacceptable", "acceptable"),
    "sst2": ("negative", "positive"),
    "mrpc": ("not_equivalent", "equivalent"),
    "qqp": ("not_duplicate", "duplicate"),
    "stsb": (),
    "mnli": ("entailment", "neutral", "contradiction"),
    "qnli": ("entailment", "not_entailment"),
    "rte": ("entailment", "not_entailment"),
    "wnli": ("not_entailment", "entailment"),
}

METRICS = {
    "cola": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "qqp": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}

FOLDERS = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "stsb": "STS-B",
    "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI",
}


def test_registry_holds_exactly_the_nine_glue_tasks():
    assert tuple(GLUE_TASKS) == NINE_TASKS
    assert all(task.name == name for name, task in GLUE_TASKS.items())


@pytest.mark.parametrize("name", NINE_TASKS)
def test_label_order_matches_hugging_face(name):
    assert GLUE_TASKS[name].label_names == HF_LABEL_ORDER[name]


@pytest.mark.parametrize("name", NINE_TASKS)
def test_metrics_and_primary_metric(name):
    task = GLUE_TASKS[name]
    assert task.metrics == METRICS[name]
    assert task.primary_metric == METRICS[name][0]


@pytest.mark.parametrize("name", NINE_TASKS)
def test_folder_and_display_name(name):
    task = GLUE_TASKS[name]
    assert task.folder == FOLDERS[name]
    assert get_task(task.display_name) is task


def test_num_labels_regression_and_pairs():
    assert {name: t.num_labels for name, t in GLUE_TASKS.items()} == {
        "cola": 2, "sst2": 2, "mrpc": 2, "qqp": 2, "stsb": 1,
        "mnli": 3, "qnli": 2, "rte": 2, "wnli": 2,
    }
    assert [name for name, t in GLUE_TASKS.items() if t.is_regression] == ["stsb"]
    assert [name for name, t in GLUE_TASKS.items() if not t.is_pair] == ["cola", "sst2"]


def test_split_files_standard_and_mnli():
    assert dict(GLUE_TASKS["rte"].split_files) == {
        "train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv",
    }
    mnli = GLUE_TASKS["mnli"]
    assert dict(mnli.split_files) == {
        "train": "train.tsv",
        "validation_matched": "dev_matched.tsv",
        "validation_mismatched": "dev_mismatched.tsv",
        "test_matched": "test_matched.tsv",
        "test_mismatched": "test_mismatched.tsv",
    }
    assert mnli.file_for("validation") == "dev_matched.tsv"
    assert mnli.file_for("dev_mismatched") == "dev_mismatched.tsv"
    assert GLUE_TASKS["sst2"].file_for("dev") == "dev.tsv"


@pytest.mark.parametrize(
    "alias, expected",
    [
        ("sst-2", "sst2"), ("SST-2", "sst2"), ("sst_2", "sst2"), ("SST2", "sst2"),
        ("sts-b", "stsb"), ("STS-B", "stsb"), ("CoLA", "cola"), ("  qqp ", "qqp"),
        ("MNLI", "mnli"), ("mnli-m", "mnli"), ("mnli-mm", "mnli"), ("mnli_mismatched", "mnli"),
    ],
)
def test_get_task_accepts_aliases(alias, expected):
    assert get_task(alias).name == expected


def test_get_task_passes_a_task_through():
    task = GLUE_TASKS["rte"]
    assert get_task(task) is task


def test_unknown_task_error_lists_valid_tasks():
    with pytest.raises(ValueError, match="Unknown GLUE task 'imdb'") as info:
        get_task("imdb")
    for name in NINE_TASKS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "task, split, expected",
    [
        ("mnli", "validation", "validation_matched"),
        ("mnli", "dev", "validation_matched"),
        ("mnli", "test", "test_matched"),
        ("mnli", "dev_mismatched", "validation_mismatched"),
        ("mnli-mm", "validation", "validation_mismatched"),
        ("mnli-mm", "test", "test_mismatched"),
        ("mnli-mm", "validation_matched", "validation_matched"),
        ("sst-2", "dev", "validation"),
        ("rte", "Validation", "validation"),
        ("cola", "train", "train"),
    ],
)
def test_resolve_task_split(task, split, expected):
    assert resolve_task_split(task, split)[1] == expected


@pytest.mark.parametrize("task, split", [("sst2", "validation_matched"), ("mnli", "dev2"), ("rte", "")])
def test_unknown_split_error_lists_valid_splits(task, split):
    with pytest.raises(ValueError, match="has no split") as info:
        resolve_task_split(task, split)
    for valid in get_task(task).splits:
        assert valid in str(info.value)


def test_test_splits_are_unlabelled():
    assert GLUE_TASKS["sst2"].is_labelled("validation")
    assert not GLUE_TASKS["sst2"].is_labelled("test")
    assert not GLUE_TASKS["mnli"].is_labelled("test_mismatched")


def test_tasks_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GLUE_TASKS["sst2"].name = "imdb"
    assert isinstance(hash(GLUE_TASKS["mnli"]), int)
    assert isinstance(GLUE_TASKS["mnli"], GlueTask)


def test_importing_glue_imports_neither_torch_nor_optional_packages():
    code = (
        "import sys, bertology_widgets.glue; "
        "print(sorted(m for m in ('torch', 'datasets', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
