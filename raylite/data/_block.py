"""Blocks: the unit of data a task reads, transforms and returns.

A block is one of three things:

    pyarrow.Table   columnar rows: from files, pandas, numpy and Arrow, and from batch functions
                    that return columns (``{"y": ndarray}``, a DataFrame, a Table)
    list of dicts   tabular rows kept as Python dicts (``from_items``, ``map`` returning dicts):
                    cheap to build and to pickle, and no pyarrow needed until something asks for
                    Arrow; every dict has the same keys (missing ones are filled with None)
    list            non-tabular rows: any Python objects (ints from ``range``, the result of
                    ``ds.map(lambda x: x["data"] ** 2)``, strings from ``read_text``)

Tables and lists of dicts are both *tabular* (they have columns); the rows of both are handed
to user code as plain dicts and to the user at the end (take, show, iter_rows) as ``ArrowRow``.

Everything that looks inside a block lives here, so the rest of the package only moves blocks
around. pyarrow, numpy and pandas are imported on first use, never at import time, and the
numeric paths between numpy and Arrow go through buffers so that pandas is not imported either
(pyarrow imports it for ``pa.array`` and ``Array.to_numpy``, which costs half a second).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

Block = Any  # pyarrow.Table | list

BATCH_FORMATS = ("default", "native", "numpy", "pandas", "pyarrow")
SIMPLE_COLUMN = "value"  # the column a non-tabular block gets when it must become a table

_pyarrow = None
_numpy = None


def pa():
    """The pyarrow module, imported on first use."""
    global _pyarrow
    if _pyarrow is None:
        import pyarrow
        _pyarrow = pyarrow
    return _pyarrow


def np():
    """The numpy module, imported on first use."""
    global _numpy
    if _numpy is None:
        import numpy
        _numpy = numpy
    return _numpy


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


class PlainRow(dict):
    """A dict that is one row among non-dict rows (or whose keys are not all strings): kept
    as it is, not a tabular row. A subclass only so that ``is_dict_rows`` can tell."""

    __slots__ = ()


@dataclass(frozen=True)
class BlockMetadata:
    """What the driver knows about a block without fetching it."""

    num_rows: int
    schema: Any  # pyarrow.Schema | RowSchema | the type of the first row | None if empty
    size_bytes: int


# ==========================================================================================
# the schema of dict rows, known without pyarrow
# ==========================================================================================
@dataclass(frozen=True)
class TensorSpec:
    """The shape and dtype of ndarray cells (a fixed-shape tensor column in Arrow)."""

    shape: tuple
    dtype: str

    def __repr__(self) -> str:
        return f"fixed_shape_tensor[value_type={np().dtype(self.dtype).name}, shape={self.shape}]"


_PYTHON_TYPE_NAMES = {int: "int64", float: "double", str: "string", bool: "bool",
                      bytes: "binary", type(None): "null"}


def _sample(value: Any) -> Any:
    """A small stand-in for a cell with the same Arrow type (no big strings or arrays)."""
    kind = type(value)
    if kind in (str, bytes):
        return kind()
    if value is None or kind in (int, float, bool):
        return value
    if kind.__module__ == "numpy" and hasattr(value, "dtype"):
        return TensorSpec(tuple(value.shape), value.dtype.str) if value.ndim else value
    if kind in (list, tuple):
        return [_sample(value[0])] if value else []
    if kind is dict:
        return {key: _sample(item) for key, item in value.items()}
    return kind  # an object Arrow cannot hold: remember its type only


def _type_name(sample: Any) -> str:
    if isinstance(sample, type):
        return sample.__name__
    if isinstance(sample, TensorSpec):
        return repr(sample)
    if isinstance(sample, list):
        return f"list<item: {_type_name(sample[0]) if sample else 'null'}>"
    if isinstance(sample, dict):
        return "struct<" + ", ".join(f"{k}: {_type_name(v)}" for k, v in sample.items()) + ">"
    if hasattr(sample, "dtype"):
        name = sample.dtype.name
        return {"float64": "double", "float32": "float", "float16": "halffloat"}.get(name, name)
    return _PYTHON_TYPE_NAMES.get(type(sample), type(sample).__name__)


class RowSchema:
    """The columns of a block of dict rows: names and a sample of each column's type.

    ``to_arrow()`` gives the pyarrow Schema (importing pyarrow then); ``types`` gives Arrow's
    type names without it, so that ``repr(dataset)`` stays cheap.
    """

    __slots__ = ("names", "samples")

    def __init__(self, names: tuple, samples: tuple):
        self.names = list(names)
        self.samples = samples

    @classmethod
    def of(cls, rows: list) -> "RowSchema":
        names = tuple(rows[0])
        samples = []
        for name in names:
            value = None
            for row in rows:
                value = row[name]
                if value is not None:
                    break
            samples.append(_sample(value))
        return cls(names, tuple(samples))

    @property
    def types(self) -> list[str]:
        return [_type_name(s) for s in self.samples]

    def to_arrow(self):
        """The pyarrow Schema, or None when a column holds objects Arrow cannot store."""
        arrow = pa()
        fields = []
        for name, sample in zip(self.names, self.samples):
            if isinstance(sample, type):
                return None
            if isinstance(sample, TensorSpec):
                kind = arrow.fixed_shape_tensor(arrow.from_numpy_dtype(np().dtype(sample.dtype)),
                                                list(sample.shape))
            elif sample is None:
                kind = arrow.null()
            else:
                try:
                    kind = arrow.array([sample]).type
                except (arrow.ArrowException, TypeError, ValueError, OverflowError):
                    return None
            fields.append(arrow.field(name, kind))
        return arrow.schema(fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowSchema) and (self.names, self.types) == (other.names,
                                                                             other.types)

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __repr__(self) -> str:
        return "\n".join(f"{n}: {t}" for n, t in zip(self.names, self.types))


# ==========================================================================================
# inspecting blocks
# ==========================================================================================
def is_dict_rows(block: Block) -> bool:
    """True for a non-empty list block whose rows are dicts (tabular rows in Python)."""
    return type(block) is list and bool(block) and type(block[0]) is dict


def is_tabular(block: Block) -> bool:
    return type(block) is not list or is_dict_rows(block)


def num_rows(block: Block) -> int:
    return len(block) if type(block) is list else block.num_rows


def column_names(block: Block) -> list[str] | None:
    """The columns of a tabular block; None for non-tabular rows (and empty lists)."""
    if type(block) is not list:
        return block.column_names
    return list(block[0]) if is_dict_rows(block) else None


def metadata(block: Block) -> BlockMetadata:
    if type(block) is not list:
        return BlockMetadata(block.num_rows, block.schema, block.nbytes)
    if not block:
        return BlockMetadata(0, None, sys.getsizeof(block))
    first = block[0]
    size = sys.getsizeof(block) + sys.getsizeof(first) * len(block)
    if type(first) is dict:
        size += sum(sys.getsizeof(v) for v in first.values()) * len(block)
        return BlockMetadata(len(block), RowSchema.of(block), size)
    return BlockMetadata(len(block), dict if type(first) is PlainRow else type(first), size)


def _tensor_columns(table) -> list[str]:
    arrow = pa()
    return [field.name for field in table.schema
            if isinstance(field.type, arrow.FixedShapeTensorType)]


def rows(block: Block) -> list:
    """The rows of a block for user functions: plain dicts (tensor cells as ndarrays) for
    tabular blocks, the items themselves otherwise."""
    if type(block) is list:
        return block
    plain = block.to_pylist()
    for name in _tensor_columns(block):
        arrays = column_to_numpy(block.column(name))
        for row, array in zip(plain, arrays):
            row[name] = array
    return plain


def output_rows(block: Block) -> list:
    """The rows of a block as handed to the user by take/show/iter_rows: dicts as ArrowRow."""
    items = rows(block)
    if items and type(items[0]) is dict:
        return [ArrowRow(row) for row in items]
    return items


def plain_rows(block: Block) -> list:
    """The rows of a block as Ray 2.x hands them to the user: plain dicts (copies)."""
    items = rows(block)
    if type(block) is list and items and type(items[0]) is dict:
        return list(map(dict, items))
    return items


def column_values(block: Block, name: str) -> list:
    """One column of a tabular block as a Python list."""
    if type(block) is list:
        return [row[name] for row in block]
    if name in _tensor_columns(block):
        return list(column_to_numpy(block.column(name)))
    return block.column(name).to_pylist()


# ==========================================================================================
# numpy <-> Arrow through buffers (no pandas)
# ==========================================================================================
def _primitive_dtype(arrow_type):
    """The numpy dtype of an Arrow integer or floating type, else None."""
    types = pa().types
    if types.is_integer(arrow_type) or types.is_floating(arrow_type):
        return np().dtype(arrow_type.to_pandas_dtype())
    return None


def _array_to_numpy(array):
    """A numpy view of a primitive Arrow array without nulls (else Arrow's own conversion)."""
    dtype = _primitive_dtype(array.type)
    if dtype is not None and array.null_count == 0:
        buffer = array.buffers()[1]
        if buffer is None:
            return np().empty(0, dtype)
        return np().frombuffer(buffer, dtype=dtype, count=len(array),
                               offset=array.offset * dtype.itemsize)
    if isinstance(array.type, pa().FixedShapeTensorType):
        return _tensor_to_numpy(array)
    return array.to_numpy(zero_copy_only=False)


def _tensor_to_numpy(array):
    shape = tuple(array.type.shape)
    storage = array.storage
    values = storage.flatten()
    if _primitive_dtype(values.type) is not None and values.null_count == 0:
        return _array_to_numpy(values).reshape((len(array),) + shape)
    return array.to_numpy_ndarray()


def column_to_numpy(column):
    """A numpy array from an Arrow column; fixed-shape tensor columns become n-d arrays."""
    if isinstance(column, pa().ChunkedArray):
        chunks = column.chunks
        if len(chunks) == 1:
            return _array_to_numpy(chunks[0])
        if not chunks:
            return _array_to_numpy(pa().array([], type=column.type))
        return np().concatenate([_array_to_numpy(chunk) for chunk in chunks])
    return _array_to_numpy(column)


def _numpy_to_arrow(values):
    """An Arrow array from a numpy array (n-d arrays: a fixed-shape tensor column)."""
    arrow, numpy = pa(), np()
    if values.ndim > 1:
        return _tensor_from_numpy(values)
    if values.dtype.kind in "iuf" and values.dtype.isnative:
        values = numpy.ascontiguousarray(values)
        return arrow.Array.from_buffers(arrow.from_numpy_dtype(values.dtype), len(values),
                                        [None, arrow.py_buffer(values)])
    if values.dtype.kind == "b":
        bits = numpy.packbits(values, bitorder="little")
        return arrow.Array.from_buffers(arrow.bool_(), len(values), [None, arrow.py_buffer(bits)])
    return arrow.array(values)


def _tensor_from_numpy(values):
    arrow, numpy = pa(), np()
    if values.dtype.kind not in "iuf" or not values.dtype.isnative:
        return arrow.FixedShapeTensorArray.from_numpy_ndarray(numpy.ascontiguousarray(values))
    shape = list(values.shape[1:])
    flat = _numpy_to_arrow(numpy.ascontiguousarray(values).reshape(-1))
    size = int(numpy.prod(shape)) if shape else 1
    storage = arrow.FixedSizeListArray.from_arrays(flat, size)
    kind = arrow.fixed_shape_tensor(flat.type, shape)
    return arrow.ExtensionArray.from_storage(kind, storage)


def int64_array(indices):
    """An Arrow int64 array of row indices (for ``Table.take``)."""
    return _numpy_to_arrow(np().asarray(indices, dtype=np().int64))


# ==========================================================================================
# slicing and joining
# ==========================================================================================
def slice_block(block: Block, start: int, stop: int) -> Block:
    if type(block) is list:
        return block[start:stop]
    return block.slice(start, max(0, stop - start))


def take_indices(block: Block, indices) -> Block:
    if type(block) is list:
        return [block[i] for i in indices]
    return block.take(int64_array(indices))


def filter_block(block: Block, keep: list) -> Block:
    """The rows of ``block`` whose entry in ``keep`` is true."""
    if type(block) is list:
        return [item for item, kept in zip(block, keep) if kept]
    return block.filter(_numpy_to_arrow(np().asarray(keep, dtype=bool)))


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
        if is_dict_rows(nonempty[0]) and len({tuple(b[0]) if type(b[0]) is dict else None
                                              for b in nonempty}) > 1:
            return from_rows(out)  # different columns: fill the missing ones with None
        return out
    if all(is_tabular(b) for b in nonempty):
        try:
            return pa().concat_tables([to_table(b) for b in nonempty],
                                      promote_options="permissive")
        except (TypeError, ValueError, pa().ArrowException):
            pass
    out = []
    for b in nonempty:
        out.extend(rows(b))
    return from_rows(out)


# ==========================================================================================
# building blocks
# ==========================================================================================
def from_rows(items: Iterable) -> Block:
    """A block from rows: dicts with string keys become dict rows (all with the same keys,
    missing ones None), anything else stays a plain list."""
    items = items if type(items) is list else list(items)
    if not items or not isinstance(items[0], dict):
        return items
    kinds = set(map(type, items))  # map/set run in C: this stays cheap for big lists
    if not all(issubclass(kind, dict) for kind in kinds):
        return _plain(items)  # a mix of dicts and other rows: not tabular
    key_orders = set(map(tuple, items)) if kinds == {dict} else set()
    if len(key_orders) == 1:
        names = next(iter(key_orders))
        return items if all(type(name) is str for name in names) else _plain(items)
    names = list(dict.fromkeys(key for item in items for key in item))
    if not all(type(name) is str for name in names):
        return _plain(items)
    return [{name: item.get(name) for name in names} for item in items]


def _plain(items: list) -> list:
    """Rows that are not tabular although some are dicts: the dicts become PlainRows."""
    return [PlainRow(item) if type(item) is dict else item for item in items]


def table_from_columns(columns: dict) -> Any:
    """A table from ``{name: list | ndarray}``; n-d arrays become fixed-shape tensor columns."""
    names = list(columns)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"column names must be strings, got {name!r}")
    arrays = [_to_arrow_array(columns[name]) for name in names]
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        sizes = {name: len(a) for name, a in zip(names, arrays)}
        raise ValueError(f"the columns of a batch must have the same length, got {sizes}")
    return pa().Table.from_arrays(arrays, names=names)


