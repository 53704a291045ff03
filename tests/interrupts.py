"""A pytest plugin: a run stopped by SIGTERM (a timeout, CI's kill) tears down like one stopped by Ctrl-C.

pytest turns Ctrl-C (SIGINT) into an orderly stop that runs every fixture's teardown, so the servers and
kernels that fixtures started are stopped. SIGTERM would end the process at once and leave them running;
here it raises KeyboardInterrupt in the main thread instead, so the same teardown runs.
"""

from __future__ import annotations

import signal
import threading


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def _install() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def pytest_configure(config):
    _install()


def pytest_runtest_setup(item):
    _install()  # again before every test: a library a test loaded may have put its own handler in place
