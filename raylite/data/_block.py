"""Blocks: the unit of data a task reads, transforms and returns.

A block is one of two things:

    pyarrow.Table   tabular rows (dict-like, shown as ``ArrowRow({...})`` as in the book)
    list            non-tabular rows: any Python objects (ints from ``range``, the result of
                    ``ds.map(lambda x: x["data"] ** 2)``, strings from ``read_text``)

Everything that looks inside a block lives here, so the rest of the package only moves blocks
around. pyarrow is imported on first use, never at import time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterable

Block = Any  # pyarrow.Table | list

BATCH_FORMATS = ("default", "native", "numpy", "pandas", "pyarrow")
SIMPLE_COLUMN = "value"  # the column a non-tabular block gets when it must become a table

_pyarrow = None


def pa():
    """The pyarrow module, imported on first use."""
    global _pyarrow
    if _pyarrow is None:
        import pyarrow
        _pyarrow = pyarrow
    return _pyarrow


class ArrowRow(dict):
    """A row of a tabular dataset: a plain dict that prints the way the book shows it.

    Example:
        >>> ArrowRow({"name": "0", "data": 0})
        ArrowRow({'name': '0', 'data': 0})
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ArrowRow({dict.__repr__(self)})"

    def as_pydict(self) -> dict:
        return dict(self)


@dataclass(frozen=True)
class BlockMetadata:
    """What the driver knows about a block without fetching it."""

    num_rows: int
    schema: Any  # pyarrow.Schema for tables, the type of the first row for lists, None if empty
    size_bytes: int


# ------------------------------------------------------------------------------------------
# inspecting blocks
# ------------------------------------------------------------------------------------------
def is_tabular(block: Block) -> bool:
    return type(block) is not list


def num_rows(block: Block) -> int:
    return len(block) if type(block) is list else block.num_rows


def metadata(block: Block) -> BlockMetadata:
    if type(block) is list:
        schema = type(block[0]) if block else None
        size = sys.getsizeof(block) + (sys.getsizeof(block[0]) * len(block) if block else 0)
        return BlockMetadata(len(block), schema, size)
    return BlockMetadata(block.num_rows, block.schema, block.nbytes)


def _tensor_columns(table) -> list[str]:
    arrow = pa()
    return [field.name for field in table.schema
            if isinstance(field.type, arrow.FixedShapeTensorType)]


def rows(block: Block) -> list:
    """The rows of a block: ArrowRows for tables (tensor cells as ndarrays), items for lists."""
    if type(block) is list:
        return block
    plain = block.to_pylist()
    for name in _tensor_columns(block):
        arrays = column_to_numpy(block.column(name))
        for row, array in zip(plain, arrays):
            row[name] = array
    return [ArrowRow(row) for row in plain]


def column_to_numpy(column):
    """A numpy array from an Arrow column; fixed-shape tensor columns become n-d arrays."""
    arrow = pa()
    if isinstance(column.type, arrow.FixedShapeTensorType):
        if isinstance(column, arrow.ChunkedArray):
            column = column.combine_chunks()
        return column.to_numpy_ndarray()
    return column.to_numpy(zero_copy_only=False)


def slice_block(block: Block, start: int, stop: int) -> Block:
    if type(block) is list:
        return block[start:stop]
    return block.slice(start, max(0, stop - start))


def take_indices(block: Block, indices) -> Block:
    if type(block) is list:
        return [block[i] for i in indices]
    return block.take(pa().array(indices, type=pa().int64()))


def concat(blocks: list[Block]) -> Block:
    """One block holding the rows of ``blocks`` in order (empty blocks are dropped)."""
    nonempty = [b for b in blocks if num_rows(b)]
    if not nonempty:
        tables = [b for b in blocks if type(b) is not list]
        return tables[0] if tables else []
    if len(nonempty) == 1:
        return nonempty[0]
    if all(type(b) is list for b in nonempty):
        out: list = []
        for b in nonempty:
            out.extend(b)
        return out
    if all(type(b) is not list for b in nonempty):
        return pa().concat_tables(nonempty, promote_options="permissive")
    out = []
    for b in nonempty:
        out.extend(rows(b))
    return from_rows(out)


# ------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------
def from_rows(items: list) -> Block:
    """A block from rows: a table when every row is a dict that Arrow can hold, else a list."""
    if not items or not all(isinstance(item, dict) for item in items):
        return list(items)
    names = list(dict.fromkeys(key for item in items for key in item))
    if not all(isinstance(name, str) for name in names):
        return list(items)
    try:
        return table_from_columns({name: [item.get(name) for item in items] for name in names})
    except (TypeError, ValueError, OverflowError, pa().ArrowException):
        return list(items)