def column_array(values):
    """An Arrow array (or chunked array) from column values: Arrow, numpy, pandas or a list."""
    if hasattr(values, "to_numpy") and type(values).__module__.startswith("pandas"):
        values = values.to_numpy()
    return _to_arrow_array(values)


def _to_arrow_array(values):
    arrow = pa()
    if isinstance(values, (arrow.Array, arrow.ChunkedArray)):
        return values
    numpy = np()
    if isinstance(values, numpy.ndarray):
        return _numpy_to_arrow(values)
    values = list(values)
    if values and all(isinstance(v, numpy.ndarray) for v in values):
        shapes = {v.shape for v in values}
        if len(shapes) == 1 and values[0].ndim >= 1:
            return _tensor_from_numpy(numpy.stack(values))
    return arrow.array(values)


def to_table(block: Block):
    """A table for a block: dict rows become columns, other rows one column ``value``."""
    if type(block) is not list:
        return block
    if is_dict_rows(block):
        names = list(block[0])
        try:
            return table_from_columns({name: [row[name] for row in block] for name in names})
        except (TypeError, ValueError, OverflowError, pa().ArrowException) as exc:
            raise TypeError(f"these rows cannot become an Arrow table ({exc}); keep them in "
                            "Python (map, filter, take) or convert the values first") from exc
    if not block:
        return pa().table({})
    return table_from_columns({SIMPLE_COLUMN: block})


