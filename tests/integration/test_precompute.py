"""``bertology precompute`` fills the shared cache; a second process shows importance, the curve and the
baseline score from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GLUE = REPO.parent / "shared" / "glue"
N = 16

pytestmark = [pytest.mark.slow, pytest.mark.minilm]

SECOND_KERNEL = textwrap.dedent(f"""
    import json
    from bertology_widgets import Dashboard, ModelSession

    session = ModelSession.from_pretrained(task="sst2", max_examples={N})
    session.wait(300)
    board = Dashboard(session)
    panel = board.importance
    print(json.dumps({{"cached": session.analysis_cached, "status": session.analysis_status,
                       "importance": None if session.importance is None else list(session.importance.shape),
                       "entropy": session.entropy is not None, "steps": len(session.curve.get("steps", [])),
                       "curve_drawn": bool(panel.curve_line.visible), "slider_enabled": not panel.slider.disabled,
                       "baseline_cached": session.live.baseline_from_cache, "score": session.baseline_score}}))
""")


def run(args, env):
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_precompute_then_a_second_process_shows_the_results_from_the_cache(tmp_path, default_model_dir):
    glue = os.environ.get("BERTOLOGY_GLUE_DIR") or str(GLUE)
    if not Path(glue).is_dir():
        pytest.skip("no GLUE data: set BERTOLOGY_GLUE_DIR")
    env = {**os.environ, "BERTOLOGY_GLUE_DIR": glue, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "bertology_widgets.cli", "precompute", "--task", "sst2", "--max-examples", str(N)]
    first = run(cli, env)
    assert "head importance: computed" in first and "masking curve: computed" in first
    assert "baseline score: computed" in first
    assert "already in the cache" in run(cli, env)  # a second precompute computes nothing
    shown = json.loads(run([sys.executable, "-c", SECOND_KERNEL], env).strip().splitlines()[-1])
    assert shown["cached"] and "shared cache" in shown["status"]
    assert shown["importance"] == [6, 12] and shown["entropy"] and shown["steps"] >= 1
    assert shown["curve_drawn"] and shown["slider_enabled"]
    assert shown["baseline_cached"] and set(shown["score"]) == {"accuracy"}  # the baseline came from precompute


@pytest.fixture()
def default_model_dir():
    from bertology_widgets.models.default_model import ensure_default_model

    return ensure_default_model(progress=False)
