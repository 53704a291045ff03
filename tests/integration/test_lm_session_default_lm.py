"""A session on the offline default language model (SmolLM2-135M): its settled perplexity after toggles equals
``bertology evaluate --task lm --mask`` on the saved mask, and it opens for a GLUE task only with the clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertology_widgets import ModelSession
from bertology_widgets.cli import main
from bertology_widgets.models.loading import NoClassificationHeadError

pytestmark = pytest.mark.slow
TEXTS = 6


@pytest.fixture(scope="module")
def smollm2_folder():
    """SmolLM2's folder in the model cache, converted first if needed (skipped without gguf or its wheel)."""
    pytest.importorskip("gguf")
    from bertology_widgets.models.default_model import ensure_default_lm

    try:
        return ensure_default_lm(progress=False)
    except ImportError as exc:
        pytest.skip(str(exc))


def test_the_settled_perplexity_after_toggles_equals_evaluate_mask_on_the_saved_mask(smollm2_folder, tmp_path, capsys):
    session = ModelSession.from_pretrained("default-lm", task="lm", max_examples=TEXTS)
    try:
        assert (session.num_layers, session.num_heads) == (30, 9) and session.task == "causal_lm"
        assert "query heads" in session.heads_note and "3 key/value heads" in session.heads_note
        assert session.wait(600)
        baseline = session.baseline_score["perplexity"]
        for layer, head in [(3, 1), (17, 4), (29, 8), (3, 1), (0, 0)]:  # (3, 1) is kept again
            session.toggle_head(layer, head)
        assert session.wait(600)
        session.save_state(tmp_path / "state.json")
        score = dict(session.score)
    finally:
        session.close()
    mask = np.asarray(json.loads((tmp_path / "state.json").read_text())["mask"], dtype=np.float32)
    assert sorted(map(tuple, np.argwhere(mask == 0).tolist())) == [(0, 0), (17, 4), (29, 8)]
    np.save(tmp_path / "mask.npy", mask)
    capsys.readouterr()
    # Both at their defaults: the CLI scores a language model in the batches a live session uses.
    assert main(["evaluate", "--model", "default-lm", "--task", "lm", "--max-examples", str(TEXTS),
                 "--mask", str(tmp_path / "mask.npy"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["perplexity"], result["token_accuracy"]) == (score["perplexity"], score["token_accuracy"])
    assert result["perplexity"] != baseline


def test_the_default_lm_opened_for_sst2_raises_the_clear_error(smollm2_folder):
    with pytest.raises(NoClassificationHeadError, match='task="lm"'):
        ModelSession.from_pretrained("default-lm", task="sst2")
