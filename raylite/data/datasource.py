"""``ray.data.datasource``: custom sources read in parallel read tasks.

    class MySource(Datasource):
        def create_reader(self, **read_args):            # Ray 2.2
            return MyReader(**read_args)

    class MyReader(Reader):
        def estimate_inmemory_data_size(self):
            return None
        def get_read_tasks(self, parallelism):
            return [ReadTask(lambda i=i: [pd.DataFrame({"x": [i]})], BlockMetadata(...))
                    for i in range(parallelism)]

    ds = ray.data.read_datasource(MySource(), parallelism=4, any_read_arg=1)

A Datasource may instead implement ``get_read_tasks(parallelism)`` itself (today's Ray) or
``prepare_read(parallelism, **read_args)`` (Ray 1.x-2.1). Each ReadTask's ``read_fn`` runs in
a task of its own and returns an iterable of blocks (pandas DataFrames, pyarrow Tables, dicts
of numpy arrays, or lists of rows); they become one block of the dataset.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Datasource", "Reader", "ReadTask", "read_datasource"]


class ReadTask:
    """One read: ``read_fn()`` returns an iterable of blocks; ``metadata`` describes them
    (``BlockMetadata``; may be None)."""

    def __init__(self, read_fn: Callable[[], Iterable[Any]], metadata: Any = None):
        if not callable(read_fn):
            raise TypeError(f"ReadTask needs a function, got {type(read_fn).__name__}")
        self.read_fn = read_fn
        self.metadata = metadata

    def get_metadata(self) -> Any:
        return self.metadata

    def __call__(self) -> Iterable[Any]:
        return self.read_fn()


class Reader:
    """What ``Datasource.create_reader(**read_args)`` returns (Ray 2.2)."""

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        raise NotImplementedError


class Datasource:
    """A source of data; implement ``create_reader`` or ``get_read_tasks`` (or the 1.x
    ``prepare_read``)."""

    def create_reader(self, **read_args: Any) -> Reader:
        source = self
        if type(self).get_read_tasks is not Datasource.get_read_tasks:
            class _Own(Reader):
                def estimate_inmemory_data_size(self) -> int | None:
                    return source.estimate_inmemory_data_size()

                def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
                    return source.get_read_tasks(parallelism)
            return _Own()
        if type(self).prepare_read is not Datasource.prepare_read:
            class _Prepared(Reader):
                def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
                    return source.prepare_read(parallelism, **read_args)
            return _Prepared()
        raise NotImplementedError(f"{type(self).__name__} must implement create_reader(**args), "
                                  "get_read_tasks(parallelism) or prepare_read(parallelism, ...)")

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        raise NotImplementedError

    def prepare_read(self, parallelism: int, **read_args: Any) -> list[ReadTask]:
        raise NotImplementedError

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_name(self) -> str:
        name = type(self).__name__
        return name[:-len("Datasource")] if name.endswith("Datasource") and \
            name != "Datasource" else name


def _run_read(read_task: ReadTask) -> Any:
    from raylite.data import _block
    blocks = read_task()
    if blocks is None:
        raise TypeError("a ReadTask's read_fn returned None; it must return an iterable of "
                        "blocks (DataFrames, pyarrow Tables, dicts of arrays or lists of rows)")
    if not isinstance(blocks, (list, tuple)) and not hasattr(blocks, "__next__"):
        blocks = [blocks]  # one block returned as it is
    converted = [_block.from_batch(b, "a ReadTask's read_fn") for b in blocks]
    return _block.concat(converted) if converted else []


def read_datasource(datasource: Datasource, *, parallelism: int | None = None,
                    ray_remote_args: dict | None = None, **read_args: Any) -> Any:
    """A Dataset read from ``datasource``: one task per ReadTask it makes for ``parallelism``
    (default: the cluster's CPUs, at least 2).

    Example:
        >>> import raylite as ray
        >>> class Squares(Datasource):
        ...     def get_read_tasks(self, parallelism):
        ...         return [ReadTask(lambda i=i: [[i * i]]) for i in range(parallelism)]
        >>> sorted(ray.data.read_datasource(Squares(), parallelism=3).take_all())
        [0, 1, 4]
    """
    import raylite
    from raylite.data._plan import ReadTask as PlanRead
    from raylite.data._read import _dataset_of_reads
    if not isinstance(datasource, Datasource):
        raise TypeError(f"read_datasource takes a raylite.data.datasource.Datasource, got "
                        f"{type(datasource).__name__}")
    if ray_remote_args:
        raise ValueError("read_datasource(ray_remote_args=...) is not supported by raylite; "
                         "leave it out")
    if parallelism is None or parallelism == -1:
        if not raylite.is_initialized():
            raylite.init()
        parallelism = max(2, int(raylite.cluster_resources().get("CPU", 1)))
    if not isinstance(parallelism, int) or parallelism < 1:
        raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
    tasks = datasource.create_reader(**read_args).get_read_tasks(parallelism)
    if not isinstance(tasks, list) or not all(isinstance(t, ReadTask) for t in tasks):
        raise TypeError(f"{type(datasource).__name__}.get_read_tasks must return a list of "
                        "raylite.data.datasource.ReadTask")
    name = datasource.get_name()
    reads = [PlanRead(functools.partial(_run_read, task), f"Read{name}[{i}]",
                      getattr(task.metadata, "num_rows", None))
             for i, task in enumerate(tasks)]
    return _dataset_of_reads(reads)
