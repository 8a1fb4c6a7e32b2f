"""Writing datasets: each block's task also writes its file (the write fuses onto the stages),
named ``{write id}_{block index:06d}.{ext}`` so that reading the directory back in name order
gives the rows in the dataset's order. Empty blocks write no file.

The target is a local directory or a URI (``s3://bucket/prefix``, ``file://...``), or a path on
``filesystem=`` (pyarrow.fs or fsspec). When a block's write fails, the files this write made
are removed again: a failed write leaves no partial output."""

from __future__ import annotations

import os
import uuid
from typing import Any

import raylite
from raylite.data import _block
from raylite.data._plan import BlockTask, ExecutionStats, stream

_EXTENSIONS = {"parquet": "parquet", "csv": "csv", "json": "json", "numpy": "npy"}


class WriteBlock:
    """The terminal step of one block's task: write the block, return ``[file path]``."""

    def __init__(self, file_format: str, path: str, options: dict, filesystem: Any = None):
        self.file_format = file_format
        self.path = path
        self.options = options
        self.filesystem = filesystem

    def __call__(self, block) -> list:
        if _block.num_rows(block) == 0:
            return []
        if self.filesystem is not None:
            return self._write_to(self.filesystem, block)
        if self.file_format == "parquet":
            import pyarrow.parquet as pq
            pq.write_table(_block.to_table(block), self.path, **self.options)
        elif self.file_format == "numpy":
            _write_numpy(block, self.path, **self.options)
        elif self.file_format == "csv":
            import pyarrow.csv as pcsv
            pcsv.write_csv(_block.to_table(block), self.path, **self.options)
        else:
            options = {"orient": "records", "lines": True, **self.options}
            _block.to_pandas(block).to_json(self.path, **options)
        return [self.path]


    def _write_to(self, filesystem: Any, block) -> list:
        """Write through a pyarrow filesystem: the file's bytes are made here, then sent."""
        import io
        if self.file_format == "parquet":
            import pyarrow.parquet as pq
            pq.write_table(_block.to_table(block), self.path, filesystem=filesystem,
                           **self.options)
            return [self.path]
        buffer = io.BytesIO()
        if self.file_format == "numpy":
            _write_numpy(block, buffer, **self.options)
        elif self.file_format == "csv":
            import pyarrow.csv as pcsv
            pcsv.write_csv(_block.to_table(block), buffer, **self.options)
        else:
            options = {"orient": "records", "lines": True, **self.options}
            buffer.write(_block.to_pandas(block).to_json(**options).encode("utf-8"))
        with filesystem.open_output_stream(self.path) as out:
            out.write(buffer.getvalue())
        return [self.path]


def _write_numpy(block, path: Any, column: str | None = None) -> None:
    import numpy as np
    batch = _block.to_batch(block, "numpy")
    if isinstance(batch, dict):
        name = column or (next(iter(batch)) if len(batch) == 1 else None)
        if name is None or name not in batch:
            raise ValueError(f"write_numpy(column={column!r}): name one of the columns "
                             f"{list(batch)}")
        batch = batch[name]
    if not isinstance(path, (str, os.PathLike)):  # a buffer
        np.save(path, batch, allow_pickle=False)
        return
    with open(path, "wb") as f:
        np.save(f, batch, allow_pickle=False)


def write(dataset: Any, path: str, file_format: str, options: dict,
          stats: ExecutionStats | None = None, file_prefix: str | None = None,
          filesystem: Any = None) -> list[str]:
    """Write every block of ``dataset`` under the directory ``path``; returns the files."""
    from raylite._storage import check_writable_root, is_remote, local_path, resolve
    what = f"write_{file_format}({path!r})"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"write_{file_format}() needs a directory path, got {type(path).__name__}")
    if is_remote(path, filesystem):
        filesystem, path = resolve(path, filesystem)
        check_writable_root(filesystem, path, what)
    else:
        path = local_path(path)
        if os.path.exists(path) and not os.path.isdir(path):
            raise FileExistsError(f"{what}: a file is in the way; the path must be a directory "
                                  "(it is created if missing)")
        os.makedirs(path, exist_ok=True)
    write_id = file_prefix or uuid.uuid4().hex[:16]
    extension = _EXTENSIONS[file_format]
    tasks, targets = [], []
    for index, task in enumerate(dataset._plan.block_tasks()):
        name = f"{write_id}_{index:06d}.{extension}"
        target = f"{path.rstrip('/')}/{name}" if filesystem is not None else os.path.join(path, name)
        targets.append(target)
        tasks.append(BlockTask(task.source, task.stages,
                               WriteBlock(file_format, target, options, filesystem)))
    written: list = [None] * len(tasks)
    results = stream(tasks, ordered=False, stats=stats)
    try:
        for index, block_ref, _meta in results:
            written[index] = raylite.get(block_ref)
    except Exception:
        for _index, block_ref, _meta in results:  # let the writes in flight end first
            raylite.wait([block_ref], num_returns=1)
        _remove(targets, filesystem)  # no partial output
        raise
    return [f for files in written for f in files]


def _remove(targets: list[str], filesystem: Any) -> None:
    for target in targets:
        try:
            if filesystem is None:
                os.remove(target)
            else:
                filesystem.delete_file(target)
        except (OSError, FileNotFoundError):
            pass  # never written