def to_pandas(block: Block):
    import pandas as pd
    if type(block) is not list:
        return block.to_pandas()
    if is_dict_rows(block):
        return pd.DataFrame.from_records(block, columns=list(block[0]))
    return pd.DataFrame({SIMPLE_COLUMN: block})


def to_numpy_columns(block: Block) -> dict:
    """``{column: ndarray}`` for a tabular block (ndarray cells stacked into n-d arrays)."""
    if type(block) is not list:
        return {name: column_to_numpy(block.column(name)) for name in block.column_names}
    return {name: _list_to_numpy([row[name] for row in block]) for name in block[0]}


def select_columns(block: Block, names: list[str]) -> Block:
    if type(block) is not list:
        return block.select(names)
    return [{name: row[name] for name in names} for row in block]


def drop_columns(block: Block, names: list[str]) -> Block:
    if type(block) is not list:
        return block.drop_columns(names)
    keep = [name for name in block[0] if name not in names]
    return [{name: row[name] for name in keep} for row in block]


# ==========================================================================================
# batches: the views map_batches and iter_batches hand out, and what may come back
# ==========================================================================================
def check_batch_format(batch_format: str) -> None:
    if batch_format not in BATCH_FORMATS:
        raise ValueError(f"batch_format must be one of {', '.join(map(repr, BATCH_FORMATS))}, "
                         f"got {batch_format!r}")


