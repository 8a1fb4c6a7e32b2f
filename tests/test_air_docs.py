"""The examples in the AIR modules' docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("pandas")

pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module

MODULES = ["raylite.air.checkpoint", "raylite.air.config", "raylite.data.preprocessors._base",
           "raylite.data.preprocessors._scalers", "raylite.data.preprocessors._concatenator",
           "raylite.data.datasource", "raylite.train._torch_predictor"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name.endswith("_torch_predictor"):
        pytest.importorskip("torch")
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
