"""A test run stopped from outside (Ctrl-C, or SIGTERM from a timeout) stops what its fixtures started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

CHILD_TEST = '''
import subprocess, sys, time
import pytest

@pytest.fixture
def server(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (tmp_path.parent / "pid").write_text(str(proc.pid))
    yield proc
    proc.terminate()
    proc.wait(10)

def test_runs_long(server, tmp_path):
    (tmp_path.parent / "running").write_text("")  # the fixture has yielded: its teardown is due
    time.sleep(120)
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended: its parent only has not reaped it yet
        return stat.read().split()[2] != "Z"


def as_from_a_terminal() -> None:
    """In the child, before exec: Ctrl-C's default disposition, as a run started from a shell has it.

    A child inherits ignored signals; when this suite runs, an earlier test's library may have left SIGINT
    ignored in the parent, and a Python started with SIGINT ignored never raises KeyboardInterrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_stops_the_servers_its_fixtures_started(tmp_path, signum):
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "interrupts", "-p", "no:cacheprovider",
                            "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_child.py")],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           preexec_fn=as_from_a_terminal)
    pid_file, running = tmp_path / "base" / "pid", tmp_path / "base" / "running"
    deadline = time.monotonic() + 60
    while not running.exists() and time.monotonic() < deadline:  # a signal before the yield skips any teardown
        time.sleep(0.2)
    assert running.exists() and pid_file.exists(), run.communicate(timeout=30)[0]
    server = int(pid_file.read_text())
    assert alive(server)
    run.send_signal(signum)
    output = run.communicate(timeout=60)[0].decode()
    time.sleep(0.5)
    assert not alive(server), output
