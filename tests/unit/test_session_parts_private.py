"""The session's parts and the views own their state: none reads another object's ``_private`` attribute.

A part (a module of ``session/``) or a view (``widgets/``) may use its own ``self._x``;
``other._x``, ``self.other._x`` and ``getattr(other, "_x")`` are refused.
Where one part needs another, it is given a public method or a callable at
construction (see ``ModelSession._wire_parts``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import bertology_widgets

PACKAGE = Path(bertology_widgets.__file__).parent
CHECKED = ("session", "widgets")
OWN = {"self", "cls"}
# Names that start with "_" but are another library's public interface, each with its reason.
ALLOWED = {
    "_name_or_path",  # transformers' PretrainedConfig: where the model was loaded from
    "_handle_custom_msgs",  # bqplot's Mark: where a front end's message arrives (GridPlot.click sends one)
}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in ALLOWED


def is_own(node: ast.expr) -> bool:
    """``self`` / ``cls``, or ``super()``."""
    if isinstance(node, ast.Name):
        return node.id in OWN
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def foreign_private_reads(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, expression)`` for every read of another object's private attribute in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and not is_own(node.value):
            found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and is_private(node.args[1].value)
              and not is_own(node.args[0])):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_check_sees_the_three_forms():
    source = "a._x\nself.other._y\ngetattr(obj, '_z', None)\nself._own\nsuper()._own\nobj.__class__\n"
    assert [line for line, _ in foreign_private_reads(source)] == [1, 2, 3]


def test_no_session_part_or_view_reads_another_objects_private_attributes():
    found = []
    for folder in CHECKED:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            rel = path.relative_to(PACKAGE)
            found += [f"{rel}:{line}: {expr}" for line, expr in foreign_private_reads(path.read_text(), str(path))]
    assert found == []
