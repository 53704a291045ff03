"""Helpers for real-browser tests: Jupyter servers as subprocesses, notebooks, page actions.

Everything here waits on conditions (HTTP polls, ``wait_for_selector``,
``wait_for_function``) with bounded timeouts; nothing sleeps for a fixed time.
The fixtures in ``conftest.py`` wire these helpers together; new tests
normally only need ``write_notebook``, ``open_notebook``/``run_all_cells`` and
the ``wait_*`` helpers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "artifacts" / "browser"


def docs_screenshot(name: str) -> Path:
    """Where a README screenshot goes: ``docs/images/`` with ``BERTOLOGY_UPDATE_DOCS=1``, else ``artifacts/browser/``.

    So a plain test run leaves the checked-in pictures alone.
    """
    folder = REPO_ROOT / "docs" / "images" if os.environ.get("BERTOLOGY_UPDATE_DOCS") == "1" else ARTIFACTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name

CHROMIUM_PATH = os.environ.get("BERTOLOGY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Belt and braces: no host name resolves, so nothing a page asks for can leave
# the machine (and no DNS time-outs slow a test down); 127.0.0.1 is unaffected.
CHROMIUM_OFFLINE_ARG = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
VIEWPORT = {"width": 1400, "height": 1000}

# Generous, because the test machine may have two busy cores.  Set
# BERTOLOGY_BROWSER_TIMEOUT_SCALE=2 to stretch every timeout below.
_SCALE = float(os.environ.get("BERTOLOGY_BROWSER_TIMEOUT_SCALE", "1"))
SERVER_START_TIMEOUT_S = 180 * _SCALE
KERNEL_TIMEOUT_MS = int(120_000 * _SCALE)  # kernel start + first execution
UI_TIMEOUT_MS = int(60_000 * _SCALE)  # page load, widget rendering
ROUNDTRIP_TIMEOUT_MS = int(30_000 * _SCALE)  # one widget -> kernel -> widget round trip

Flavour = Literal["lab", "nb7"]

# JupyterLab / Notebook 7 setting overrides used by every server we start.
# * fetchNews "false" + checkForUpdates false: no news toast, no request to the web.
# * windowingMode "none": every cell stays in the DOM, so long notebooks
#   (dashboards) can be inspected and counted without scrolling.
SETTING_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}


# Uncaught page errors that are not ours.  Notebook 7.6's keyboard-shortcuts
# plugin reads ``plugins[id].schema`` of a plugin the settings registry has not
# loaded; it happens on every notebook page, with or without our settings.
KNOWN_PAGE_ERRORS = [
    re.compile(r"Cannot read properties of undefined \(reading 'schema'\)[\s\S]*notebook_core"),
]


def unexpected_page_errors(errors: Sequence[str]) -> list[str]:
    """``errors`` (``message + stack``) minus those in ``KNOWN_PAGE_ERRORS``."""
    return [e for e in errors if not any(p.search(e) for p in KNOWN_PAGE_ERRORS)]


def is_local_url(url: str) -> bool:
    """True for URLs served from this machine (and data:/blob: URLs)."""
    parts = urllib.parse.urlparse(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost", "::1")


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_jupyter_env(home: Path) -> dict[str, str]:
    """Environment for a server that reads no user config/kernels/workspaces.

    Only this venv's ``sys.prefix`` paths stay visible, so the ``python3``
    kernel is the one ``python -m ipykernel install --sys-prefix`` registered.
    The setting overrides are written as ``labconfig/default_setting_overrides.json``
    in the private config dir (read by both JupyterLab and Notebook 7).
    """
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",
        "IPYTHONDIR": home / "ipython",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    labconfig = dirs["JUPYTER_CONFIG_DIR"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "default_setting_overrides.json").write_text(json.dumps(SETTING_OVERRIDES, indent=1))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    env.update({k: str(v) for k, v in dirs.items()})
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # The kernel must import this checkout's package and this venv's libraries.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = sys.prefix
    return env


def check_kernelspec(env: dict[str, str]) -> dict:
    """Assert the ``python3`` kernel the servers will use runs this venv's interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    specs = json.loads(out)["kernelspecs"]
    assert "python3" in specs, f"no python3 kernelspec; run `make setup-test` ({specs})"
    spec = specs["python3"]
    argv0 = spec["spec"]["argv"][0]
    # jupyter_client replaces a bare "python"/"python3" argv[0] with the server's
    # sys.executable, which is this venv's interpreter.
    ok = argv0 in {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"} or (
        Path(argv0).resolve() == Path(sys.executable).resolve()
    )
    assert ok, f"python3 kernel runs {argv0!r}, not this venv's {sys.executable!r}"
    return spec


