"""The examples in raylite.data's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("pandas")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module

MODULES = ["raylite.data", "raylite.data._dataset", "raylite.data._export",
           "raylite.data._read", "raylite.data._aggregate", "raylite.data.aggregate",
           "raylite.data._actors", "raylite.data._pipeline", "raylite.data._block"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name == "raylite.data":
        pytest.importorskip("dask.dataframe")
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
