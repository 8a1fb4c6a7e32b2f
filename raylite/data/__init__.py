"""raylite.data: distributed datasets on Arrow blocks (the book's Ray Data).

    import raylite as ray

    items = [{"name": str(i), "data": i} for i in range(10000)]
    ds = ray.data.from_items(items)
    ds.show(5)                                       # ArrowRow({'name': '0', 'data': 0}) ...
    squares = ds.map(lambda x: x["data"] ** 2)       # lazy; plain ints
    evens = squares.filter(lambda x: x % 2 == 0)
    evens.count()                                    # 5000: one fused task per block
    print(evens.flat_map(lambda x: [x, x ** 3]).take(10))

    ds.window(blocks_per_window=2).map(...).show()   # a DatasetPipeline: windows overlap

Two conventions, chosen by ``RAYLITE_API`` (read at import) or, in code,
``ray.data.DataContext.get_current().api`` before the datasets are created:

    unset / 1   the book's Ray 1.9: range(3) rows 0, 1, 2; batches lists or DataFrames
    2           Ray 2.x: range(3) rows {"id": 0}...; from_items([5]) {"item": 5}; batches
                dicts of numpy arrays; schema() a Schema printed as Ray prints it

Both: take_batch, iter_rows, schema().names/.types, ``raylite.data.expressions`` (col, lit)
in filter(expr=...) and with_column, ``local://`` paths, materialize(), stats().

Creation: from_items, range, range_table, range_tensor, from_pandas, from_numpy, from_arrow,
from_dask, from_torch, read_parquet, read_csv, read_json, read_text, read_numpy. Everything
else is a method of Dataset (groupby gives GroupedData) or DatasetPipeline; aggregations for
``aggregate()`` are in ``raylite.data.aggregate``. pyarrow, numpy and pandas are imported on
first use, and only where needed: the book's examples run on plain Python rows.
"""

from __future__ import annotations

import importlib

from raylite.data._block import ArrowRow, BlockMetadata
from raylite.data.context import DataContext, ExecutionOptions
from raylite.data._dataset import Dataset, MaterializedDataset
from raylite.data._plan import ExecutionStats
from raylite.data._read import (from_arrow, from_items, from_numpy, from_pandas, range,
                                range_table, range_tensor, read_csv, read_json, read_numpy,
                                read_parquet, read_text)

# loaded on first use, to keep `import raylite.data` (and every worker that unpickles a stage)
# light: name -> (module, attribute or None for the module itself)
_LAZY = {
    "DatasetPipeline": ("raylite.data._pipeline", "DatasetPipeline"),
    "ActorPoolStrategy": ("raylite.data._actors", "ActorPoolStrategy"),
    "GroupedData": ("raylite.data._aggregate", "GroupedData"),
    "aggregate": ("raylite.data.aggregate", None),
    "expressions": ("raylite.data.expressions", None),
    "context": ("raylite.data.context", None),
    "Schema": ("raylite.data._schema", "Schema"),
    "DataIterator": ("raylite.data._iterator", "DataIterator"),
    "preprocessors": ("raylite.data.preprocessors", None),
    "datasource": ("raylite.data.datasource", None),
    "Datasource": ("raylite.data.datasource", "Datasource"),
    "ReadTask": ("raylite.data.datasource", "ReadTask"),
    "read_datasource": ("raylite.data.datasource", "read_datasource"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'raylite.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def from_dask(df):
    """A tabular dataset with one block per partition of a ``dask.dataframe.DataFrame``.

    Example:
        >>> import dask.dataframe as dd, pandas as pd, raylite as ray
        >>> ray.data.from_dask(dd.from_pandas(pd.DataFrame({"a": [1, 2]}), npartitions=2)).count()
        2
    """
    from raylite.data._convert import from_dask as convert
    return convert(df)


def from_torch(dataset):
    """A dataset of ``{"item": sample}`` rows from a torch Dataset (map-style or iterable)."""
    from raylite.data._convert import from_torch as convert
    return convert(dataset)


DatasetContext = DataContext  # the Ray 1.x/2.0 name

__all__ = [
    "Dataset", "MaterializedDataset", "DatasetPipeline", "DataContext", "DatasetContext",
    "ExecutionOptions", "ArrowRow", "BlockMetadata", "Schema", "DataIterator",
    "ActorPoolStrategy", "ExecutionStats", "GroupedData", "aggregate", "expressions", "context",
    "from_items", "range", "range_table", "range_tensor", "from_pandas", "from_numpy",
    "from_arrow", "from_dask", "from_torch",
    "read_parquet", "read_csv", "read_json", "read_text", "read_numpy",
]
