"""``bertology explain`` on the default fine-tuned MiniLM, end to end in a subprocess (integration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.minilm]


def test_ig_word_scores_add_up_to_the_logit_difference():
    """The issue's must-show: per-word IG scores sum to F(x) - F(baseline) within 5 %."""
    out = subprocess.run([sys.executable, "-m", "bertology_widgets.cli", "explain", "--text",
                          "a charming and affecting journey", "--method", "ig", "--json"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ), check=True).stdout
    result = json.loads(out)
    assert result["words"] == ["a", "charming", "and", "affecting", "journey"]
    assert result["label"] == "positive" and result["completeness_gap"] < 0.05
    assert sum(result["scores"]) == pytest.approx(result["difference"], rel=0.05)
    assert max(result["scores"]) == result["scores"][1]  # "charming" carries the most
