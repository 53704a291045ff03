"""The shared results cache: computed once, atomic, corrupt and foreign entries rebuilt, shared by sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bertology_widgets.runtime import results_cache as rc
from bertology_widgets.session import ModelSession
from bertology_widgets.testing import tiny_examples, tiny_model

VALUE = {"importance": np.arange(6, dtype=np.float32).reshape(2, 3), "steps": [{"score": {"acc": 0.5}}], "n": 3}


def counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def entry(kind, parts) -> Path:
    return rc.entry_path(kind, rc.result_key(kind, parts), rc.results_dir())


def test_a_result_is_computed_once_then_read_back_exactly():
    compute, calls = counting(VALUE)
    first, hit1 = rc.cached_result("importance", {"model": "m", "n": 1}, compute)
    second, hit2 = rc.cached_result("importance", {"model": "m", "n": 1}, compute)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    for got in (first, second):
        assert got["importance"].dtype == np.float32 and np.array_equal(got["importance"], VALUE["importance"])
        assert got["steps"] == VALUE["steps"] and got["n"] == 3
    assert rc.lookup("importance", {"model": "m", "n": 1})["n"] == 3
    assert rc.lookup("importance", {"model": "m", "n": 2}) is None  # other options, other entry
    assert not list(rc.results_dir().glob("*.tmp"))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "other_format"])
def test_a_corrupt_or_foreign_entry_is_ignored_and_rebuilt(damage):
    parts = {"model": "m"}
    rc.cached_result("importance", parts, lambda: VALUE)
    path = entry("importance", parts)
    text = path.read_text()
    if damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "foreign":  # a valid entry of another key copied over this one
        rc.cached_result("importance", {"model": "other"}, lambda: {"n": 99})
        path.write_text(entry("importance", {"model": "other"}).read_text())
    else:
        data = json.loads(text)
        data["format"] = "something-else"
        path.write_text(json.dumps(data))
    assert rc.lookup("importance", parts) is None
    compute, calls = counting(VALUE)
    value, hit = rc.cached_result("importance", parts, compute)
    assert not hit and len(calls) == 1 and value["n"] == 3
    assert rc.lookup("importance", parts)["n"] == 3  # rewritten


def test_the_cache_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("BERTOLOGY_RESULTS_DIR", "off")
    compute, calls = counting(VALUE)
    rc.cached_result("importance", {}, compute)
    rc.cached_result("importance", {}, compute)
    assert len(calls) == 2 and rc.lookup("importance", {}) is None


def test_processes_starting_at_once_compute_a_result_once(tmp_path):
    log = tmp_path / "computed.log"
    script = textwrap.dedent(f"""
        import time
        from bertology_widgets.runtime.results_cache import cached_result

        def compute():
            with open({str(log)!r}, "a") as f:
                f.write("x\\n")
            time.sleep(1.0)  # long enough for every process to queue on the lock
            return {{"value": 42}}

        value, hit = cached_result("masking_curve", {{"model": "shared"}}, compute)
        print(value["value"], hit)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert log.read_text().count("x") == 1
    assert sorted(o[1] for o in outputs) == ["False", "True", "True", "True"]
    assert all(o[0] == "42" for o in outputs)


def test_the_weights_digest_follows_the_tensors():
    a, b = tiny_model("bert", seed=0), tiny_model("bert", seed=0)
    assert rc.weights_digest(a) == rc.weights_digest(b)
    with __import__("torch").no_grad():
        next(b.parameters()).add_(1.0)
    assert rc.weights_digest(a) != rc.weights_digest(b)


def open_session(tokenizer, **kwargs):
    return ModelSession(tiny_model("bert", num_layers=2, num_heads=4, initializer_range=1.0, seed=0), tokenizer,
                        tiny_examples(16), task="sst2", batch_size=8, live=False, **kwargs)


def test_a_second_session_gets_importance_and_the_curve_from_the_cache(tokenizer, monkeypatch):
    first = open_session(tokenizer)
    first.compute_importance(background=False)
    first.compute_masking_curve(background=False, random_seeds=(0,))
    assert not first.analysis_cached and first.analysis_error == ""

    import bertology_widgets.analyses.importance as importance_module
    import bertology_widgets.analyses.masking_curve as masking_module

    def refuse(*args, **kwargs):
        raise AssertionError("computed although the result was cached")

    monkeypatch.setattr(importance_module, "head_importance", refuse)
    monkeypatch.setattr(masking_module, "masking_curve", refuse)
    second = open_session(tokenizer)
    assert second.load_shared_results(random_seeds=(0,)) == ["importance", "masking curve"]
    assert second.analysis_cached and "shared cache" in second.analysis_status
    assert np.array_equal(second.entropy, first.entropy) and second.curve == first.curve
    assert np.array_equal(second.importance, first.importance)
    second.compute_importance(background=False)  # an explicit request is served from the cache too
    assert second.analysis_cached and second.analysis_error == ""
    second.toggle_head(0, 0)  # another mask is another entry: computing it is refused here
    second.compute_importance(background=False)
    assert "computed although" in second.analysis_error and not second.analysis_cached


def test_another_model_finds_nothing(tokenizer):
    first = open_session(tokenizer)
    first.compute_importance(background=False)
    other = ModelSession(tiny_model("bert", num_layers=2, num_heads=4, initializer_range=1.0, seed=1), tokenizer,
                         tiny_examples(16), task="sst2", batch_size=8, live=False)
    assert other.load_shared_results() == [] and other.importance is None and not other.analysis_cached
