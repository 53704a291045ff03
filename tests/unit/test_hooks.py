"""The engine's transient hooks act only in the thread that installed them.

A live session scores in the background while the user calls the model (or
an engine function) from a cell: that forward must not come back gated,
stopped or recorded by the session's hooks.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from bertology_widgets.core.gating import mask_heads
from bertology_widgets.core.hooks import this_thread_only
from bertology_widgets.core.layerwise import LayerwiseRunner
from bertology_widgets.testing import tiny_bound, tiny_model


def logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits


def in_another_thread(hold, enter):
    """Run ``enter()`` (a context manager) in a thread, hold it open until ``hold`` is set; return (thread, ready)."""
    ready = threading.Event()

    def body():
        with enter():
            ready.set()
            hold.wait(30)

    thread = threading.Thread(target=body)
    thread.start()
    assert ready.wait(30)
    return thread


def test_a_mask_held_by_another_thread_does_not_gate_this_threads_forward():
    model = tiny_model("bert", initializer_range=1.0).eval()
    ids = torch.tensor([[101, 7592, 2088, 102]])
    unmasked = logits(model, ids)
    with mask_heads(tiny_bound(model), np.zeros((3, 4), dtype=np.float32)):
        masked = logits(model, ids)
    assert not torch.allclose(masked, unmasked)  # masking really changes the output
    hold = threading.Event()
    thread = in_another_thread(hold, lambda: mask_heads(tiny_bound(model), np.zeros((3, 4), dtype=np.float32)))
    try:
        torch.testing.assert_close(logits(model, ids), unmasked)
    finally:
        hold.set()
        thread.join(30)


def test_a_capture_in_another_thread_neither_stops_nor_records_this_threads_forward():
    model = tiny_model("bert").eval()
    runner = LayerwiseRunner(tiny_bound(model))
    ids = torch.tensor([[101, 7592, 2088, 102]])
    expected = logits(model, ids)
    entered, release, errors, cache = threading.Event(), threading.Event(), [], {}

    def pause(module, args, kwargs):  # the capturing thread waits in layer 0, its capture hooks installed
        entered.set()
        release.wait(30)

    def prepare():
        handle = runner.layers[0].register_forward_pre_hook(this_thread_only(pause), with_kwargs=True)
        try:
            cache["value"] = runner.prepare({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            handle.remove()

    thread = threading.Thread(target=prepare)
    try:
        thread.start()
        assert entered.wait(30)
        torch.testing.assert_close(logits(model, ids), expected)  # not stopped at layer 0, not gated
    finally:
        release.set()
        thread.join(30)
    assert errors == [] and cache["value"].hidden[0].shape == (1, 4, model.config.hidden_size)


def test_this_thread_only_passes_through_in_its_own_thread():
    calls = []
    hook = this_thread_only(lambda *args: calls.append(args) or "changed")
    assert hook(1, 2) == "changed" and calls == [(1, 2)]
    other = []
    thread = threading.Thread(target=lambda: other.append(hook(3)))
    thread.start()
    thread.join()
    assert other == [None] and calls == [(1, 2)]
