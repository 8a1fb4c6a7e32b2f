"""DataIterator (Ray 2.x): what ``Dataset.iterator()`` and ``Dataset.streaming_split(n)`` give
to a training loop, and the coordinator actor that feeds n of them at once.

    ds.streaming_split(2, equal=True)  ──▶  [DataIterator 0, DataIterator 1]   (sent to workers)

    worker 0: it.iter_batches() ─┐                         ┌─ stream of the dataset's blocks,
                                 ├─ next_block(i, epoch) ──┤  run with backpressure, one
    worker 1: it.iter_batches() ─┘   SplitCoordinator      └─ execution per epoch

Each ``iter_*`` call on an iterator is one epoch. The coordinator hands the next block to
whichever split asks (``equal=True``: until each split has ``count() // n`` rows, slicing the
block that crosses a split's share and giving the rest to the next asker), so the splits run at
the pace of their consumers and only the blocks in flight are held. Epoch e+1 starts once every
split has finished epoch e.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable, Iterator

import raylite
from raylite.data import _block
from raylite.data._arguments import check_positive_int


class DataIterator:
    """Batches of a dataset, or of one split of it, for a training loop; each ``iter_*`` call
    is one pass (epoch) over the data.

    Example:
        >>> import raylite as ray
        >>> it = ray.data.range(6).iterator()
        >>> [len(b) for b in it.iter_batches(batch_size=4, batch_format="numpy")]
        [4, 2]
    """

    def __init__(self, blocks: Callable[[int], Iterator[tuple[Any, Any]]], name: str,
                 dataset: Any = None):
        self._blocks = blocks      # epoch -> (block_ref, metadata) pairs
        self._name = name
        self._epoch = 0
        # rows and "default" batches follow the dataset's convention (RAYLITE_API 1 or 2)
        self._user_rows = dataset._user_rows if dataset is not None else _block.output_rows
        self._batch_format = dataset._batch_format if dataset is not None else (lambda f: f)

    def _next_epoch_blocks(self) -> Iterator[Any]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        for block_ref, _meta in self._blocks(epoch):
            yield raylite.get(block_ref)

    def iter_batches(self, *, batch_size: int | None = 256, batch_format: str | None = "default",
                     drop_last: bool = False, prefetch_batches: int = 1,
                     prefetch_blocks: int = 0, local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """The rows in batches of ``batch_size`` (see ``Dataset.iter_batches``)."""
        if batch_format is not None:
            _block.check_batch_format(batch_format)
        return batches_of(self._next_epoch_blocks(), batch_size, self._batch_format(batch_format),
                          drop_last, local_shuffle_buffer_size, local_shuffle_seed)

    def iter_rows(self, **prefetch_options: Any) -> Iterator[Any]:
        """The rows, one by one (prefetch options are accepted for Ray's sake)."""
        for block in self._next_epoch_blocks():
            yield from self._user_rows(block)

    def to_tf(self, *args: Any, **options: Any) -> Any:
        """One epoch as a ``tf.data.Dataset`` (see ``Dataset.to_tf``)."""
        return self.materialize().to_tf(*args, **options)

    def stats(self) -> str:
        return f"{self!r}: {self._epoch} epoch(s) iterated"

    def iter_torch_batches(self, *, batch_size: int | None = 256, dtypes: Any = None,
                           device: Any = None, collate_fn: Callable | None = None,
                           drop_last: bool = False, **options: Any) -> Iterator[Any]:
        """Batches of torch tensors (see ``Dataset.iter_torch_batches``)."""
        from raylite.data._convert import torch_batches
        batches = self.iter_batches(batch_size=batch_size, batch_format="numpy",
                                    drop_last=drop_last, **options)
        return torch_batches(batches, dtypes=dtypes, device=device, collate_fn=collate_fn)

    def materialize(self) -> Any:
        """One epoch's blocks as a Dataset held in the object store."""
        from raylite.data._dataset import Dataset
        from raylite.data._plan import BlockTask, ExecutionPlan, RefInput
        epoch, self._epoch = self._epoch, self._epoch + 1
        tasks = [BlockTask(RefInput(ref, meta)) for ref, meta in self._blocks(epoch)]
        return Dataset(ExecutionPlan(tasks))

    def __repr__(self) -> str:
        return f"DataIterator({self._name})"


def batches_of(blocks: Iterator[Any], batch_size: int | None, batch_format: Any, drop_last: bool,
               local_shuffle_buffer_size: int | None, local_shuffle_seed: int | None
               ) -> Iterator[Any]:
    """``blocks`` re-cut into batches (shuffled locally within ``local_shuffle_buffer_size``
    rows when given): what ``Dataset.iter_batches`` and ``DataIterator.iter_batches`` yield."""
    if batch_size is not None:
        check_positive_int(batch_size, "iter_batches(batch_size=...)")
    if local_shuffle_buffer_size is not None:
        check_positive_int(local_shuffle_buffer_size, "iter_batches(local_shuffle_buffer_size=...)")
        blocks = _block.local_shuffle(blocks, local_shuffle_buffer_size, local_shuffle_seed)
    return _block.batches(blocks, batch_size, batch_format, drop_last)


# ==========================================================================================
# Dataset.iterator(): the whole dataset, streamed in this process
# ==========================================================================================
def dataset_iterator(dataset: Any) -> DataIterator:
    def blocks(_epoch: int) -> Iterator[tuple[Any, Any]]:
        yield from dataset._stream()
    return DataIterator(blocks, repr(dataset), dataset)


# ==========================================================================================
# Dataset.streaming_split(n)
# ==========================================================================================
def _slice(block: Any, start: int, stop: int) -> tuple:
    part = _block.slice_block(block, start, stop)
    return part, _block.metadata(part)


class SplitCoordinator:
    """An async actor streaming one dataset to ``n`` split iterators (see the module docs)."""

    def __init__(self, dataset: Any, n: int, equal: bool):
        self.dataset = dataset
        self.n = n
        self.equal = equal
        self.share = dataset.count() // n if equal else None
        self.epoch = -1
        self.finished: set[int] = set(range(n))  # the splits done with the current epoch
        self.rows = [0] * n
        self.stream: Iterator | None = None
        self.leftovers: collections.deque = collections.deque()
        self.changed = asyncio.Condition()
        self.slicer = raylite.remote(_slice).options(num_returns=2)

    async def next_block(self, index: int, epoch: int) -> tuple:
        """``("block", ref, metadata)`` for split ``index`` in ``epoch``, or ``("end",)``."""
        async with self.changed:
            if epoch > self.epoch:
                await self.changed.wait_for(lambda: len(self.finished) == self.n
                                            or epoch <= self.epoch)
                if epoch > self.epoch:
                    self._start_epoch(epoch)
            item = self._take(index)
            if item[0] == "end":
                self.finished.add(index)
                self.changed.notify_all()
            return item

    def _start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.finished = set()
        self.rows = [0] * self.n
        self.leftovers.clear()
        self.stream = iter(self.dataset._stream())

    def _pull(self) -> tuple | None:
        if self.leftovers:
            return self.leftovers.popleft()
        try:
            block_ref, meta = next(self.stream)
        except StopIteration:
            return None
        from raylite.data._plan import resolve_metadata
        return block_ref, resolve_metadata(meta)

    def _take(self, index: int) -> tuple:
        if index in self.finished:
            return ("end",)
        while True:
            if self.share is not None and self.rows[index] >= self.share:
                return ("end",)
            pulled = self._pull()
            if pulled is None:
                return ("end",)
            block_ref, meta = pulled
            if not meta.num_rows:
                continue
            if self.share is not None and self.rows[index] + meta.num_rows > self.share:
                keep = self.share - self.rows[index]
                head = self.slicer.remote(block_ref, 0, keep)
                tail = self.slicer.remote(block_ref, keep, meta.num_rows)
                self.leftovers.appendleft((tail[0], raylite.get(tail[1])))
                block_ref, meta = head[0], raylite.get(head[1])
            self.rows[index] += meta.num_rows
            return ("block", block_ref, meta)


def _split_blocks(coordinator: Any, index: int) -> Callable[[int], Iterator[tuple]]:
    def blocks(epoch: int) -> Iterator[tuple]:
        while True:
            item = raylite.get(coordinator.next_block.remote(index, epoch))
            if item[0] == "end":
                return
            yield item[1], item[2]
    return blocks


def streaming_split(dataset: Any, n: int, *, equal: bool = False,
                    locality_hints: list | None = None) -> list[DataIterator]:
    """``n`` DataIterators over disjoint parts of ``dataset``, meant to be iterated at the same
    time by ``n`` consumers (train workers); see the module docs."""
    check_positive_int(n, "streaming_split(n)")
    if locality_hints is not None and len(locality_hints) != n:
        raise ValueError(f"streaming_split(locality_hints=...) needs one hint per split ({n}), "
                         f"got {len(locality_hints)}")
    # one node: locality hints have nothing to choose between, as Ray treats them: a hint
    coordinator = raylite.remote(SplitCoordinator).options(
        num_cpus=0, max_concurrency=2 * n + 2).remote(dataset, n, bool(equal))
    return [DataIterator(_split_blocks(coordinator, i), f"split {i} of {n}", dataset)
            for i in range(n)]
