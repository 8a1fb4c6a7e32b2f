"""DatasetPipeline: a dataset processed window by window, each window's tasks running while
the previous window is consumed.

    ds.window(blocks_per_window=2)          windows  w0 w1 w2 ...
    pipe.map(f).filter(g)                   transforms applied to each window (lazy, fused)

    consumer:   [ consume w0 ][ consume w1 ][ consume w2 ]
    tasks:      [ run w0 ][ run w1 .......][ run w2 .......]
                          ^ w1 submitted before w0 is handed out: one window ahead
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from raylite.data import _block


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
    def iter_datasets(self) -> Iterator[Any]:
        """The windows as Datasets whose tasks are already submitted, one window ahead."""
        from raylite.data._dataset import Dataset
        events = self._events = []
        ready, ready_index = None, -1
        for index, window in enumerate(self._windows()):
            for transform in self._transforms:
                window = transform(window)
                if not isinstance(window, Dataset):
                    raise TypeError(f"a foreach_window() function must return a Dataset, got "
                                    f"{type(window).__name__}")
            running = window._start()
            events.append(("start", index))
            if ready is not None:
                yield from self._hand_out(ready, ready_index)
            ready, ready_index = running, index
        if ready is not None:
            yield from self._hand_out(ready, ready_index)

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

    def __repr__(self) -> str:
        windows = "?" if self._num_windows is None else self._num_windows
        return f"DatasetPipeline(num_windows={windows}, num_stages={len(self._transforms)})"

