"""DatasetPipeline: a dataset processed window by window, each window's tasks running while
the previous window is consumed.

    ds.window(blocks_per_window=2)          windows  w0 w1 w2 ...
    pipe.map(f).filter(g)                   transforms applied to each window (lazy, fused)

    consumer:   [ consume w0 ][ consume w1 ][ consume w2 ]
    tasks:      [ run w0 ][ run w1 .......][ run w2 .......]
                          ^ w1 submitted before w0 is handed out: one window ahead

At most two windows are in flight (the one consumed and the next), so memory stays bounded by
the window size. ``repeat(n)`` makes epochs: the window source yields an ``EPOCH_END`` marker
between them, which ``iter_epochs()`` splits on. ``split(n)`` hands each window's n parts to n
pipelines through a coordinator actor that moves to the next window only once every part of
the current one was taken.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Callable, Iterator

import raylite
from raylite.data import _block


class _EpochEnd:
    """The marker between two epochs in a pipeline's window source."""

    def __reduce__(self):
        return (_epoch_end, ())

    def __repr__(self) -> str:
        return "EPOCH_END"


EPOCH_END = _EpochEnd()


def _epoch_end() -> _EpochEnd:
    return EPOCH_END


class DatasetPipeline:
    """Windows of a Dataset, with the Dataset's row-wise transforms applied to each.

    Example:
        >>> import raylite as ray
        >>> pipe = ray.data.range(8, parallelism=4).window(blocks_per_window=2)
        >>> pipe.map(lambda x: x * 2).take(5)
        [0, 2, 4, 6, 8]
    """

    def __init__(self, windows: Callable[[], Iterator[Any]], num_windows: int | None,
                 transforms: tuple = ()):
        self._windows = windows
        self._num_windows = num_windows
        self._transforms = transforms
        self._events: list[tuple[str, int]] = []  # ("start"/"consume"/"done", window index)

    # --------------------------------------------------------------------------------------
    # transforms: applied to every window
    # --------------------------------------------------------------------------------------
    def foreach_window(self, fn: Callable[[Any], Any]) -> "DatasetPipeline":
        """Apply ``fn(window: Dataset) -> Dataset`` to every window."""
        if not callable(fn):
            raise TypeError(f"foreach_window() needs a function, got {type(fn).__name__}")
        return DatasetPipeline(self._windows, self._num_windows, self._transforms + (fn,))

    def map(self, fn: Callable, **kwargs: Any) -> "DatasetPipeline":
        return self._each("map", fn, kwargs)

    def filter(self, fn: Callable, **kwargs: Any) -> "DatasetPipeline":
        return self._each("filter", fn, kwargs)

    def flat_map(self, fn: Callable, **kwargs: Any) -> "DatasetPipeline":
        return self._each("flat_map", fn, kwargs)

    def map_batches(self, fn: Callable, **kwargs: Any) -> "DatasetPipeline":
        return self._each("map_batches", fn, kwargs)

    def add_column(self, col: str, fn: Callable, **kwargs: Any) -> "DatasetPipeline":
        from raylite.data._arguments import check_function
        check_function(fn, "add_column")
        return self.foreach_window(lambda ds: ds.add_column(col, fn, **kwargs))

    def random_shuffle_each_window(self, *, seed: int | None = None,
                                   num_blocks: int | None = None) -> "DatasetPipeline":
        """Shuffle the rows within each window (``Dataset.random_shuffle`` per window)."""
        return self.foreach_window(lambda ds: ds.random_shuffle(seed=seed, num_blocks=num_blocks))

    def repartition_each_window(self, num_blocks: int, *,
                                shuffle: bool = False) -> "DatasetPipeline":
        """Give each window ``num_blocks`` blocks (``Dataset.repartition`` per window)."""
        from raylite.data._arguments import check_positive_int
        check_positive_int(num_blocks, "repartition_each_window(num_blocks)")
        return self.foreach_window(lambda ds: ds.repartition(num_blocks, shuffle=shuffle))

    # --------------------------------------------------------------------------------------
    # reshaping: epochs, windows, splits
    # --------------------------------------------------------------------------------------
    def repeat(self, times: int | None = None) -> "DatasetPipeline":
        """All windows again, ``times`` times in all (None: forever); each pass is an epoch
        (see ``iter_epochs``). The windows are re-run on every pass."""
        from raylite.data._arguments import check_positive_int
        if times is not None:
            check_positive_int(times, "repeat(times)")

        def windows() -> Iterator[Any]:
            epoch = 0
            while times is None or epoch < times:
                yield from (w for w in self._transformed() if w is not EPOCH_END)
                yield EPOCH_END
                epoch += 1
        count = None if times is None or self._num_windows is None else self._num_windows * times
        return DatasetPipeline(windows, count)

    def iter_epochs(self, max_epoch: int = -1) -> Iterator["DatasetPipeline"]:
        """One DatasetPipeline per epoch (per pass of ``repeat``), to consume in turn.

        Example:
            >>> import raylite as ray
            >>> [e.take_all() for e in ray.data.range(2).repeat(2).iter_epochs()]
            [[0, 1], [0, 1]]
        """
        source = self._transformed()   # windows not run yet: holding one back costs nothing
        pending: list = []

        def peek() -> bool:
            if not pending:
                pending.append(next(source, _NOTHING))
            return pending[0] is not _NOTHING

        class Epoch:
            def __init__(self) -> None:
                self.live = True         # still reading its windows from the shared source
                self.held: list = []     # its windows taken from the source by a later epoch

            def windows(self) -> Iterator[Any]:
                while self.held:
                    yield self.held.pop(0)
                while self.live and peek():
                    window = pending.pop()
                    if window is EPOCH_END:
                        self.live = False
                        return
                    yield window
                self.live = False

            def finish(self) -> None:  # the next epoch is asked for: keep what is left of this
                while self.live and peek():
                    window = pending.pop()
                    if window is EPOCH_END:
                        break
                    self.held.append(window)
                self.live = False

        epoch, current = 0, None
        while max_epoch < 0 or epoch < max_epoch:
            if current is not None:
                current.finish()
            if not peek():
                return
            if pending[0] is EPOCH_END:  # an empty epoch
                pending.pop()
                current = None
                yield DatasetPipeline(lambda: iter(()), 0)
            else:
                current = Epoch()
                yield DatasetPipeline(current.windows, None)
            epoch += 1

    def rewindow(self, *, blocks_per_window: int,
                 preserve_epoch: bool = True) -> "DatasetPipeline":
        """The same blocks regrouped into windows of ``blocks_per_window`` blocks (windows
        never span two epochs, unless ``preserve_epoch=False``)."""
        from raylite.data._arguments import check_positive_int
        from raylite.data._dataset import Dataset
        from raylite.data._plan import ExecutionPlan
        check_positive_int(blocks_per_window, "rewindow(blocks_per_window=...)")

        def windows() -> Iterator[Any]:
            tasks: list = []
            for window in self._transformed():
                if window is EPOCH_END:
                    if preserve_epoch and tasks:
                        yield Dataset(ExecutionPlan(tasks))
                        tasks = []
                    yield EPOCH_END
                    continue
                tasks.extend(window._plan.block_tasks())
                while len(tasks) >= blocks_per_window:
                    yield Dataset(ExecutionPlan(tasks[:blocks_per_window]))
                    tasks = tasks[blocks_per_window:]
            if tasks:
                yield Dataset(ExecutionPlan(tasks))
        return DatasetPipeline(windows, None)

    def split(self, n: int, *, equal: bool = False,
              locality_hints: list | None = None) -> list["DatasetPipeline"]:
        """``n`` pipelines, each with one part of every window (``Dataset.split`` per window),
        to be consumed at the same time by ``n`` consumers (e.g. trainer actors). A coordinator
        actor moves on to the next window only when every part of the current one was taken,
        so memory stays bounded by two windows. ``locality_hints`` (one actor per split) are
        accepted as the hint they are in Ray; raylite has one node to place blocks on."""
        from raylite.data._arguments import check_positive_int
        check_positive_int(n, "split(n)")
        if locality_hints is not None and len(locality_hints) != n:
            raise ValueError(f"split(locality_hints=...) needs one hint per split ({n}), got "
                             f"{len(locality_hints)}")
        coordinator = raylite.remote(_WindowSplitter).options(
            num_cpus=0, max_concurrency=2 * n + 2).remote(self, n, bool(equal))
        return [DatasetPipeline(_split_windows(coordinator, i), self._num_windows)
                for i in range(n)]

    # --------------------------------------------------------------------------------------
    # writing, window by window
    # --------------------------------------------------------------------------------------
    def write_parquet(self, path: str, **arrow_parquet_args: Any) -> None:
        """Write every window's blocks as Parquet files into the directory ``path``."""
        self._write(path, "parquet", arrow_parquet_args)

    def write_csv(self, path: str, **arrow_csv_args: Any) -> None:
        """Write every window's blocks as CSV files into the directory ``path``."""
        self._write(path, "csv", arrow_csv_args)

    def write_json(self, path: str, **pandas_json_args: Any) -> None:
        """Write every window's blocks as JSON-lines files into the directory ``path``."""
        self._write(path, "json", pandas_json_args)

    def _write(self, path: str, file_format: str, options: dict) -> None:
        """One window at a time (the next one running meanwhile); the file names keep the
        pipeline's order: ``{write id}_{window:06d}_{block:06d}``."""
        from raylite.data._write import write
        write_id = uuid.uuid4().hex[:16]
        for index, window in enumerate(self.iter_datasets()):
            write(window, path, file_format, options, window._new_stats(),
                  file_prefix=f"{write_id}_{index:06d}")

    def _each(self, name: str, fn: Callable, kwargs: dict) -> "DatasetPipeline":
        from raylite.data._arguments import user_fn_strategy
        from raylite.data._dataset import Dataset
        # a callable class runs on an actor pool per window; check its options now, not at the
        # first window
        user_fn_strategy(fn, name, kwargs.get("fn_constructor_args"),
                         kwargs.get("fn_constructor_kwargs"), kwargs.get("compute"),
                         kwargs.get("concurrency"))
        if name == "map_batches":
            _block.check_batch_format(kwargs.get("batch_format", "default"))
        method = getattr(Dataset, name)
        return self.foreach_window(lambda ds: method(ds, fn, **kwargs))

    # --------------------------------------------------------------------------------------
    # consuming
    # --------------------------------------------------------------------------------------
    def _transformed(self) -> Iterator[Any]:
        """The windows with this pipeline's transforms applied (not run yet), and EPOCH_END
        markers between epochs."""
        from raylite.data._dataset import Dataset
        for window in self._windows():
            if window is EPOCH_END:
                yield window
                continue
            for transform in self._transforms:
                window = transform(window)
                if not isinstance(window, Dataset):
                    raise TypeError(f"a foreach_window() function must return a Dataset, got "
                                    f"{type(window).__name__}")
            yield window

    def _started(self, with_epochs: bool = False) -> Iterator[Any]:
        """The windows as Datasets whose tasks are already submitted, one window ahead (and
        the EPOCH_END markers, ``with_epochs``)."""
        events = self._events = []
        ready, ready_index, index = None, -1, 0
        for window in self._transformed():
            if window is EPOCH_END:
                if ready is not None:
                    yield from self._hand_out(ready, ready_index)
                    ready = None
                if with_epochs:
                    yield EPOCH_END
                continue
            running = window._start()
            events.append(("start", index))
            if ready is not None:
                yield from self._hand_out(ready, ready_index)
            ready, ready_index, index = running, index, index + 1
        if ready is not None:
            yield from self._hand_out(ready, ready_index)

    def iter_datasets(self) -> Iterator[Any]:
        """The windows as Datasets whose tasks are already submitted, one window ahead."""
        return self._started()

    def _hand_out(self, window: Any, index: int) -> Iterator[Any]:
        self._events.append(("consume", index))
        yield window
        self._events.append(("done", index))

    def _iter_blocks(self) -> Iterator[Any]:
        for window in self.iter_datasets():
            yield from window._iter_blocks()

    def iter_rows(self) -> Iterator[Any]:
        """All rows, window after window."""
        for block in self._iter_blocks():
            yield from _block.output_rows(block)

    def iter_batches(self, *, batch_size: int | None = 256, batch_format: str = "default",
                     drop_last: bool = False, prefetch_blocks: int = 0,
                     prefetch_batches: int = 1) -> Iterator[Any]:
        """All rows in batches (batches may span windows); see ``Dataset.iter_batches``."""
        from raylite.data._arguments import check_positive_int
        _block.check_batch_format(batch_format)
        if batch_size is not None:
            check_positive_int(batch_size, "iter_batches(batch_size=...)")
        yield from _block.batches(self._iter_blocks(), batch_size, batch_format, drop_last)

    def iter_torch_batches(self, *, batch_size: int | None = 256, dtypes: Any = None,
                           device: Any = None, collate_fn: Callable | None = None,
                           drop_last: bool = False) -> Iterator[Any]:
        """All rows in batches of torch tensors; see ``Dataset.iter_torch_batches``."""
        from raylite.data._convert import torch_batches
        batches = self.iter_batches(batch_size=batch_size, batch_format="numpy",
                                    drop_last=drop_last)
        return torch_batches(batches, dtypes=dtypes, device=device, collate_fn=collate_fn)

    def take(self, limit: int = 20) -> list:
        """The first ``limit`` rows."""
        out: list = []
        if limit <= 0:
            return out
        rows = self.iter_rows()
        for row in rows:
            out.append(row)
            if len(out) >= limit:
                break
        rows.close()
        return out

    def take_all(self) -> list:
        return list(self.iter_rows())

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows, one per line."""
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        """The number of rows in all windows."""
        return sum(window.count() for window in self.iter_datasets())

    def num_windows(self) -> int | None:
        return self._num_windows

    def __reduce__(self):  # a pipeline sent to an actor travels as its window source
        return (_rebuild, (self._windows, self._num_windows, self._transforms))

    def __repr__(self) -> str:
        windows = "?" if self._num_windows is None else self._num_windows
        return f"DatasetPipeline(num_windows={windows}, num_stages={len(self._transforms)})"



def _rebuild(windows: Callable, num_windows: int | None, transforms: tuple) -> DatasetPipeline:
    return DatasetPipeline(windows, num_windows, transforms)


_NOTHING = object()


def repeat_dataset(dataset: Any, times: int | None) -> DatasetPipeline:
    """``Dataset.repeat``: the (materialized) dataset as one window per epoch."""
    from raylite.data._arguments import check_positive_int
    if times is not None:
        check_positive_int(times, "repeat(times)")
    base = dataset.materialize()

    def windows() -> Iterator[Any]:
        epoch = 0
        while times is None or epoch < times:
            yield base
            yield EPOCH_END
            epoch += 1
    return DatasetPipeline(windows, times)


# ==========================================================================================
# split(n): one coordinator actor, n pipelines
# ==========================================================================================
class _WindowSplitter:
    """Hands window k's part i to pipeline i; fetches window k+1 (the next one is already
    running) only once all n parts of window k were taken."""

    def __init__(self, pipeline: DatasetPipeline, n: int, equal: bool):
        self.source = pipeline._started(with_epochs=True)
        self.n = n
        self.equal = equal
        self.index = -1              # the window whose parts are being handed out
        self.parts: list | None = None
        self.taken: set[int] = set(range(n))
        self.done = False
        self.changed = asyncio.Condition()

    async def next_window(self, split: int, index: int) -> tuple:
        """``("window", part)``, ``("epoch",)`` or ``("done",)`` for split ``split``'s
        ``index``-th request."""
        async with self.changed:
            await self.changed.wait_for(lambda: index <= self.index or len(self.taken) == self.n
                                        or self.done)
            if index > self.index and not self.done:
                self._advance()
            if self.done and index > self.index:
                return ("done",)
            self.taken.add(split)
            self.changed.notify_all()
            part = self.parts[split]
            return ("epoch",) if part is EPOCH_END else ("window", part)

    def _advance(self) -> None:
        window = next(self.source, None)
        if window is None:
            self.done, self.parts = True, None
            return
        self.index += 1
        self.taken = set()
        if window is EPOCH_END:
            self.parts = [EPOCH_END] * self.n
        else:
            self.parts = window.split(self.n, equal=self.equal)


def _split_windows(coordinator: Any, split: int) -> Callable[[], Iterator[Any]]:
    def windows() -> Iterator[Any]:
        index = 0
        while True:
            reply = raylite.get(coordinator.next_window.remote(split, index))
            index += 1
            if reply[0] == "done":
                return
            yield EPOCH_END if reply[0] == "epoch" else reply[1]
    return windows
