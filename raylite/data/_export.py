"""Getting data out of a Dataset: files (write_*), other frameworks (torch, TensorFlow, Dask)
and object refs of Arrow / pandas / numpy blocks. A mixin of Dataset, kept apart because none of
it is needed to build or transform a dataset."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import raylite
from raylite.data import _block
from raylite.data._block import Block
from raylite.data._stages import check_columns


class ExportMethods:
    """Dataset methods that write files or hand the rows to other frameworks."""

    def to_pandas(self, limit: int = 100_000):
        """One pandas DataFrame of all rows (non-tabular rows go in a column ``value``)."""
        blocks, total = [], 0
        for block in self._iter_blocks():
            blocks.append(block)
            total += _block.num_rows(block)
            if total > limit:
                raise ValueError(f"to_pandas(limit={limit}): the dataset has more rows than "
                                 "that; pass a larger limit or use iter_batches()")
        return _block.to_pandas(_block.concat(blocks))

    def to_numpy(self, *, column: str | None = None):
        """An ndarray of the rows (non-tabular data or one column), or a dict of column arrays."""
        batch = _block.to_batch(_block.concat(list(self._iter_blocks())), "numpy")
        if not isinstance(batch, dict):
            if column is not None:
                raise ValueError(f"to_numpy(column={column!r}): the rows are not tabular")
            return batch
        if column is not None:
            check_columns([column], list(batch), "to_numpy()")
            return batch[column]
        return next(iter(batch.values())) if len(batch) == 1 else batch

    def iter_torch_batches(self, *, batch_size: int | None = 256, dtypes: Any = None,
                           device: Any = None, collate_fn: Callable | None = None,
                           drop_last: bool = False, prefetch_blocks: int = 0,
                           prefetch_batches: int = 1,
                           local_shuffle_buffer_size: int | None = None,
                           local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """Batches as torch tensors: ``{column: tensor}`` for tabular data, one tensor
        otherwise. ``dtypes`` is a torch dtype (or a dict of them per column); ``device``
        moves each tensor (e.g. ``"cuda"``); ``collate_fn(numpy_batch)`` replaces both.
        ``local_shuffle_buffer_size`` / ``local_shuffle_seed``: as in ``iter_batches``.

        Example:
            >>> import raylite as ray
            >>> next(ray.data.range_table(4).iter_torch_batches(batch_size=2))
            {'value': tensor([0, 1])}
        """
        from raylite.data._convert import torch_batches
        batches = self.iter_batches(batch_size=batch_size, batch_format="numpy",
                                    drop_last=drop_last,
                                    local_shuffle_buffer_size=local_shuffle_buffer_size,
                                    local_shuffle_seed=local_shuffle_seed)
        return torch_batches(batches, dtypes=dtypes, device=device, collate_fn=collate_fn)

    def to_torch(self, **options: Any):
        """A torch IterableDataset of ``(features, label)`` batches (Ray 1.x): options
        ``label_column``, ``feature_columns``, ``batch_size``, dtypes, ``drop_last``."""
        from raylite.data._convert import to_torch
        return to_torch(self, **options)

    def to_tf(self, feature_columns: Any = None, label_columns: Any = None, *,
              batch_size: int = 1, drop_last: bool = False, label_column: Any = None,
              local_shuffle_buffer_size: int | None = None,
              local_shuffle_seed: int | None = None):
        """A ``tf.data.Dataset`` of ``(features, labels)`` batches; a column name gives a
        tensor, a list of names a dict of tensors (Ray 1.x's ``label_column=`` works too).
        ``local_shuffle_buffer_size`` / ``local_shuffle_seed``: as in ``iter_batches``."""
        from raylite.data._convert import to_tf
        label_columns = label_columns if label_columns is not None else label_column
        if feature_columns is None:
            columns = self.columns() or []
            feature_columns = [c for c in columns if c not in (
                [label_columns] if isinstance(label_columns, str) else label_columns or [])]
        return to_tf(self, feature_columns, label_columns, batch_size=batch_size,
                     drop_last=drop_last, shuffle=(local_shuffle_buffer_size, local_shuffle_seed))

    def to_dask(self):
        """A ``dask.dataframe.DataFrame`` with one partition per block (runs the plan)."""
        from raylite.data._convert import to_dask
        return to_dask(self)

    def to_arrow_refs(self) -> list:
        """ObjectRefs of one pyarrow Table per block (non-tabular rows: a column ``value``)."""
        arrow = self.map_batches(_identity, batch_size=None, batch_format="pyarrow")
        return arrow.get_internal_block_refs()

    def to_pandas_refs(self) -> list:
        """ObjectRefs of one pandas DataFrame per block."""
        return [_to_pandas_remote.remote(ref) for ref in self.get_internal_block_refs()]

    def to_numpy_refs(self, *, column: str | None = None) -> list:
        """ObjectRefs of one numpy batch per block (a dict of arrays, or one array)."""
        return [_to_numpy_remote.remote(ref, column) for ref in self.get_internal_block_refs()]

    def iterator(self):
        """A DataIterator over this dataset (Ray 2.x): each ``iter_batches()`` is one epoch."""
        from raylite.data._iterator import dataset_iterator
        return dataset_iterator(self)

    def streaming_split(self, n: int, *, equal: bool = False,
                        locality_hints: list | None = None) -> list:
        """``n`` DataIterators over disjoint parts of the rows, for ``n`` consumers (train
        workers) iterating at the same time; the dataset streams through a coordinator actor
        as they ask, one execution per epoch. ``equal=True``: each gets ``count() // n`` rows.

        Example:
            >>> import raylite as ray
            >>> a, b = ray.data.range(10).streaming_split(2, equal=True)
            >>> len(list(a.iter_rows())), len(list(b.iter_rows()))
            (5, 5)
        """
        from raylite.data._iterator import streaming_split
        return streaming_split(self, n, equal=equal, locality_hints=locality_hints)

    def write_parquet(self, path: str, *, filesystem: Any = None, **arrow_parquet_args: Any) -> None:
        """Write one Parquet file per block into the directory ``path`` (a local path, a URI
        such as ``s3://bucket/prefix``, or a path on ``filesystem=``)."""
        from raylite.data._write import write
        write(self, path, "parquet", arrow_parquet_args, self._new_stats(), filesystem=filesystem)

    def write_csv(self, path: str, *, filesystem: Any = None, **arrow_csv_args: Any) -> None:
        """Write one CSV file (with a header) per block into the directory ``path``."""
        from raylite.data._write import write
        write(self, path, "csv", arrow_csv_args, self._new_stats(), filesystem=filesystem)

    def write_json(self, path: str, *, filesystem: Any = None, **pandas_json_args: Any) -> None:
        """Write one JSON-lines file per block into the directory ``path``."""
        from raylite.data._write import write
        write(self, path, "json", pandas_json_args, self._new_stats(), filesystem=filesystem)

    def write_numpy(self, path: str, *, column: str | None = None,
                    filesystem: Any = None) -> None:
        """Write one ``.npy`` file per block into the directory ``path``: the rows of a
        non-tabular dataset, or one ``column`` of a tabular one (needed unless it has one)."""
        from raylite.data._write import write
        if column is not None:
            schema = self._known_schema()
            if schema is not None and hasattr(schema, "names"):
                check_columns([column], list(schema.names), "write_numpy()")
        options = {} if column is None else {"column": column}
        write(self, path, "numpy", options, self._new_stats(), filesystem=filesystem)


def _identity(batch: Any) -> Any:
    return batch


@raylite.remote
def _to_pandas_remote(block: Block):
    return _block.to_pandas(block)


@raylite.remote
def _to_numpy_remote(block: Block, column: str | None):
    batch = _block.to_batch(block, "numpy")
    return batch[column] if column is not None and isinstance(batch, dict) else batch
