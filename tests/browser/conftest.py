"""Fixtures for real-browser tests (JupyterLab, Notebook 7, Voilà in headless Chromium).

Session-scoped: ``jupyter_env`` (isolated config + checked kernel), ``browser_root``
(the servers' root dir; put notebooks there), ``lab_server``, ``nb7_server``,
``chromium_browser``.  Function-scoped: ``jupyter_server`` (``jupyter_server("lab")`` -> the
Lab or Notebook 7 server, for tests parametrised over both), ``page`` (fresh context, 1400x1000,
screenshot + logs to ``artifacts/browser/`` on failure), ``browser_log``
(console messages, page errors, requests that left 127.0.0.1) and
``voila_server`` (a factory: ``voila_server(notebook_path) -> ServerProcess``).
Every test in this folder is marked ``browser``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import harness as h

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict]()


def _failed(request) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def _started_servers():
    """Every server started in this session, for log collection and clean-up."""
    servers: list[h.ServerProcess] = []
    yield servers
    for server in list(servers):  # safety net; each fixture stops its own servers first
        server.stop()


@pytest.fixture(scope="session")
def browser_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-home")


@pytest.fixture(scope="session")
def jupyter_env(browser_home) -> dict[str, str]:
    """Environment for the servers: private config/data/runtime dirs, this venv's kernel."""
    env = h.isolated_jupyter_env(browser_home / "jupyter")
    # The kernels make the machine's own precision choice, as users' kernels do (bf16 where the
    # CPU has it), not the rest of the suite's fp32 pin; test_click_burst checks it against the CLI.
    env.pop("BERTOLOGY_AUTO_PRECISION", None)
    h.check_kernelspec(env)
    return env


@pytest.fixture(scope="session")
def browser_root(tmp_path_factory) -> Path:
    """Root dir of the Lab and Notebook 7 servers; write or copy notebooks here."""
    return tmp_path_factory.mktemp("browser-root")


@contextlib.contextmanager
def _running(started: list, name: str, argv, ready_path: str, cwd: Path, env: dict, log_dir: Path):
    """A server for the duration of the block, listed in ``started`` meanwhile."""
    server = h.start_server(name, argv, ready_path, cwd, env, log_dir)
    started.append(server)
    try:
        yield server
    finally:
        server.stop()
        started.remove(server)


_JUPYTER_APPS = {"lab": (h.lab_argv, "lab"), "nb7": (h.nb7_argv, "tree")}


def _session_server(flavour: h.Flavour, root: Path, env: dict, home: Path, started: list):
    argv, ready_path = _JUPYTER_APPS[flavour]
    with _running(started, flavour, lambda port: argv(port, root), ready_path, root, env, home / "logs") as server:
        yield server


@pytest.fixture(scope="session")
def lab_server(browser_root, jupyter_env, browser_home, _started_servers):
    """A JupyterLab server (no token, no news, no update check) rooted at ``browser_root``."""
    yield from _session_server("lab", browser_root, jupyter_env, browser_home, _started_servers)


@pytest.fixture(scope="session")
def nb7_server(browser_root, jupyter_env, browser_home, _started_servers):
    """A Notebook 7 server (no token) rooted at ``browser_root``."""
    yield from _session_server("nb7", browser_root, jupyter_env, browser_home, _started_servers)


@pytest.fixture
def jupyter_server(request):
    """Factory: ``jupyter_server("lab" | "nb7")`` -> that session server (started on first use)."""

    def get(flavour: h.Flavour) -> h.ServerProcess:
        return request.getfixturevalue(f"{flavour}_server")

    return get


@pytest.fixture
def voila_server(browser_root, jupyter_env, browser_home, _started_servers):
    """Factory: ``voila_server(notebook, *extra_args)`` serves one notebook with Voilà.

    ``notebook`` is a path, absolute or relative to ``browser_root``.  Voilà runs
    in the notebook's folder; every server started is stopped after the test.
    """
    with contextlib.ExitStack() as stack:

        def start(notebook, *extra_args: str) -> h.ServerProcess:
            nb = browser_root / notebook  # an absolute ``notebook`` wins
            return stack.enter_context(_running(
                _started_servers, "voila", lambda port: [*h.voila_argv(nb, port), *extra_args],
                h.VOILA_READY_PATH, nb.parent, jupyter_env, browser_home / "logs",
            ))

        yield start


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium_browser():
    """Headless Debian Chromium driven by Playwright (no ``playwright install``)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(h.CHROMIUM_PATH).exists():
        pytest.skip(f"no Chromium at {h.CHROMIUM_PATH} (make chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=h.CHROMIUM_PATH, headless=True,
            args=[*h.CHROMIUM_ARGS, h.CHROMIUM_OFFLINE_ARG],
        )
        yield browser
        browser.close()


@dataclass
class BrowserLog:
    """What the page said: console messages, uncaught errors, requests off 127.0.0.1."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [m for m in self.console if m.startswith("[error]")]

    def unexpected_page_errors(self) -> list[str]:
        """Uncaught page errors, less the known ones of Jupyter itself."""
        return h.unexpected_page_errors(self.page_errors)

    def text(self) -> str:
        return "\n".join(
            ["# console", *self.console, "# page errors", *self.page_errors,
             "# external requests", *self.external_requests]
        )


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def page(chromium_browser, browser_log, request, _started_servers):
    """A fresh browser context and page per test (1400x1000).

    On failure: a full-page screenshot, the browser log and the logs of the
    running servers go to ``artifacts/browser/<test>.*``.  Afterwards the kernels
    the test started on the shared Lab / Notebook 7 servers are shut down.
    """
    context = chromium_browser.new_context(viewport=h.VIEWPORT)
    context.set_default_timeout(h.UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(h.UI_TIMEOUT_MS)
    pg = context.new_page()
    pg.on("console", lambda m: browser_log.console.append(f"[{m.type}] {m.text}"))
    pg.on("pageerror", lambda e: browser_log.page_errors.append(e.stack or str(e)))
    pg.on("request", lambda r: None if h.is_local_url(r.url) else browser_log.external_requests.append(r.url))
    yield pg
    if _failed(request):
        _save_failure_artifacts(request.node.nodeid, pg, browser_log, _started_servers)
    context.close()
    for server in _started_servers:
        if server.name in ("lab", "nb7") and server.proc.poll() is None:
            h.shutdown_kernels(server.base_url)


def _save_failure_artifacts(nodeid, pg, log: BrowserLog, servers) -> None:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]
    h.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        shot = h.screenshot(pg, f"FAILED-{name}")
        print(f"\nscreenshot: {shot}")
    except Exception as exc:  # the page may be gone; keep the other artifacts
        print(f"\nno screenshot: {exc}")
    (h.ARTIFACTS_DIR / f"FAILED-{name}.browser.log").write_text(log.text())
    for server in servers:
        shutil.copyfile(server.log_path, h.ARTIFACTS_DIR / f"FAILED-{name}.{server.name}.log")


@pytest.fixture(scope="session")
def default_model():
    """The default model's folder, built first if the cache lacks it (minutes, once per machine)."""
    from bertology_widgets.models.default_model import ensure_default_model

    return ensure_default_model(progress=False)