def to_batch(block: Block, batch_format: str):
    """The block as a batch in ``batch_format``.

    ``"default"``: a pandas DataFrame for tabular data, a list otherwise; ``"native"``: a
    pyarrow Table for tabular data, a list otherwise; ``"pandas"``/``"pyarrow"``: that type
    always; ``"numpy"``: a dict of column arrays for tabular data, one ndarray otherwise.
    """
    tabular = is_tabular(block)
    if batch_format in ("native", "default") and not tabular:
        return block
    if batch_format == "native":
        return to_table(block)
    if batch_format in ("default", "pandas"):
        return to_pandas(block)
    if batch_format == "pyarrow":
        return to_table(block)
    if batch_format == "numpy":
        return to_numpy_columns(block) if tabular else _list_to_numpy(block)
    check_batch_format(batch_format)
    raise AssertionError("unreachable")


def _list_to_numpy(items: list):
    numpy = np()
    if items and isinstance(items[0], numpy.ndarray) and all(
            isinstance(item, numpy.ndarray) for item in items):
        return numpy.stack(items)
    if items and type(items[0]) is str:
        return numpy.asarray(items, dtype=object)
    return numpy.asarray(items)


def from_batch(batch: Any, operation: str) -> Block:
    """A block from what a batch function returned."""
    if type(batch) is list:
        return from_rows(batch)
    if isinstance(batch, dict):
        return table_from_columns(batch)
    kind = type(batch)
    if kind.__module__ == "pyarrow.lib" and kind.__name__ in ("Table", "RecordBatch"):
        return batch if kind.__name__ == "Table" else pa().Table.from_batches([batch])
    numpy = np()
    if isinstance(batch, numpy.ndarray):
        return batch.tolist() if batch.ndim <= 1 else list(batch)
    if kind.__name__ == "DataFrame" and hasattr(batch, "to_dict"):
        arrow = pa()
        try:
            return arrow.Table.from_pandas(batch, preserve_index=False)
        except (arrow.ArrowException, TypeError, ValueError):
            return from_rows(batch.to_dict("records"))
    raise TypeError(f"{operation} must return a batch: a pandas DataFrame, a pyarrow Table, a "
                    f"dict of column arrays, a numpy ndarray or a list; it returned "
                    f"{kind.__name__}")


