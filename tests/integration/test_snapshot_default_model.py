"""The default model's snapshot: within the size budget (MiniLM, 6 x 12 heads)."""

from __future__ import annotations

import numpy as np

from bertology_widgets.session import ModelSession
from bertology_widgets.snapshot import BUDGET_BYTES, MaskState, collect, snapshot_page


def test_default_model_snapshot_is_within_budget(tmp_path):
    """MiniLM (6 x 12 heads) on the longest SST-2 dev review (55 tokens) with a 10-step curve: the worst case."""
    session = ModelSession.from_pretrained(max_examples=8, live=False, shared_results=False)
    try:
        session.text = "a " * 52 + "film"
        data = collect(session, with_curve=False)
        rng = np.random.default_rng(0)
        data.states += [MaskState(f"step {i}", (rng.random(data.mask.shape) > i / 12).astype(np.float32),
                                  dict(data.baseline), i) for i in range(10)]
        data.importance = rng.random(data.mask.shape).astype(np.float32)
        path = tmp_path / "page.html"
        path.write_text(snapshot_page(data), encoding="utf-8")
    finally:
        session.close()
    assert data.attentions.shape[:2] == (6, 12) and data.attentions.shape[2] == 55
    print(f"snapshot: {path.stat().st_size / 1e6:.2f} MB")
    assert path.stat().st_size <= BUDGET_BYTES
