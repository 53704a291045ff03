"""Memory per kernel: weights stay memory-mapped, freed memory goes back, a sparser layer cache scores the same."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bertology_widgets.runtime.memory import release_freed_memory
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model


def file_mappings(name: str) -> list[tuple[int, int]]:
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith(name):
                low, high = (int(v, 16) for v in line.split()[0].split("-"))
                spans.append((low, high))
    return spans


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_loaded_weights_are_the_mapped_file_not_a_copy(tmp_path, tokenizer):
    from bertology_widgets.models.loading import load_model

    folder = tmp_path / "tiny"
    tiny_model("bert", num_layers=2, num_heads=4).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model, _ = load_model(str(folder), device="cpu")
    spans = file_mappings(str((folder / "model.safetensors").resolve()))
    outside = [name for name, p in model.named_parameters() if not any(lo <= p.data_ptr() < hi for lo, hi in spans)]
    assert spans and outside == [], f"copied out of model.safetensors: {outside}"


def test_release_freed_memory_runs_at_most_twice_a_second():
    if not release_freed_memory(force=True):
        pytest.skip("not glibc")
    assert release_freed_memory() is False
    assert release_freed_memory(force=True) is True


def test_a_session_with_a_sparser_layer_cache_scores_the_same(tokenizer):
    def open_session(every):
        model = tiny_model("bert", num_layers=4, num_heads=4, initializer_range=1.0, seed=0)
        return ModelSession(model, tokenizer, tiny_examples(24), task="sst2", batch_size=8, live=False,
                            cache_every=every)

    dense, sparse = open_session(1), open_session(2)
    for layer, head in [(3, 0), (1, 2), (2, 1), (0, 3), (3, 0)]:
        dense.toggle_head(layer, head)
        sparse.toggle_head(layer, head)
        assert sparse.score == dense.score and np.array_equal(sparse.predictions, dense.predictions)
    assert 0 < sparse.cache_bytes < dense.cache_bytes


def test_cap_onednn_caches_sets_only_what_the_user_left_unset(monkeypatch):
    from bertology_widgets.runtime.memory import ONEDNN_CACHE_VARIABLES, cap_onednn_caches

    primitives, computations = ONEDNN_CACHE_VARIABLES
    monkeypatch.delenv(primitives, raising=False)
    monkeypatch.setenv(computations, "1024")
    assert cap_onednn_caches(8) == {primitives: "8"}
    assert os.environ[primitives] == "8" and os.environ[computations] == "1024"
    assert cap_onednn_caches(4) == {}  # now both are set: nothing changes
    assert os.environ[primitives] == "8"


BF16_SHAPES = """
import bertology_widgets, torch
lin = torch.nn.Linear(64, 64).to(torch.bfloat16)
with torch.no_grad():
    for rows in [*range(2, 2 + {count}), 2]:  # {count} shapes, then the first one again
        lin(torch.randn(rows, 64, dtype=torch.bfloat16))
"""


def onednn_creations(count: int, **env) -> list[str]:
    """oneDNN's verbose "create" records (cache_hit / cache_miss) of a fresh process running bf16 linears."""
    from bertology_widgets.runtime.memory import ONEDNN_CACHE_VARIABLES

    environ = {k: v for k, v in os.environ.items() if k not in ONEDNN_CACHE_VARIABLES}
    done = subprocess.run([sys.executable, "-c", BF16_SHAPES.format(count=count)], capture_output=True, text=True,
                          env={**environ, "ONEDNN_VERBOSE": "profile_create", **env}, timeout=120, check=True)
    return [line.split(",")[3] for line in done.stdout.splitlines() if ",create:" in line]


def test_importing_the_package_caps_onednn_primitive_cache_unless_the_user_sized_it():
    """oneDNN keeps a compiled primitive per bf16 matmul shape (1024 by default): ~45 MiB per scoring kernel.

    After the cap's 16 shapes and 4 more, the first shape is built again;
    with the user's own ONEDNN_PRIMITIVE_CACHE_CAPACITY it is found in the cache.
    """
    capped = onednn_creations(20)
    if not capped:
        pytest.skip("torch runs bf16 linears without oneDNN on this CPU")
    assert len(capped) == 21 and capped[-1] == "create:cache_miss"
    assert onednn_creations(20, ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024")[-1] == "create:cache_hit"
    assert onednn_creations(8)[-1] == "create:cache_hit"  # within the cap: reused
