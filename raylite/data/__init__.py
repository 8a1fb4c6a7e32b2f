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

Creation: from_items, range, range_table, from_pandas, from_numpy, from_arrow,
read_parquet, read_csv, read_json, read_text. Everything else is a method of Dataset or
DatasetPipeline. pyarrow and pandas are imported on first use.
"""

from __future__ import annotations

from raylite.data._block import ArrowRow, BlockMetadata
from raylite.data._dataset import Dataset
from raylite.data._pipeline import DatasetPipeline
from raylite.data._plan import DataContext
from raylite.data._read import (from_arrow, from_items, from_numpy, from_pandas, range,
                                range_table, read_csv, read_json, read_parquet, read_text)

DatasetContext = DataContext  # the Ray 1.x/2.0 name

__all__ = [
    "Dataset", "DatasetPipeline", "DataContext", "DatasetContext", "ArrowRow", "BlockMetadata",
    "from_items", "range", "range_table", "from_pandas", "from_numpy", "from_arrow",
    "read_parquet", "read_csv", "read_json", "read_text",
]
