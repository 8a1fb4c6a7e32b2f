"""Conversions to and from other frameworks: torch, TensorFlow and Dask.

Each imports its framework on first use, inside the function that needs it. Batches travel as
numpy (``iter_batches(batch_format="numpy")``) and become tensors at the very end, in the
consumer's process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import raylite
from raylite.data import _block

if TYPE_CHECKING:
    from raylite.data._dataset import Dataset


# ==========================================================================================
# torch
# ==========================================================================================
def _torch_dtype(dtypes: Any, column: str | None):
    if dtypes is None or not isinstance(dtypes, dict):
        return dtypes
    return dtypes.get(column)


def _as_tensor(torch, array, dtype, device):
    if array.dtype == object:
        raise TypeError(f"iter_torch_batches(): a column of {type(array.flat[0]).__name__} "
                        "values cannot become a tensor; drop it with drop_columns() or "
                        "convert it in map_batches() first")
    if not array.flags.writeable:
        array = array.copy()  # torch wants writable memory; Arrow's buffers are read-only
    tensor = torch.as_tensor(array, dtype=dtype)
    return tensor.to(device) if device is not None else tensor


def torch_batches(batches: Iterator[Any], *, dtypes: Any = None, device: Any = None,
                  collate_fn: Callable | None = None) -> Iterator[Any]:
    """Numpy batches as torch tensors: a dict of tensors for tabular data, one tensor else."""
    import torch
    for batch in batches:
        if collate_fn is not None:
            yield collate_fn(batch)
        elif isinstance(batch, dict):
            yield {name: _as_tensor(torch, array, _torch_dtype(dtypes, name), device)
                   for name, array in batch.items()}
        else:
            yield _as_tensor(torch, batch, _torch_dtype(dtypes, None), device)


def to_torch(dataset: "Dataset", *, label_column: str | None = None,
             feature_columns: list[str] | None = None, batch_size: int = 1,
             label_column_dtype: Any = None, feature_column_dtypes: Any = None,
             unsqueeze_label_tensor: bool = True, unsqueeze_feature_tensors: bool = True,
             drop_last: bool = False):
    """A torch IterableDataset of ``(features, label)`` batches (Ray 1.x's ``to_torch``):
    the feature columns stacked into one ``(batch, n_features)`` tensor."""
    import torch

    columns = dataset.columns() or []
    if label_column is not None and label_column not in columns:
        raise ValueError(f"to_torch(label_column={label_column!r}): no such column; the dataset "
                         f"has columns {columns}")
    features = feature_columns or [c for c in columns if c != label_column]

    class _TorchDataset(torch.utils.data.IterableDataset):
        def __iter__(self):
            for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy",
                                              drop_last=drop_last):
                parts = [torch.as_tensor(batch[c].copy(), dtype=feature_column_dtypes)
                         for c in features]
                if unsqueeze_feature_tensors:
                    parts = [p.unsqueeze(1) if p.dim() == 1 else p for p in parts]
                x = torch.cat(parts, dim=1) if parts else torch.empty(0)
                if label_column is None:
                    yield x, None
                    continue
                y = torch.as_tensor(batch[label_column].copy(), dtype=label_column_dtype)
                yield x, (y.unsqueeze(1) if unsqueeze_label_tensor else y)

    return _TorchDataset()


def from_torch(dataset: Any) -> "Dataset":
    """A dataset of ``{"item": sample}`` rows from a torch Dataset (map-style or iterable).

    Example:
        >>> import raylite as ray, torch
        >>> tensors = torch.utils.data.TensorDataset(torch.arange(3))
        >>> ray.data.from_torch(tensors).count()
        3
    """
    from raylite.data._read import from_items
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        items = [{"item": dataset[i]} for i in range(len(dataset))]
    elif hasattr(dataset, "__iter__"):
        items = [{"item": sample} for sample in dataset]
    else:
        raise TypeError(f"from_torch() takes a torch Dataset (with __getitem__ and __len__, or "
                        f"__iter__), got {type(dataset).__name__}")
    return from_items(items)


# ==========================================================================================
# TensorFlow
# ==========================================================================================
def to_tf(dataset: "Dataset", feature_columns: Any, label_columns: Any = None, *,
          batch_size: int = 1, drop_last: bool = False,
          shuffle: tuple = (None, None)):
    """A ``tf.data.Dataset`` of ``(features, labels)`` batches: a column name gives a tensor,
    a list of names a dict of tensors; without ``label_columns``, features only.
    ``shuffle``: ``(local_shuffle_buffer_size, local_shuffle_seed)`` for ``iter_batches``."""
    import tensorflow as tf

    columns = dataset.columns() or []
    wanted = _names(feature_columns) + _names(label_columns)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ValueError(f"to_tf(): no column {', '.join(map(repr, missing))}; the dataset has "
                         f"columns {columns}")

    def pick(batch: dict, spec: Any):
        if isinstance(spec, str):
            return batch[spec]
        return {name: batch[name] for name in spec}

    def signature(spec: Any, sample: dict):
        def one(name):
            array = sample[name]
            return tf.TensorSpec(shape=(None,) + array.shape[1:],
                                 dtype=tf.as_dtype(array.dtype if array.dtype != object
                                                   else "string"))
        return one(spec) if isinstance(spec, str) else {name: one(name) for name in spec}

    def batches():
        return dataset.iter_batches(batch_size=batch_size, batch_format="numpy",
                                    drop_last=drop_last, local_shuffle_buffer_size=shuffle[0],
                                    local_shuffle_seed=shuffle[1])

    sample = next(iter(dataset.limit(1).iter_batches(batch_size=1, batch_format="numpy")), None)
    if sample is None:
        raise ValueError("to_tf(): the dataset is empty")

    def generator():
        for batch in batches():
            if label_columns is None:
                yield pick(batch, feature_columns)
            else:
                yield pick(batch, feature_columns), pick(batch, label_columns)

    features = signature(feature_columns, sample)
    output = features if label_columns is None else (features,
                                                     signature(label_columns, sample))
    return tf.data.Dataset.from_generator(generator, output_signature=output)


def _names(spec: Any) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, (list, tuple)) and all(isinstance(c, str) for c in spec):
        return list(spec)
    raise TypeError(f"to_tf() takes a column name or a list of them, got {spec!r}")


# ==========================================================================================
# Dask
# ==========================================================================================
def _block_to_pandas(block):
    return _block.to_pandas(block)


def to_dask(dataset: "Dataset"):
    """A ``dask.dataframe.DataFrame`` with one partition per block.

    Each partition's graph starts from its block's ObjectRef (a persisted key, see
    ``raylite.util.dask``): computed with ``ray_dask_get`` (or inside
    ``enable_dask_on_ray()``), every partition becomes pandas inside a raylite task, reading its
    block from shared memory; under Dask's own schedulers the blocks are fetched by the driver.
    """
    import dask
    import dask.dataframe as dd
    from dask.delayed import Delayed
    from raylite.util.dask import _stored
    blocks = dataset.materialize()._plan.block_tasks()
    refs = [task.source.ref for task in blocks if task.source.metadata().num_rows]
    if not refs:
        return dd.from_pandas(_block.to_pandas([]), npartitions=1)
    meta = _block_to_pandas(raylite.get(refs[0])).iloc[:0]
    convert = dask.delayed(_block_to_pandas, pure=True)
    partitions = []
    for ref in refs:
        key = f"raylite-block-{ref.hex()}"
        partitions.append(convert(Delayed(key, {key: _stored(key, ref)})))
    return dd.from_delayed(partitions, meta=meta, verify_meta=False)


def _pandas_to_block(frame: Any):
    arrow = _block.pa()
    block = arrow.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    return block, _block.metadata(block)


def from_dask(df: Any) -> "Dataset":
    """A tabular dataset with one block per partition of a ``dask.dataframe.DataFrame``.

    The partitions are computed by raylite (``raylite.util.dask.ray_dask_get``) and each one
    becomes an Arrow block inside a raylite task: no partition passes through the driver.
    """
    from raylite.data._dataset import Dataset
    from raylite.data._plan import BlockTask, ExecutionPlan, RefInput
    from raylite.util.dask import ray_dask_get
    if not (hasattr(df, "to_delayed") and hasattr(df, "npartitions")):
        raise TypeError(f"from_dask() takes a dask DataFrame, got {type(df).__name__}")
    partitions = df.to_delayed()
    keys = [part.key for part in partitions]
    graph = {}
    for part in partitions:
        graph.update(part.__dask_graph__())
    frame_refs = ray_dask_get(graph, keys, ray_persist=True)
    to_block = raylite.remote(_pandas_to_block).options(num_returns=2)
    tasks = []
    for ref in frame_refs:
        block_ref, meta_ref = to_block.remote(ref)
        tasks.append(BlockTask(RefInput(block_ref, meta_ref)))
    return Dataset(ExecutionPlan(tasks))
