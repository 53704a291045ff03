"""One progress convention: ``progress=True`` a bar, ``False`` nothing, a callable ``(done, total)``."""

from __future__ import annotations

import pytest

from bertology_widgets.analyses.evaluation import evaluate
from bertology_widgets.analyses.head_roles import head_roles
from bertology_widgets.runtime.progress import progress_reporter, shows_bar
from bertology_widgets.testing import tiny_examples
from bertology_widgets.testing_reference import shared_model


def test_a_callable_hears_done_and_total_and_a_second_callback_too():
    heard, also = [], []
    with progress_reporter(lambda d, t: heard.append((d, t)), 3, on_progress=lambda d, t: also.append(d)) as report:
        for _ in report.iterate("abc"):
            pass
    assert heard == [(1, 3), (2, 3), (3, 3)] and also == [1, 2, 3]


def test_update_to_never_goes_back():
    heard = []
    report = progress_reporter(lambda d, t: heard.append(d), 100)
    report.update_to(40)
    report.update_to(30)
    report.update_to(100)
    assert heard == [40, 40, 100]


@pytest.mark.parametrize("progress,bar", [(True, True), (False, False), (None, False),
                                          pytest.param(lambda done, total: None, False, id="callable")])
def test_only_true_asks_for_a_bar(progress, bar, capsys):
    assert shows_bar(progress) is bar
    with progress_reporter(progress, 2, desc="work") as report:
        report.update(2)
    assert ("work" in capsys.readouterr().err) is bar


def test_bar_stays_hidden_off_the_main_process(capsys):
    with progress_reporter(True, 2, desc="work", show_bar=False) as report:
        report.update(2)
    assert "work" not in capsys.readouterr().err


def test_engine_functions_report_batches_to_a_callable(tokenizer, capsys):
    model, examples = shared_model("bert"), tiny_examples(10)
    heard = []
    evaluate(model, tokenizer, examples, batch_size=4, task="sst2", progress=lambda d, t: heard.append((d, t)))
    assert heard == [(1, 3), (2, 3), (3, 3)]
    roles = []
    head_roles(model, tokenizer, examples, batch_size=5, progress=lambda d, t: roles.append((d, t)))
    assert roles == [(1, 2), (2, 2)]
    assert capsys.readouterr().err == ""  # a callable replaces the bar
