"""DataContext: raylite.data's settings for this process, and the switch between the two
conventions of Ray Data that user code is written for.

    RAYLITE_API unset or 1  the book's Ray 1.9 Data: range(n) rows are plain ints,
                            from_items([1, 2]) rows are the items, batches are lists (plain
                            rows) or pandas DataFrames (tabular rows), rows print as ArrowRow
    RAYLITE_API=2           Ray 2.x Data: every row is a dict (range(n): {"id": n},
                            from_items of scalars: {"item": x}), batches are dicts of numpy
                            arrays, rows print as plain dicts

The environment variable is read when ``raylite.data`` is imported; in code, set
``ray.data.DataContext.get_current().api = 2`` (or 1). Each Dataset keeps the convention in
force when it was created (its creation function read the context), and so does every dataset
derived from it; changing ``api`` later changes only the datasets created after. Combining
datasets of the two conventions (union, zip) is an error.
"""

from __future__ import annotations

import enum
import os
import threading
import warnings
from dataclasses import dataclass, field, fields

API_ENVIRONMENT_VARIABLE = "RAYLITE_API"
_API_AT_IMPORT = os.environ.get(API_ENVIRONMENT_VARIABLE, "")
_API_NAMES = {"": 1, "1": 1, "1.9": 1, "2": 2, "2.x": 2}


def parse_api(value: object, source: str) -> int:
    """1 or 2 from what a user set (an int, or the environment variable's text)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and value in (1, 2):
        return value
    if isinstance(value, str) and value.strip().lower() in _API_NAMES:
        return _API_NAMES[value.strip().lower()]
    raise ValueError(f"{source} must be 1 (the book's Ray 1.9 Data: plain rows, pandas batches) "
                     f"or 2 (Ray 2.x Data: dict rows, numpy batches), got {value!r}")


def switch_hint(api: int) -> str:
    """The sentence that tells a user which switch selects the other convention."""
    if api == 2:
        return ("raylite.data runs Ray 2.x's convention here (RAYLITE_API=2: every row is a dict "
                "such as {'id': 0}, batches are dicts of numpy arrays); for the book's Ray 1.9 "
                "rows (plain ints, pandas batches) unset RAYLITE_API, or set "
                "ray.data.DataContext.get_current().api = 1 before creating the dataset (for "
                "map_batches alone, batch_format='pandas' gives a DataFrame)")
    return ("raylite.data runs the book's Ray 1.9 convention here (range() rows are plain ints, "
            "from_items([1, 2]) rows are the items, batches are lists or pandas DataFrames); "
            "for Ray 2.x rows such as {'id': 0} and numpy batches set RAYLITE_API=2, or "
            "ray.data.DataContext.get_current().api = 2 before creating the dataset")


_warned: set = set()


def _set_known(obj: object, name: str, value: object) -> None:
    """Set a setting; one raylite does not have is kept but warned about once (Ray's
    DataContext settings are tuning hints, which raylite's executor does without)."""
    if name not in {f.name for f in fields(obj)} and not name.startswith("_"):
        key = (type(obj).__name__, name)
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"raylite.data ignores {type(obj).__name__}.{name} (a Ray tuning "
                          "setting raylite's streaming executor does not have)", stacklevel=3)
    object.__setattr__(obj, name, value)


@dataclass
class ExecutionOptions:
    """Ray 2.x's ``DataContext.execution_options``. raylite always hands blocks out in order,
    so ``preserve_order=True`` is what happens anyway and ``False`` is a hint it need not take.

    Attributes:
        preserve_order: keep the order of the rows through every operation (always done).
        verbose_progress: Ray's per-operator progress detail; raylite's bars show it anyway.
    """

    preserve_order: bool = False
    verbose_progress: bool = False

    def __setattr__(self, name: str, value: object) -> None:
        _set_known(self, name, value)


@dataclass
class DataContext:
    """Settings of raylite.data for this process (``DataContext.get_current()``).

    Attributes:
        api: the Ray Data convention new datasets follow: 1 (the book's Ray 1.9, the default)
            or 2 (Ray 2.x); the environment variable ``RAYLITE_API`` sets it at import.
        max_blocks_in_flight: block tasks submitted ahead of the consumer; None means twice
            the cluster's CPUs.
        default_parallelism: blocks a creation function makes when not told.
        min_rows_per_block: creation functions make blocks at least this large (when they can).
        max_rows_per_block: ... and at most this large, so that streaming memory stays bounded.
        enable_progress_bars: show a progress bar per operator for long runs (only when
            stdout and stderr are terminals).
        progress_bar_delay_s: a bar appears only for executions still running after this long.
        execution_options: Ray 2.x's ExecutionOptions (``preserve_order``).

    Example:
        >>> import raylite as ray
        >>> ray.data.DataContext.get_current().api in (1, 2)
        True
    """

    max_blocks_in_flight: int | None = None
    default_parallelism: int = 200
    min_rows_per_block: int = 1000
    max_rows_per_block: int = 1_000_000
    enable_progress_bars: bool = True
    progress_bar_delay_s: float = 1.0
    api: int = field(default_factory=lambda: parse_api(_API_AT_IMPORT, API_ENVIRONMENT_VARIABLE))
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)

    _current = None
    _lock = threading.Lock()

    def __setattr__(self, name: str, value: object) -> None:
        if name == "api":
            value = parse_api(value, "DataContext.api")
        _set_known(self, name, value)

    @staticmethod
    def get_current() -> "DataContext":
        with DataContext._lock:
            if DataContext._current is None:
                DataContext._current = DataContext()
            return DataContext._current

    def set_config(self, key: str, value: object) -> None:
        """Ray's free-form settings (``ctx.set_config("debug_...", 2)``): kept, and warned
        about once, since raylite's executor reads none of them."""
        configs = self.__dict__.setdefault("_configs", {})
        if key not in configs:
            warnings.warn(f"raylite.data ignores DataContext.set_config({key!r}, ...)",
                          stacklevel=2)
        configs[key] = value

    def get_config(self, key: str, default: object = None) -> object:
        return self.__dict__.get("_configs", {}).get(key, default)

    def remove_config(self, key: str) -> None:
        self.__dict__.get("_configs", {}).pop(key, None)

    def num_blocks_for(self, num_rows: int, parallelism: int | None) -> int:
        """How many blocks to cut ``num_rows`` rows into."""
        if parallelism is not None:
            if not isinstance(parallelism, int) or parallelism < 1:
                raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
            return max(1, min(parallelism, num_rows))
        by_size = -(-num_rows // self.max_rows_per_block)
        by_count = min(self.default_parallelism, -(-num_rows // self.min_rows_per_block))
        return max(1, by_size, by_count)


class ShuffleStrategy(str, enum.Enum):
    """Ray's shuffle implementations, for ``DataContext.shuffle_strategy``; raylite has one
    (a sort-based exchange through the object store), so setting this is a hint."""

    SORT_SHUFFLE_PULL_BASED = "sort_shuffle_pull_based"
    SORT_SHUFFLE_PUSH_BASED = "sort_shuffle_push_based"
    HASH_SHUFFLE = "hash_shuffle"


def current_api() -> int:
    """The convention a dataset created now follows (1 or 2)."""
    return DataContext.get_current().api
