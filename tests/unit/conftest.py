"""Every test in tests/unit/ carries the ``unit`` marker (``-m unit`` selects them)."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.unit)


#: A unit test that takes longer than this (seconds of wall time, all phases) belongs in tests/integration.
SLOW_UNIT_S = 2.0
_slow_units: list[tuple[float, str]] = []


def pytest_runtest_logreport(report):
    if report.when == "call" and HERE in Path(report.fspath).resolve().parents and report.duration > SLOW_UNIT_S:
        _slow_units.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter):
    if _slow_units:
        terminalreporter.write_sep("-", f"unit tests over {SLOW_UNIT_S:g} s (move them to tests/integration)")
        for seconds, nodeid in sorted(_slow_units, reverse=True):
            terminalreporter.write_line(f"{seconds:6.2f} s  {nodeid}")
