"""Creating datasets: from Python objects (blocks are put from the driver) and from files or
ranges (lazy ReadTasks that run inside each block's task, so reading fuses with the stages
after it and a big input never passes through the driver)."""

from __future__ import annotations

import builtins
import errno
import functools
import glob
import json
import os
from typing import Any, Iterable

import raylite
from raylite.data import _block
from raylite.data._dataset import Dataset
from raylite.data.context import current_api
from raylite.data._plan import BlockTask, DataContext, ExecutionPlan, ReadTask, RefInput


def _tensor_column() -> str:
    """The column of from_numpy / read_numpy / range_tensor: "value" in the book's Ray,
    "data" in Ray 2.x."""
    return "data" if current_api() == 2 else _block.SIMPLE_COLUMN


def _dataset_of_blocks(blocks: list) -> Dataset:
    tasks = [BlockTask(RefInput(raylite.put(block), _block.metadata(block))) for block in blocks]
    return Dataset(ExecutionPlan(tasks))


def _dataset_of_reads(reads: list[ReadTask]) -> Dataset:
    return Dataset(ExecutionPlan([BlockTask(read) for read in reads]))


# ==========================================================================================
# from Python objects
# ==========================================================================================
def from_items(items: Iterable[Any], *, parallelism: int | None = None,
               override_num_blocks: int | None = None) -> Dataset:
    """A dataset of the given items; dicts become tabular rows (``ArrowRow``), anything else
    stays a plain Python row (under ``RAYLITE_API=2``, as in Ray 2.x: a row ``{"item": x}``).

    Example:
        >>> import raylite as ray
        >>> ds = ray.data.from_items([{"name": "0", "data": 0}, {"name": "1", "data": 1}])
        >>> ds.take(1)
        [ArrowRow({'name': '0', 'data': 0})]
    """
    if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
        raise TypeError(f"from_items() takes a list of items, got {type(items).__name__}")
    items = list(items)
    if current_api() == 2:
        items = [item if isinstance(item, dict) else {"item": item} for item in items]
    items = _block.from_rows(items)  # dicts: the same keys in every row
    parallelism = override_num_blocks if parallelism is None else parallelism
    num_blocks = DataContext.get_current().num_blocks_for(len(items), parallelism)
    from raylite.data._exchange import even_ranges
    blocks = [items[start:stop] for start, stop in even_ranges(len(items), num_blocks)]
    return _dataset_of_blocks(blocks if items else [])


def _read_range(start: int, stop: int, column: str | None):
    if column is None:
        return list(builtins.range(start, stop))  # `range` here is the dataset function
    import numpy as np
    return _block.table_from_columns({column: np.arange(start, stop, dtype=np.int64)})


def _arange(start: int, stop: int):
    import numpy as np
    return np.arange(start, stop, dtype=np.int64)


def _arange_columns(start: int, stop: int, column: str) -> dict:
    return {column: _arange(start, stop)}