def table_from_columns(columns: dict) -> Any:
    """A table from ``{name: list | ndarray}``; n-d arrays become fixed-shape tensor columns."""
    arrow = pa()
    arrays = {}
    for name, values in columns.items():
        arrays[name] = _to_arrow_array(values)
    return arrow.table(arrays)


def _to_arrow_array(values):
    arrow = pa()
    if isinstance(values, (arrow.Array, arrow.ChunkedArray)):
        return values
    import numpy as np
    if isinstance(values, np.ndarray):
        if values.ndim > 1:
            return arrow.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
        return arrow.array(values)
    values = list(values)
    if values and all(isinstance(v, np.ndarray) for v in values):
        shapes = {v.shape for v in values}
        if len(shapes) == 1 and values[0].ndim >= 1:
            return arrow.FixedShapeTensorArray.from_numpy_ndarray(np.stack(values))
    return arrow.array(values)


def to_table(block: Block):
    """A table for a block: lists become one column named ``value`` (or a table of dicts)."""
    if type(block) is not list:
        return block
    built = from_rows(block)
    if type(built) is not list:
        return built
    return table_from_columns({SIMPLE_COLUMN: block})


def to_pandas(block: Block):
    import pandas as pd
    if type(block) is list:
        built = from_rows(block)
        if type(built) is list:
            return pd.DataFrame({SIMPLE_COLUMN: block})
        block = built
    return block.to_pandas()


# ------------------------------------------------------------------------------------------
# batches: the views map_batches and iter_batches hand out, and what may come back
# ------------------------------------------------------------------------------------------
def check_batch_format(batch_format: str) -> None:
    if batch_format not in BATCH_FORMATS:
        raise ValueError(f"batch_format must be one of {', '.join(map(repr, BATCH_FORMATS))}, "
                         f"got {batch_format!r}")


def to_batch(block: Block, batch_format: str):
    """The block as a batch in ``batch_format``.

    ``"default"``: a pandas DataFrame for tabular data, a list otherwise; ``"native"``: a
    pyarrow Table or a list; ``"pandas"``/``"pyarrow"``: that type always; ``"numpy"``: a dict
    of column arrays for tabular data, one ndarray otherwise.
    """
    if batch_format == "native" or (batch_format == "default" and type(block) is list):
        return block
    if batch_format in ("default", "pandas"):
        return to_pandas(block)
    if batch_format == "pyarrow":
        return to_table(block)
    if batch_format == "numpy":
        import numpy as np
        if type(block) is list:
            return _list_to_numpy(block, np)
        return {name: column_to_numpy(block.column(name)) for name in block.column_names}
    check_batch_format(batch_format)
    raise AssertionError("unreachable")


def _list_to_numpy(items: list, np):
    if items and all(isinstance(item, np.ndarray) for item in items):
        return np.stack(items)
    return np.asarray(items)


def from_batch(batch: Any, operation: str) -> Block:
    """A block from what a batch function returned."""
    arrow = pa()
    if type(batch) is list:
        return batch
    if isinstance(batch, arrow.Table):
        return batch
    if isinstance(batch, dict):
        return table_from_columns(batch)
    import numpy as np
    if isinstance(batch, np.ndarray):
        return batch.tolist() if batch.ndim <= 1 else list(batch)
    if type(batch).__name__ == "DataFrame" and hasattr(batch, "to_dict"):
        try:
            return arrow.Table.from_pandas(batch, preserve_index=False)
        except (arrow.ArrowException, TypeError, ValueError):
            return from_rows(batch.to_dict("records"))
    raise TypeError(f"{operation} must return a batch: a pandas DataFrame, a pyarrow Table, a "
                    f"dict of column arrays, a numpy ndarray or a list; it returned "
                    f"{type(batch).__name__}")


def format_schema(schema: Any) -> str:
    """``{name: string, data: int64}`` for tables, ``<class 'int'>`` for lists."""
    if schema is None:
        return "None"
    if hasattr(schema, "names") and hasattr(schema, "types"):
        return "{" + ", ".join(f"{n}: {t}" for n, t in zip(schema.names, schema.types)) + "}"
    return repr(schema)


def iter_row_chunks(items: Iterable, size: int):
    """Split an iterable into lists of at most ``size`` items."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
