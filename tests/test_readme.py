"""The README runs as written: its Python blocks in order, and every command of its CLI table.

The Python blocks run in one namespace on the default model, with the GLUE
loader cut to a few examples. The CLI table is read row by row: each
``bertology ...`` must answer ``--help`` and know every option the row
names, and every subcommand needs a row. A new option or command only needs
its table row.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bertology_widgets.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
GLUE = README.parent.parent / "shared" / "glue"
FEW_EXAMPLES = 24


def python_blocks(text: str) -> list[str]:
    """The ```python blocks (```ipython blocks, such as Colab cells with ! commands, are not run)."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def cli_table_commands(text: str) -> list[str]:
    """Every backticked ``bertology ...`` in the first cell of the table under "## The command line"."""
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `bertology")]
    return [command for row in rows for command in re.findall(r"`(bertology [^`]*)`", row.split(" | ")[0])]


COMMANDS = cli_table_commands(README.read_text(encoding="utf-8"))


def subcommand(command: str) -> str:
    return command.split()[1]


def test_the_readme_has_a_tour_and_a_cli_table():
    text = README.read_text(encoding="utf-8")
    assert python_blocks(text) and len(COMMANDS) >= 7


@pytest.mark.parametrize("command", COMMANDS)
def test_each_cli_table_command_answers_help_and_knows_its_options(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([subcommand(command), "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for option in re.findall(r"--[a-z][a-z0-9_-]*", command):
        assert option in help_text, f"the README names {option} for `bertology {subcommand(command)}`"


def test_every_subcommand_has_a_row_in_the_cli_table():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == {subcommand(c) for c in COMMANDS}


@pytest.fixture()
def few_examples(monkeypatch):
    """The default model (skip if it is not built) and a GLUE loader that keeps the first few examples."""
    from bertology_widgets import glue
    from bertology_widgets.models.default_model import cache_problem, default_model_dir

    problem = cache_problem(default_model_dir())
    if problem:
        pytest.skip(f"the default model is not built ({problem}); run `bertology default-model`")
    if not os.environ.get("BERTOLOGY_GLUE_DIR"):
        if not GLUE.is_dir():
            pytest.skip(f"no GLUE data: set BERTOLOGY_GLUE_DIR (looked for {GLUE})")
        monkeypatch.setenv("BERTOLOGY_GLUE_DIR", str(GLUE))
    load_glue = glue.load_glue

    def load_few(*args, max_examples=None, **kwargs):
        return load_glue(*args, max_examples=min(max_examples or FEW_EXAMPLES, FEW_EXAMPLES), **kwargs)

    monkeypatch.setattr(glue, "load_glue", load_few)


@pytest.mark.minilm
def test_the_python_blocks_run_in_order_in_one_namespace(few_examples):
    namespace: dict = {"__name__": "readme"}
    try:
        for number, block in enumerate(python_blocks(README.read_text(encoding="utf-8")), start=1):
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        session = namespace["session"]
        assert (session.mask == 0).sum() == 20
        assert namespace["logits"].shape == (1, 2)
    finally:
        if "session" in namespace:
            namespace["session"].close()