@dataclass
class ServerProcess:
    """A server subprocess, its URL and its captured log."""

    name: str
    proc: subprocess.Popen
    base_url: str
    log_path: Path
    root_dir: Path
    _log_file: object = field(default=None, repr=False)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:  # pragma: no cover - diagnostic only
            return f"<no log: {exc}>"

    def url(self, path: str = "") -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def stop(self, timeout: float = 30) -> None:
        stop_process_tree(self.proc, timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def stop_process_tree(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process and everything it started (kernels included), then SIGKILL.

    Kernels run in their own sessions (jupyter_client uses start_new_session),
    so the descendants are collected with psutil before the parent goes away.
    """
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # lets the server shut its kernels down
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    alive = [p for p in procs if _is_running(p)]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    if proc.poll() is None:  # pragma: no cover - kill above should have reaped it
        proc.kill()
    proc.wait(timeout=10)


def _is_running(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_http_200(
    url: str, timeout_s: float, proc: subprocess.Popen | None = None, describe=lambda: ""
) -> None:
    """Poll ``url`` until it answers 200; fail with ``describe()`` (the log) otherwise."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    delay = 0.1
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered\n{describe()}")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError) as exc:
            last = repr(exc)
        time.sleep(delay)  # poll interval, not a wait on the outcome
        delay = min(delay * 1.5, 1.0)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s (last: {last})\n{describe()}")


def start_server(
    name: str,
    argv_for_port,
    ready_path: str,
    root_dir: Path,
    env: dict[str, str],
    log_dir: Path,
    timeout_s: float = SERVER_START_TIMEOUT_S,
    attempts: int = 3,
) -> ServerProcess:
    """Start ``argv_for_port(port)`` and wait until ``ready_path`` answers 200.

    A port taken between ``free_port()`` and bind makes the server exit (we pass
    ``port_retries=0``); that is retried on a new port up to ``attempts`` times.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for attempt in range(attempts):
        port = free_port()
        log_path = log_dir / f"{name}-{port}.log"
        log_file = open(log_path, "w")
        proc = subprocess.Popen(
            argv_for_port(port), cwd=root_dir, env=env, stdout=log_file,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        server = ServerProcess(name, proc, f"http://127.0.0.1:{port}/", log_path, root_dir, log_file)
        try:
            wait_for_http_200(server.url(ready_path), timeout_s, proc, server.log_tail)
            return server
        except RuntimeError as exc:  # exited early: maybe the port was taken
            server.stop()
            error = exc
            if "address already in use" not in server.log_tail().lower():
                break
        except BaseException:
            server.stop()
            raise
    raise RuntimeError(f"could not start {name} after {attempt + 1} attempt(s): {error}")


def _common_server_args(port: int, root_dir: Path) -> list[str]:
    return [
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        "--KernelSpecManager.ensure_native_kernel=True",
        "--LabServerApp.open_browser=False",
    ]


def lab_argv(port: int, root_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "jupyter", "lab", *_common_server_args(port, root_dir),
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]


def nb7_argv(port: int, root_dir: Path) -> list[str]:
    return [sys.executable, "-m", "jupyter", "notebook", *_common_server_args(port, root_dir)]


def voila_argv(notebook: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--Voila.open_browser=False",
        "--show_tracebacks=True",
    ]


VOILA_READY_PATH = "voila/static/voila.js"  # a static file: polling "/" would run the notebook


def kernel_ids(base_url: str) -> list[str]:
    with urllib.request.urlopen(base_url.rstrip("/") + "/api/kernels", timeout=30) as resp:
        return [k["id"] for k in json.load(resp)]


def shutdown_kernels(base_url: str) -> None:
    """Stop every kernel of a Jupyter server (between tests, to spare CPU)."""
    for kid in kernel_ids(base_url):
        req = urllib.request.Request(f"{base_url.rstrip('/')}/api/kernels/{kid}", method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=60).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise


# --------------------------------------------------------------------------- notebooks


def write_notebook(path: Path | str, cells: Sequence, kernel_name: str = "python3") -> Path:
    """Write a notebook of ``cells``: code strings, ``("markdown", text)`` or nbformat cells."""
    path = Path(path)
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if isinstance(cell, str):
            nb.cells.append(nbformat.v4.new_code_cell(cell))
        elif isinstance(cell, tuple):
            kind, source = cell
            maker = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                     "raw": nbformat.v4.new_raw_cell}[kind]
            nb.cells.append(maker(source))
        else:
            nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return path


# --------------------------------------------------------------------------- page helpers

NEWS_TOAST = ".Toastify__toast:has-text('news')"


def dismiss_news_toast(page, timeout_ms: int = 0) -> bool:
    """Close JupyterLab's "get notified about official Jupyter news?" toast if shown.

    The servers started here switch the news off, so this is normally a no-op;
    pass ``timeout_ms`` to wait for the toast instead of checking once.
    Returns True if a toast was dismissed.
    """
    toast = page.locator(NEWS_TOAST)
    if timeout_ms:
        try:
            toast.first.wait_for(state="visible", timeout=timeout_ms)
        except Exception:
            return False
    if toast.count() == 0:
        return False
    no = toast.first.locator("button:has-text('No')")
    if no.count():
        no.first.click()
    else:
        toast.first.locator(".Toastify__close-button, button[aria-label*='close' i]").first.click()
    toast.first.wait_for(state="detached", timeout=UI_TIMEOUT_MS)
    return True


def _notebook_url(base_url: str, prefix: str, path: str) -> str:
    return base_url.rstrip("/") + prefix + urllib.parse.quote(str(path).lstrip("/"))


def open_notebook_lab(page, base_url: str, path: str, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """Open ``path`` (relative to the server root) in JupyterLab; wait for an idle kernel.

    ``?reset`` drops the saved workspace, so tabs from earlier tests do not reopen.
    """
    page.goto(_notebook_url(base_url, "/lab/tree/", path) + "?reset", wait_until="commit",
              timeout=UI_TIMEOUT_MS)
    _wait_notebook_open(page, path, timeout_ms)


def open_notebook_nb7(page, base_url: str, path: str, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """Open ``path`` (relative to the server root) in Notebook 7; wait for an idle kernel."""
    page.goto(_notebook_url(base_url, "/notebooks/", path), wait_until="commit", timeout=UI_TIMEOUT_MS)
    _wait_notebook_open(page, path, timeout_ms)


def open_notebook(page, flavour: Flavour, base_url: str, path: str,
                  timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """``open_notebook_lab`` or ``open_notebook_nb7`` depending on ``flavour``."""
    {"lab": open_notebook_lab, "nb7": open_notebook_nb7}[flavour](page, base_url, path, timeout_ms)


def _wait_notebook_open(page, path: str, timeout_ms: int) -> None:
    # The app bundle can take long to load on a busy machine: wait as long as for a kernel.
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    dismiss_news_toast(page)
    wait_for_kernel_idle(page, path, timeout_ms)


def split_notebook_url(url: str) -> tuple[str, str]:
    """``(base_url, path)`` of a Lab (``…/lab/tree/<path>``) or Notebook 7 (``…/notebooks/<path>``) URL."""
    parts = urllib.parse.urlparse(url)
    m = re.match(r"(.*?)/(?:lab(?:/workspaces/[^/]+)?/tree|notebooks)/(.+)$", parts.path)
    if not m:
        raise ValueError(f"not a notebook URL: {url}")
    return f"{parts.scheme}://{parts.netloc}{m.group(1)}/", urllib.parse.unquote(m.group(2))


def wait_for_session_kernel(base_url: str, path: str, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """Poll the server's ``/api/sessions`` until ``path`` has an idle kernel with a live websocket."""
    deadline = time.monotonic() + timeout_ms / 1000
    last = "no session"
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base_url.rstrip("/") + "/api/sessions", timeout=30) as resp:
            sessions = json.load(resp)
        session = next((s for s in sessions if s.get("path") == path), None)
        kernel = (session or {}).get("kernel") or {}
        if kernel.get("connections", 0) > 0 and kernel.get("execution_state") == "idle":
            return
        last = f"session={session!r}"
        time.sleep(0.25)  # poll interval
    raise TimeoutError(f"no idle, connected kernel for {path!r} after {timeout_ms} ms ({last})")


# The execution indicator in the notebook toolbar (JupyterLab 4 and Notebook 7).
_KERNEL_IDLE_JS = """
() => {
  const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')
          || document.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!el || el.getAttribute('data-status') !== 'idle') return false;
  const prompts = document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt');
  return ![...prompts].some(p => p.textContent.includes('*'));
}
"""


def wait_for_kernel_idle(page, path: str | None = None, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """Wait until the notebook's kernel is started, connected and idle, and no cell shows ``[*]``.

    The toolbar's execution indicator says "idle" even *before* a kernel exists
    (a "Run All" then silently does nothing), so first the server must report a
    kernel for this notebook with a live websocket; then the page must say idle.
    ``path`` (server-relative) defaults to the one in the page URL.
    """
    base_url, url_path = split_notebook_url(page.url)
    wait_for_session_kernel(base_url, url_path if path is None else str(path).lstrip("/"), timeout_ms)
    page.wait_for_function(_KERNEL_IDLE_JS, polling=250, timeout=timeout_ms)


def execution_counts(page) -> list:
    """The prompt numbers of the code cells, in order (None where a cell has not run)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(p => {
             const m = p.textContent.match(/\\[(\\d+)\\]/); return m ? Number(m[1]) : null; })"""
    )


RUN_ALL_COMMAND = "runmenu:run-all"

# JupyterLab and Notebook 7 render a traceback like a stderr stream (same MIME
# type, same classes), so an error output is a stderr output that reads like
# one: IPython's "Traceback (most recent call last)" / "Cell In[n], line m"
# header, or a line starting with an exception name (warnings start with a path).
_ERROR_OUTPUTS_JS = r"""
(floor) => {
  const looksLikeError = t => /Traceback \(most recent call last\)|^\s*Cell In\[\d+\], line \d+/m.test(t)
                              || /^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b/m.test(t);
  return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].filter(cell => {
      const m = (cell.querySelector('.jp-InputPrompt')?.textContent || '').match(/\[(\d+)\]/);
      if (m && Number(m[1]) <= floor) return false;
      return [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .some(o => looksLikeError(o.innerText));
    }).map(cell => cell.querySelector('.jp-OutputArea').innerText);
}
"""

# Code cell prompts: "new" = executed after ``floor``, "running" = shows [*].
_PROMPTS_JS = r"""
(floor) => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
  const counts = prompts.map(p => { const m = p.textContent.match(/\[(\d+)\]/); return m ? Number(m[1]) : null; });
  return {total: prompts.length,
          running: prompts.filter(p => p.textContent.includes('*')).length,
          fresh: counts.filter(c => c !== null && c > floor).length};
}
"""


def error_outputs(page, since_count: int = 0) -> list[str]:
    """Output texts of cells that show a traceback and ran after execution count ``since_count``."""
    return page.evaluate(_ERROR_OUTPUTS_JS, since_count)


def run_all_cells(page, flavour: Flavour, timeout_ms: int = KERNEL_TIMEOUT_MS,
                  raise_on_error: bool = True) -> None:
    """Run every cell with the "Run" menu's "Run All Cells"; wait until the run is over.

    Works for JupyterLab (``flavour="lab"``) and Notebook 7 (``"nb7"``): both
    use Lumino menus whose "Run All Cells" item runs ``runmenu:run-all`` on the
    current notebook.  Call after ``open_notebook_*`` (which waits for the kernel).
    Waits until execution has started, no cell shows ``[*]`` and the kernel is
    idle.  "Run All" stops at a cell that raises; then, if ``raise_on_error``,
    this raises AssertionError with the traceback.
    """
    if flavour not in ("lab", "nb7"):
        raise ValueError(f"flavour must be 'lab' or 'nb7', not {flavour!r}")
    floor = max([c for c in execution_counts(page) if c is not None], default=0)
    if page.evaluate(_PROMPTS_JS, floor)["total"] == 0:
        return
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).first.click()
    item = page.locator(f".lm-Menu-item[data-command='{RUN_ALL_COMMAND}']").first
    item.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    item.click()
    # Started: a cell is queued/running or already has a new count.
    page.wait_for_function(f"(floor) => {{ const s = ({_PROMPTS_JS})(floor); return s.running + s.fresh > 0; }}",
                           arg=floor, polling=250, timeout=UI_TIMEOUT_MS)
    page.wait_for_function(f"(floor) => ({_PROMPTS_JS})(floor).running === 0",
                           arg=floor, polling=250, timeout=timeout_ms)
    wait_for_kernel_idle(page, timeout_ms=timeout_ms)
    state = page.evaluate(_PROMPTS_JS, floor)
    if raise_on_error and state["fresh"] < state["total"]:
        errors = error_outputs(page, floor)
        raise AssertionError(
            f"Run All stopped after {state['fresh']} of {state['total']} code cells:\n"
            + ("\n---\n".join(errors) or "(no traceback shown)")
        )


