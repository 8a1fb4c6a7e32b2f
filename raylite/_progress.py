"""Progress bars for long operations (Data, Tune, RLlib), shown only on a terminal.

One small seam over ``rich.progress`` so each library draws its bars the same way and none draws
anything when its output goes to a file, a pipe or a test's capture::

    with progress_bar("Map_Batches", total=num_blocks, unit="blocks") as bar:
        for block in blocks:
            ...
            bar.advance()

A bar is shown when standard output is a terminal, ``RAYLITE_PROGRESS`` is not ``0`` and rich is
installed; otherwise every call on it does nothing. While a bar is shown, ``print`` output still
appears, above the bar. Nested bars (a Data pipeline inside a Tune trial in the driver) stack.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, TextIO

__all__ = ["progress_bar", "progress_enabled", "ProgressBar"]

_lock = threading.Lock()
_live: Any = None       # the one rich.progress.Progress drawing every open bar
_open = 0               # bars currently open on it


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether bars are drawn: ``stream`` (default stdout) is a terminal and not switched off."""
    if os.environ.get("RAYLITE_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # closed or replaced streams
        return False


class ProgressBar:
    """One bar: ``advance(n)``, ``update(completed=..., total=..., description=...)``, ``close()``.

    Built by :func:`progress_bar`; a disabled bar (no terminal) keeps its counts but draws nothing,
    so callers never branch on whether it is shown.
    """

    def __init__(self, description: str, total: float | None, unit: str,
                 console: Any = None) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.completed = 0.0
        self._task: Any = None
        self._progress: Any = None
        if console is not None or progress_enabled():
            self._progress = _acquire(console)
            if self._progress is not None:
                self._task = self._progress.add_task(description, total=total, unit=unit)

    @property
    def shown(self) -> bool:
        return self._task is not None

    def advance(self, amount: float = 1) -> None:
        self.completed += amount
        if self._task is not None:
            self._progress.update(self._task, advance=amount)

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        if self._task is not None:
            self._progress.update(self._task, completed=completed, total=total,
                                  description=description)

    def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            _release(self._progress, task)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(description: str, total: float | None = None, unit: str = "",
                 console: Any = None) -> ProgressBar:
    """A bar named ``description`` counting to ``total`` (None: no end known, a spinner).

    ``console`` (a ``rich.console.Console``) forces drawing there, for tests and embedding.
    """
    return ProgressBar(description, total, unit, console)


def _acquire(console: Any) -> Any:
    global _live, _open
    try:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    except ImportError:           # rich is optional: no bars without it
        return None
    with _lock:
        if _live is None or console is not None:
            progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                                TimeElapsedColumn(), TimeRemainingColumn(),
                                console=console, transient=False, redirect_stdout=True,
                                redirect_stderr=True)
            progress.start()
            if console is not None:   # a private display, not shared with other bars
                return progress
            _live = progress
        _open += 1
        return _live


def _release(progress: Any, task: Any) -> None:
    global _live, _open
    with _lock:
        progress.update(task, refresh=True)
        if progress is not _live:
            progress.stop()
            return
        _open -= 1
        if _open == 0:
            _live.stop()
            _live = None
