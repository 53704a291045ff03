"""``docs/cli.md`` is what ``scripts/cli_docs.py`` generates from the argument parser, so it cannot drift."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from bertology_widgets.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("cli_docs", REPO / "scripts" / "cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli_docs = load_generator()


def test_docs_cli_md_is_the_generated_text():
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == cli_docs.render(), (
        "docs/cli.md is out of date: run `python scripts/cli_docs.py` and commit the result")


def test_every_command_and_option_has_its_place():
    text = cli_docs.render()
    subparsers = build_parser()._subparsers._group_actions[0]
    for name, sub in subparsers.choices.items():
        section = text.split(f"## `bertology {name}`\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in section, f"{option} of `bertology {name}` is missing from docs/cli.md"


def test_a_command_added_later_gets_its_section_without_touching_the_generator():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0]
    new = subparsers.add_parser("later-command", help="a command added after this test was written")
    new.add_argument("text", help="the input | with a pipe")
    new.add_argument("--top", type=int, default=5, help="show the top %(default)s heads")
    new.add_argument("--method", choices=("a", "b"), required=True)
    new.add_argument("--quiet", action="store_true")
    text = cli_docs.render(parser)
    assert "| [`later-command`](#bertology-later-command) | a command added after this test was written |" in text
    section = text.split("## `bertology later-command`\n", 1)[1]
    assert "| `text` |  | the input \\| with a pipe |" in section
    assert "| `--top` `TOP` | `5` | show the top 5 heads |" in section
    assert "| `--method` `{a,b}` |  | **required** |" in section
    assert "| `--quiet` |  |  |" in section


def test_the_text_does_not_depend_on_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = cli_docs.render()
    monkeypatch.setenv("COLUMNS", "300")
    assert cli_docs.render() == narrow
    assert not re.search(r"[ \t]+\n", narrow.replace("|  |", "|x|")), "no trailing blanks"


def test_check_mode_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_docs, "CLI_MD", tmp_path / "docs" / "cli.md")
    monkeypatch.setattr(cli_docs, "REPO", tmp_path)
    assert cli_docs.main(["--check"]) == 1
    assert "python scripts/cli_docs.py" in capsys.readouterr().err
    (tmp_path / "docs").mkdir()
    assert cli_docs.main([]) == 0
    assert cli_docs.main(["--check"]) == 0


def test_the_readme_names_every_command_that_takes_ablation_mean_and_its_table_has_one_header():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count("| command | what it does |") == 1
    line = next(row for row in readme.splitlines() if row.startswith("| `--ablation mean` on "))
    listed = set(re.findall(r"`([a-z-]+)`", line.split("|")[1].removeprefix(" `--ablation mean` on ")))
    subparsers = build_parser()._subparsers._group_actions[0]
    taking = {name for name, sub in subparsers.choices.items()
              if any("--ablation" in action.option_strings for action in sub._actions)}
    assert listed == taking, f"README's `--ablation mean` line should name {sorted(taking)}"