def _range_dataset(n: int, parallelism: int | None, column: str | None, name: str) -> Dataset:
    """``range`` (column None: plain ints; "id": Ray 2.x rows) or ``range_table``; a
    ``map_batches(batch_format="numpy")`` right after reads ``read_numpy``'s arrays."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{name}(n) needs a non-negative int, got {n!r}")
    from raylite.data._exchange import even_ranges
    num_blocks = DataContext.get_current().num_blocks_for(n, parallelism)
    reads = []
    for start, stop in even_ranges(n, num_blocks):
        if stop > start or n == 0:
            as_numpy = (functools.partial(_arange, start, stop) if column is None else
                        functools.partial(_arange_columns, start, stop, column)
                        if column == "id" else None)
            reads.append(ReadTask(functools.partial(_read_range, start, stop, column),
                                  f"{name}[{start}:{stop}]", num_rows=stop - start,
                                  read_numpy=as_numpy))
    return _dataset_of_reads(reads)


def range(n: int, *, parallelism: int | None = None,  # noqa: A001 (Ray's name)
          override_num_blocks: int | None = None) -> Dataset:
    """A dataset of the ints ``0 .. n-1``: plain ints, as in the book (under
    ``RAYLITE_API=2``, as in Ray 2.x: rows ``{"id": i}``).

    Example:
        >>> import raylite as ray
        >>> ray.data.range(10000).map(lambda x: x ** 2).take(5)
        [0, 1, 4, 9, 16]
    """
    parallelism = override_num_blocks if parallelism is None else parallelism
    return _range_dataset(n, parallelism, "id" if current_api() == 2 else None, name="range")


def range_table(n: int, *, parallelism: int | None = None) -> Dataset:
    """A tabular dataset with one int64 column ``value`` holding ``0 .. n-1``.

    Example:
        >>> import raylite as ray
        >>> ray.data.range_table(3).take(1)
        [ArrowRow({'value': 0})]
    """
    return _range_dataset(n, parallelism, _block.SIMPLE_COLUMN, name="range_table")


def _read_range_tensor(start: int, stop: int, shape: tuple, column: str):
    import numpy as np
    index = np.arange(start, stop, dtype=np.int64).reshape((-1,) + (1,) * len(shape))
    cells = np.ascontiguousarray(np.broadcast_to(index, (stop - start,) + shape))
    return _block.table_from_columns({column: cells})


def range_tensor(n: int, *, shape: tuple = (1,), parallelism: int | None = None) -> Dataset:
    """A tabular dataset of ``n`` rows whose column ``value`` (Ray 2.x: ``data``) holds an
    int64 ndarray of ``shape`` filled with the row's index (a tensor column).

    Example:
        >>> import raylite as ray
        >>> ray.data.range_tensor(3, shape=(2, 2)).take(2)[1]["value"].tolist()
        [[1, 1], [1, 1]]
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"range_tensor(n) needs a non-negative int, got {n!r}")
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"range_tensor(shape=...) needs a tuple of positive ints, got {shape!r}")
    shape = tuple(shape)
    from raylite.data._exchange import even_ranges
    num_blocks = DataContext.get_current().num_blocks_for(n, parallelism)
    column = _tensor_column()
    reads = [ReadTask(functools.partial(_read_range_tensor, start, stop, shape, column),
                      f"range_tensor[{start}:{stop}]", num_rows=stop - start)
             for start, stop in even_ranges(n, num_blocks) if stop > start or n == 0]
    return _dataset_of_reads(reads)


