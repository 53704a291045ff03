"""The live session's cache budget: past ``cache_mb`` batches are re-scored in full, with the same scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology_widgets.core.layerwise import CacheBudget, LayerCache
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model


def open_session(tokenizer, cache_mb):
    model = tiny_model("bert", initializer_range=1.0, seed=1)
    return ModelSession(model, tokenizer, tiny_examples(48, seed=3), task="sst2", batch_size=8, live=False,
                        cache_mb=cache_mb)


def test_a_tiny_budget_gives_the_same_scores(tokenizer):
    unlimited = open_session(tokenizer, None)
    budget_mb = unlimited.cache_bytes / 2 / 2**20  # room for about half of the batches
    tiny = open_session(tokenizer, budget_mb)
    try:
        assert unlimited.notice == "" and f"cache budget {budget_mb:g} MB" in tiny.notice
        assert 0 < tiny.cache_bytes <= budget_mb * 2**20 < unlimited.cache_bytes
        rng = np.random.default_rng(0)
        for _ in range(15):
            mask = (rng.random((3, 4)) > 0.3).astype(np.float32)
            unlimited.mask, tiny.mask = mask, mask
            assert tiny.score == unlimited.score
            np.testing.assert_array_equal(tiny.predictions, unlimited.predictions)
    finally:
        unlimited.close()
        tiny.close()


def test_zero_budget_keeps_no_cache(tokenizer):
    session = open_session(tokenizer, 0)
    try:
        assert session.cache_bytes == 0 and "0 of 6 batches" in session.notice
    finally:
        session.close()


def test_budget_admits_until_full():
    cache = LayerCache(inputs={}, layer_args=(), layer_kwargs={}, hidden=[torch.zeros(256, 256)],
                       mask=torch.ones(1, 1))  # 256 KiB
    budget = CacheBudget(0.6)
    assert [budget.admit(cache) for _ in range(3)] == [True, True, False]
    assert budget.used == 2 * 2**18 and "2 of 3 batches" in budget.notice
    assert CacheBudget(None).admit(cache) and CacheBudget().notice == ""
    with pytest.raises(ValueError, match="cache_mb"):
        CacheBudget(-1)
