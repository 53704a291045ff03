"""Head roles against per-example statistics computed here from unbatched captures."""

from __future__ import annotations

import json
import math
import string

import numpy as np
import pytest

from bertology_widgets.core.capturing import capture
from bertology_widgets.glue import Example
from bertology_widgets.analyses.head_roles import (BROAD_ENTROPY_THRESHOLD, ROLE_SHARE_THRESHOLD, ROLES, HeadRoles,
                                          assign_roles, head_roles)
from bertology_widgets.testing import tiny_examples, tiny_tokenizer

from bertology_widgets.testing_reference import HEADS, LAYERS, shared_model

TEXTS = ["a good film , with a dull ending .", "great actors !", "the plot is long ; the music is fun",
         "boring", "a charming , funny and sad story about music and scenes"]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def reference(model, tokenizer, texts, causal: bool) -> dict:
    """Mean over all query tokens of all texts, one text at a time, by explicit loops."""
    sums = {k: np.zeros((LAYERS, HEADS)) for k in ("cls", "sep", "punct", "prev", "next", "self", "entropy",
                                                    "distance")}
    counts = {k: 0 for k in sums}
    for text in texts:
        cap = capture(model, tokenizer, text)
        att = cap.attentions.astype(np.float64)  # (layers, heads, q, k)
        n = len(cap.tokens)
        is_sep = np.array([t == "[SEP]" for t in cap.tokens])
        is_punct = np.array([bool(t) and all(c in string.punctuation for c in t) for t in cap.tokens])
        for q in range(n):
            row = att[:, :, q]
            sums["cls"] += row[..., 0]
            sums["sep"] += row[..., is_sep].sum(-1)
            sums["punct"] += row[..., is_punct].sum(-1)
            sums["self"] += row[..., q]
            sums["entropy"] += -(row * np.log(np.clip(row, 1e-12, None))).sum(-1)
            sums["distance"] += (row * np.abs(q - np.arange(n))).sum(-1)
            for k in ("cls", "sep", "punct", "self", "entropy", "distance"):
                counts[k] += 1
            if q > 0:
                sums["prev"] += row[..., q - 1]
                counts["prev"] += 1
            if q < n - 1 and not causal:
                sums["next"] += row[..., q + 1]
                counts["next"] += 1
    return {k: sums[k] / counts[k] for k in sums if counts[k]}


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_batched_measures_match_unbatched_loops(arch, tokenizer):
    model = shared_model(arch)
    examples = [Example(text_a=t, text_b=None, label=0, idx=i) for i, t in enumerate(TEXTS)]
    result = head_roles(model, tokenizer, examples, batch_size=2)
    expected = reference(model, tokenizer, TEXTS, causal=arch == "gpt2")
    for name, values in expected.items():
        np.testing.assert_allclose(result.measures[name], values, rtol=1e-4, atol=1e-5, err_msg=name)
    assert result.shape == (LAYERS, HEADS)
    assert set(np.unique(result.roles)) <= set(ROLES)
    if arch == "gpt2":
        assert result.causal and np.isnan(result.measures["next"]).all()
        assert "next" not in set(result.roles.ravel())
    else:
        assert not np.isnan(result.measures["next"]).any()


def test_roles_follow_the_documented_thresholds():
    shape = (1, 4)
    measures = {k: np.zeros(shape) for k in ("cls", "sep", "punct", "prev", "next", "self", "entropy",
                                              "entropy_ratio", "distance")}
    measures["sep"][0, 0] = ROLE_SHARE_THRESHOLD + 0.1  # dominant share
    measures["prev"][0, 1] = ROLE_SHARE_THRESHOLD - 0.1  # below the share threshold, focused
    measures["entropy_ratio"][0, 1] = BROAD_ENTROPY_THRESHOLD - 0.1
    measures["entropy_ratio"][0, 2] = BROAD_ENTROPY_THRESHOLD + 0.1
    measures["next"][0, 3] = np.nan  # causal: never a role
    measures["cls"][0, 3] = ROLE_SHARE_THRESHOLD
    assert assign_roles(measures).tolist() == [["sep", "mixed", "broad", "cls"]]


def test_results_save_as_npz_and_json_and_load_back(tokenizer, tmp_path):
    result = head_roles(shared_model("gpt2"), tokenizer, tiny_examples(6))
    npz, js = result.save(tmp_path / "out")
    data = np.load(npz)
    assert data["roles"].shape == (LAYERS, HEADS)
    np.testing.assert_allclose(data["cls"], result.measures["cls"])
    payload = json.loads(js.read_text())
    assert all(v is None for row in payload["measures"]["next"] for v in row)  # NaN -> null
    assert sum(payload["role_counts"].values()) == LAYERS * HEADS
    loaded = HeadRoles.load(tmp_path / "out")
    assert loaded.roles.tolist() == result.roles.tolist()
    np.testing.assert_allclose(loaded.measures["entropy"], result.measures["entropy"])
    table = result.table()
    assert len(table.splitlines()) == LAYERS * HEADS + 2 and "roles:" in table


def test_no_examples_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="no examples"):
        head_roles(shared_model("bert"), tokenizer, [])
    assert math.isclose(ROLE_SHARE_THRESHOLD, 0.5)
