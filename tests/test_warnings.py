"""The package's warnings share one base class, and the test suite turns them (and only them) into errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import pytest

import bertology_widgets
from bertology_widgets.core.exceptions import BertologyWarning

ENGINE_MODULES = ("capturing", "labels", "default_model")


@pytest.mark.parametrize("name", ENGINE_MODULES)
def test_every_warning_class_is_a_bertology_warning(name):
    module = importlib.import_module(f"bertology_widgets.{name}")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Warning) and c.__module__ == module.__name__]
    assert classes and all(issubclass(c, BertologyWarning) for c in classes)


def engine_modules():
    """The engine's modules (the top level, without the application's, and glue/)."""
    import bertology_widgets.glue as glue

    for info in pkgutil.iter_modules(bertology_widgets.__path__, "bertology_widgets."):
        if not info.ispkg and info.name.split(".")[1] not in ("cli", "bench", "__main__"):
            yield info.name
    yield from (info.name for info in pkgutil.iter_modules(glue.__path__, "bertology_widgets.glue."))


def test_no_engine_module_defines_a_warning_outside_the_hierarchy():
    for name in engine_modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Warning) and cls.__module__ == module.__name__:
                assert issubclass(cls, BertologyWarning), cls


def test_the_suite_makes_the_package_warnings_errors_and_leaves_others_alone():
    with pytest.raises(BertologyWarning):
        warnings.warn("ours", BertologyWarning)
    with pytest.warns(DeprecationWarning):
        warnings.warn("theirs", DeprecationWarning)
