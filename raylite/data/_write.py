"""Writing datasets: each block's task also writes its file (the write fuses onto the stages),
named ``{write id}_{block index:06d}.{ext}`` so that reading the directory back in name order
gives the rows in the dataset's order. Empty blocks write no file."""

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

    def __init__(self, file_format: str, path: str, options: dict):
        self.file_format = file_format
        self.path = path
        self.options = options

    def __call__(self, block) -> list:
        if _block.num_rows(block) == 0:
            return []
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


def _write_numpy(block, path: str, column: str | None = None) -> None:
    import numpy as np
    batch = _block.to_batch(block, "numpy")
    if isinstance(batch, dict):
        name = column or (next(iter(batch)) if len(batch) == 1 else None)
        if name is None or name not in batch:
            raise ValueError(f"write_numpy(column={column!r}): name one of the columns "
                             f"{list(batch)}")
        batch = batch[name]
    with open(path, "wb") as f:
        np.save(f, batch, allow_pickle=False)


def write(dataset: Any, path: str, file_format: str, options: dict,
          stats: ExecutionStats | None = None, file_prefix: str | None = None) -> list[str]:
    """Write every block of ``dataset`` under the directory ``path``; returns the files."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"write_{file_format}() needs a directory path, got {type(path).__name__}")
    path = os.path.expanduser(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"write_{file_format}({path!r}): a file is in the way; the path "
                              "must be a directory (it is created if missing)")
    os.makedirs(path, exist_ok=True)
    write_id = file_prefix or uuid.uuid4().hex[:16]
    extension = _EXTENSIONS[file_format]
    tasks = []
    for index, task in enumerate(dataset._plan.block_tasks()):
        target = os.path.join(path, f"{write_id}_{index:06d}.{extension}")
        tasks.append(BlockTask(task.source, task.stages, WriteBlock(file_format, target, options)))
    written: list = [None] * len(tasks)
    for index, block_ref, _meta in stream(tasks, ordered=False, stats=stats):
        written[index] = raylite.get(block_ref)
    return [f for files in written for f in files]