def format_schema(schema: Any) -> str:
    """``{name: string, data: int64}`` for tabular data, ``<class 'int'>`` otherwise."""
    if schema is None:
        return "None"
    if hasattr(schema, "names") and hasattr(schema, "types"):
        return "{" + ", ".join(f"{n}: {t}" for n, t in zip(schema.names, schema.types)) + "}"
    return repr(schema)


def arrow_schema(schema: Any) -> Any:
    """The schema users see: pyarrow's for tabular data (when Arrow can hold the columns)."""
    if isinstance(schema, RowSchema):
        converted = schema.to_arrow()
        return schema if converted is None else converted
    return schema


def local_shuffle(blocks: Iterator[Block], buffer_size: int, seed: int | None
                  ) -> Iterator[Block]:
    """The rows of ``blocks`` shuffled within windows of at least ``buffer_size`` rows."""
    rng = np().random.default_rng(seed)
    buffer: list = []
    buffered = 0
    for block in blocks:
        if num_rows(block):
            buffer.append(block)
            buffered += num_rows(block)
        if buffered >= buffer_size:
            window = concat(buffer)
            yield take_indices(window, rng.permutation(num_rows(window)))
            buffer, buffered = [], 0
    if buffered:
        window = concat(buffer)
        yield take_indices(window, rng.permutation(num_rows(window)))


def batches(blocks: Iterator[Block], batch_size: int | None, batch_format: str,
            drop_last: bool) -> Iterator[Any]:
    """Blocks re-cut into batches of exactly ``batch_size`` rows (None: one per block; the
    last may be short unless ``drop_last``), each in ``batch_format`` (already checked)."""
    for block in _rebatch(blocks, batch_size, drop_last):
        yield to_batch(block, batch_format)


def _rebatch(blocks: Iterator[Block], batch_size: int | None, drop_last: bool) -> Iterator[Block]:
    if batch_size is None:
        yield from (b for b in blocks if num_rows(b))
        return
    buffer: list[list] = []  # [block, offset] pairs
    buffered = 0
    for block in blocks:
        rows = num_rows(block)
        if not rows:
            continue
        buffer.append([block, 0])
        buffered += rows
        while buffered >= batch_size:
            yield _take_front(buffer, batch_size)
            buffered -= batch_size
    if buffered and not drop_last:
        yield _take_front(buffer, buffered)


def _take_front(buffer: list[list], count: int) -> Block:
    pieces = []
    while count:
        block, offset = buffer[0]
        available = num_rows(block) - offset
        take = min(available, count)
        pieces.append(slice_block(block, offset, offset + take))
        count -= take
        if take == available:
            buffer.pop(0)
        else:
            buffer[0][1] = offset + take
    return concat(pieces)