def _as_list(value: Any, accepted: tuple, what: str, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if not isinstance(item, accepted):
            raise TypeError(f"{name}() takes a {what} or a list of them, got "
                            f"{type(item).__name__}")
    return values


def from_pandas(dfs: Any) -> Dataset:
    """A tabular dataset with one block per pandas DataFrame.

    Example:
        >>> import pandas as pd, raylite as ray
        >>> ray.data.from_pandas(pd.DataFrame({"a": [1, 2]})).count()
        2
    """
    import pandas as pd
    frames = _as_list(dfs, (pd.DataFrame,), "pandas DataFrame", "from_pandas")
    arrow = _block.pa()
    return _dataset_of_blocks([arrow.Table.from_pandas(df, preserve_index=False) for df in frames])


def from_numpy(ndarrays: Any) -> Dataset:
    """A tabular dataset with one column ``value`` (Ray 2.x: ``data``) and one block per
    array; the rows are the array's first axis (n-d arrays give a tensor column whose cells
    are ndarrays).

    Example:
        >>> import numpy as np, raylite as ray
        >>> ray.data.from_numpy(np.arange(3)).take_all()
        [ArrowRow({'value': 0}), ArrowRow({'value': 1}), ArrowRow({'value': 2})]
    """
    import numpy as np
    arrays = _as_list(ndarrays, (np.ndarray,), "numpy ndarray", "from_numpy")
    for array in arrays:
        if array.ndim == 0:
            raise ValueError("from_numpy() needs arrays with at least one dimension (rows)")
    column = _tensor_column()
    return _dataset_of_blocks([_block.table_from_columns({column: a}) for a in arrays])


def from_arrow(tables: Any) -> Dataset:
    """A tabular dataset with one block per pyarrow Table.

    Example:
        >>> import pyarrow as pa, raylite as ray
        >>> ray.data.from_arrow(pa.table({"a": [1, 2]})).take(1)
        [ArrowRow({'a': 1})]
    """
    arrow = _block.pa()
    return _dataset_of_blocks(_as_list(tables, (arrow.Table,), "pyarrow Table", "from_arrow"))


# ==========================================================================================
# from files
# ==========================================================================================
_GLOB_CHARS = frozenset("*?[")
LOCAL_SCHEME = "local://"


def local_path(path: Any) -> Any:
    """A path without Ray's ``local://`` prefix ("a file on the driver's machine", where
    raylite's local workers read it too); other paths unchanged."""
    if isinstance(path, str) and path.startswith(LOCAL_SCHEME):
        return path[len(LOCAL_SCHEME):]
    return path


def resolve_paths(paths: Any) -> list[str]:
    """Files named by ``paths``: files, directories (all files below, hidden ones and names
    starting with '_' left out), and glob patterns; a missing one is a FileNotFoundError."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValueError(f"expected a path or a non-empty list of paths, got {paths!r}")
    files: list[str] = []
    for path in paths:
        path = os.path.expanduser(os.fspath(local_path(path)))
        if any(ch in _GLOB_CHARS for ch in path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise FileNotFoundError(errno.ENOENT, "no file matches the pattern", path)
            for match in matches:
                files.extend(_files_below(match))
        elif os.path.exists(path):
            found = _files_below(path)
            if not found:
                raise FileNotFoundError(errno.ENOENT, "no files in the directory", path)
            files.extend(found)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
    return files


def _remote_files(paths: Any, filesystem: Any) -> tuple[Any, list[str]]:
    """The filesystem and the files named by URIs (or paths on ``filesystem``): files, or
    every file below a directory (hidden ones and names starting with '_' left out)."""
    import pyarrow.fs as pafs
    from raylite._storage import resolve
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValueError(f"expected a path or a non-empty list of paths, got {paths!r}")
    files: list[str] = []
    fs = None
    for path in paths:
        fs, where = resolve(path, filesystem)
        info = fs.get_file_info(where)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(errno.ENOENT, "no such file, directory or bucket", str(path))
        if info.type == pafs.FileType.File:
            files.append(where)
            continue
        below = fs.get_file_info(pafs.FileSelector(where, recursive=True))
        found = sorted(i.path for i in below if i.type == pafs.FileType.File and not any(
            part.startswith((".", "_")) for part in i.path[len(where):].split("/") if part))
        if not found:
            raise FileNotFoundError(errno.ENOENT, "no files in the directory", str(path))
        files.extend(found)
    return fs, files


def _open(path: str, filesystem: Any):
    """A readable, seekable file: local, or through ``filesystem`` (pyarrow.fs)."""
    return open(path, "rb") if filesystem is None else filesystem.open_input_file(path)


def _files_below(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    out = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        out.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith((".", "_")))
    return out


def _read_files(reader, files: list[str], options: dict):
    return _block.concat([reader(path, **options) for path in files])


def _file_dataset(paths: Any, reader, parallelism: int | None, options: dict,
                  name: str, filesystem: Any = None) -> Dataset:
    from raylite._storage import is_remote, local_path
    listed = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    if isinstance(listed, (list, tuple)) and (
            filesystem is not None or any(is_remote(p) for p in listed)):
        filesystem, files = _remote_files(listed, filesystem)
        options = {**options, "filesystem": filesystem}
    else:
        if isinstance(listed, (list, tuple)):  # file:// and local:// URIs are local paths
            listed = [local_path(p) if str(p).startswith(("file://", "local://")) else p
                      for p in listed]
        files = resolve_paths(listed)
    groups = [[f] for f in files]
    if parallelism is not None:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
        from raylite.data._exchange import even_ranges
        groups = [files[a:b] for a, b in even_ranges(len(files), min(parallelism, len(files)))]
    reads = [ReadTask(functools.partial(_read_files, reader, group, options),
                      f"{name}({group[0]}{' ...' if len(group) > 1 else ''})") for group in groups]
    return _dataset_of_reads(reads)


def _read_parquet_file(path: str, filesystem: Any = None, **options):
    import pyarrow.parquet as pq
    return pq.read_table(path, filesystem=filesystem, **options)


def _read_csv_file(path: str, filesystem: Any = None, **options):
    import pyarrow.csv as pcsv
    if filesystem is None:
        return pcsv.read_csv(path, **options)
    with filesystem.open_input_stream(path) as f:  # decompresses .gz etc. by extension
        return pcsv.read_csv(f, **options)


def _read_json_file(path: str, filesystem: Any = None, **options):
    with _open(path, filesystem) as f:
        data = f.read()
    if data.lstrip()[:1] == b"[":  # one JSON array rather than JSON lines
        return _block.from_rows(json.loads(data.decode("utf-8")))
    import io

    import pyarrow.json as pjson
    return pjson.read_json(io.BytesIO(data), **options)


def _read_text_file(path: str, encoding: str, errors: str, drop_empty_lines: bool,
                    column: str | None = None, filesystem: Any = None):
    with _open(path, filesystem) as f:
        lines = f.read().decode(encoding, errors=errors).splitlines()
    lines = [line for line in lines if line.strip()] if drop_empty_lines else lines
    return lines if column is None else [{column: line} for line in lines]


def _read_numpy_file(path: str, column: str = _block.SIMPLE_COLUMN, filesystem: Any = None,
                     **options):
    import numpy as np
    with _open(path, filesystem) as f:
        array = np.load(f, allow_pickle=options.get("allow_pickle", False))
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise ValueError(f"read_numpy({path!r}): expected an .npy file holding one array, got "
                         f"an archive of {sorted(array.files)}")
    if array.ndim == 0:
        array = array.reshape(1)
    return _block.table_from_columns({column: array})


def read_numpy(paths: Any, *, parallelism: int | None = None, allow_pickle: bool = False,
               filesystem: Any = None) -> Dataset:
    """A tabular dataset from ``.npy`` files: the rows are each array's first axis, in one
    column ``value`` (n-d arrays give a tensor column whose cells are ndarrays).

    Example:
        >>> import numpy as np, raylite as ray, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npy"); np.save(path, np.arange(3))
        >>> ray.data.read_numpy(path).take_all()
        [ArrowRow({'value': 0}), ArrowRow({'value': 1}), ArrowRow({'value': 2})]
    """
    return _file_dataset(paths, _read_numpy_file, parallelism,
                         {"allow_pickle": allow_pickle, "column": _tensor_column()}, "read_numpy",
                         filesystem)


def read_parquet(paths: Any, *, columns: list[str] | None = None,
                 parallelism: int | None = None, filesystem: Any = None,
                 **arrow_parquet_args: Any) -> Dataset:
    """A tabular dataset from Parquet files (a file, a directory, a glob, or a list of them).

    Example:
        >>> import raylite as ray, tempfile
        >>> d = tempfile.mkdtemp(); ray.data.range_table(4).write_parquet(d)
        >>> ray.data.read_parquet(d).count()
        4
    """
    options = dict(arrow_parquet_args)
    if columns is not None:
        options["columns"] = list(columns)
    return _file_dataset(paths, _read_parquet_file, parallelism, options, "read_parquet",
                         filesystem)


def read_csv(paths: Any, *, parallelism: int | None = None, filesystem: Any = None,
             **arrow_csv_args: Any) -> Dataset:
    """A tabular dataset from CSV files with a header row (pyarrow.csv.read_csv options pass
    through: ``read_options``, ``parse_options``, ``convert_options``)."""
    return _file_dataset(paths, _read_csv_file, parallelism, arrow_csv_args, "read_csv",
                         filesystem)


def read_json(paths: Any, *, parallelism: int | None = None, filesystem: Any = None,
              **arrow_json_args: Any) -> Dataset:
    """A tabular dataset from JSON-lines files (one object per line); a file holding one JSON
    array of objects is read too."""
    return _file_dataset(paths, _read_json_file, parallelism, arrow_json_args, "read_json",
                         filesystem)


def read_text(paths: Any, *, encoding: str = "utf-8", errors: str = "ignore",
              drop_empty_lines: bool = False, parallelism: int | None = None,
              filesystem: Any = None) -> Dataset:
    """A dataset of the lines of text files, one plain ``str`` row per line (as in the book's
    Ray; under ``RAYLITE_API=2`` a row ``{"text": line}`` as in Ray 2.x; line endings
    removed). ``errors`` is passed to ``open`` (Ray's default: "ignore")."""
    options = {"encoding": encoding, "errors": errors, "drop_empty_lines": drop_empty_lines,
               "column": "text" if current_api() == 2 else None}
    return _file_dataset(paths, _read_text_file, parallelism, options, "read_text", filesystem)