def assert_no_errors(page) -> None:
    """Fail if any cell shows a traceback or a widget failed to render."""
    errors = error_outputs(page, since_count=0)
    broken = page.locator(".jupyter-widgets:has-text('Error displaying widget')").count()
    assert not errors and not broken, f"cell errors: {errors}; broken widgets: {broken}"


def wait_for_text_change(locator, old_text: str, timeout_ms: int = ROUNDTRIP_TIMEOUT_MS) -> str:
    """Wait until ``locator``'s inner text differs from ``old_text``; return the new text."""
    handle = locator.element_handle(timeout=timeout_ms)
    locator.page.wait_for_function(
        "([el, old]) => el.isConnected && el.innerText !== old",
        arg=[handle, old_text],
        timeout=timeout_ms,
    )
    return locator.inner_text()


def open_voila(page, base_url: str, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """Open a Voilà app and wait until the notebook has run and its widgets are shown."""
    page.goto(base_url, timeout=timeout_ms, wait_until="commit")
    wait_for_voila_ready(page, timeout_ms)


def wait_for_voila_ready(page, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
    """Voilà 0.5 (lab template) shows ``#loading`` while the kernel runs the cells,
    then mounts the page in ``#main``; wait for that and for a widget view."""
    page.wait_for_function(
        "() => !document.querySelector('#loading') && !!document.querySelector('#main')",
        polling=250, timeout=timeout_ms,
    )
    page.wait_for_selector(".jupyter-widgets", timeout=timeout_ms)


def screenshot(page, name: str, locator=None) -> Path:
    """Save a PNG of the page (or of ``locator``'s element) under ``artifacts/browser/``.

    JupyterLab and Notebook 7 scroll inside the notebook panel, so a page
    screenshot shows the viewport only; pass e.g. ``page.locator(".bqplot")``
    to capture one widget whole.
    """
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-150:]
    path = ARTIFACTS_DIR / f"{safe}.png"
    if locator is not None:
        locator.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    return path


class FileOnly:
    """Routes a page so that it reads ``file://`` URLs only; records everything else and every failure."""

    def __init__(self, page):
        self.aborted: list[str] = []
        self.failed: list[str] = []
        self.requested: list[str] = []
        self.dialogs: list[str] = []
        page.route("**/*", self._route)
        page.on("requestfailed", lambda r: self.failed.append(r.url[:120]))
        page.on("request", lambda r: self.requested.append(r.url[:120]))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def _route(self, route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.aborted.append(route.request.url[:120])
            route.abort()
