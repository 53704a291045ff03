"""The session's pipeline part: computed on a worker, published on the main thread, with its mask (unit)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bertology_widgets.analyses.pipeline import PipelineResult

QUICK = dict(tasks=("upos", "deprel"), max_sentences=12, max_iter=5)


@pytest.fixture()
def session(tiny_session):
    return tiny_session


def test_nothing_is_computed_until_asked(session):
    assert session.pipeline is None and session.pipeline_part.pipeline_mask is None


def test_the_result_lands_on_the_main_thread_with_its_mask(session):
    assigned_on = []
    session.observe(lambda change: assigned_on.append(threading.current_thread()), "pipeline")
    thread = session.compute_pipeline(**QUICK)
    thread.join(300)
    assert session.pipeline is None  # the worker never assigns: the dispatcher does, when drained
    session.wait(60, analysis=True)
    assert isinstance(session.pipeline, PipelineResult) and session.pipeline.accuracy.shape == (2, 3)
    assert assigned_on == [threading.main_thread()]
    np.testing.assert_array_equal(session.pipeline_part.pipeline_mask, np.ones((2, 4)))
    assert session.pipeline_part.pipeline_unmasked is session.pipeline  # nothing masked: the same result
    assert not session.pipeline_part.pipeline_stale


def test_a_mask_change_makes_it_stale_and_a_recompute_keeps_the_unmasked_overlay(session):
    session.compute_pipeline(background=False, **QUICK)
    mask = np.ones((2, 4), dtype=np.float32)
    mask[1] = 0
    session.mask = mask
    assert session.pipeline_part.pipeline_stale
    session.compute_pipeline(background=False, **QUICK)
    part = session.pipeline_part
    assert not part.pipeline_stale and part.pipeline.heads_masked == 4
    np.testing.assert_array_equal(part.pipeline_mask, mask)
    assert part.pipeline_unmasked is not None and part.pipeline_unmasked.heads_masked == 0
    np.testing.assert_array_equal(part.pipeline.accuracy[:, 0], part.pipeline_unmasked.accuracy[:, 0])
