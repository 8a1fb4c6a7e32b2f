"""Progress bars for long executions: one line per operator (a fused chain of stages, or the
step before an all-to-all one), counting blocks, like Ray Data's.

A bar appears only when both stdout and stderr are terminals, ``DataContext.enable_progress_bars``
is on, ``RAYLITE_PROGRESS`` is not 0, and the execution is still running after
``progress_bar_delay_s`` (short runs print nothing). It is drawn by :mod:`raylite._progress`
(rich, the ``data`` extra's), imported only when a bar is about to be drawn, and stacks with
Tune's and RLlib's bars.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def bars_enabled() -> bool:
    """Whether progress bars may be shown now."""
    from raylite.data._plan import DataContext
    from raylite._progress import progress_enabled
    if not DataContext.get_current().enable_progress_bars:
        return False
    return progress_enabled(sys.stdout) and _is_terminal(sys.stderr)


class ProgressBar:
    """``ProgressBar(name, total)``: ``update(n)`` as blocks finish, ``close()`` at the end.
    Does nothing when bars are off; draws nothing until the delay has passed."""

    def __init__(self, name: str, total: int | None, unit: str = "block"):
        self.name, self.total, self.unit = _short(name), total, unit
        self.done = 0
        self._bar: Any = None
        self._enabled = bars_enabled()
        if self._enabled:
            from raylite.data._plan import DataContext
            self._show_at = time.monotonic() + DataContext.get_current().progress_bar_delay_s

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, count: int = 1) -> None:
        if not self._enabled:
            return
        self.done += count
        if self._bar is None and time.monotonic() >= self._show_at:
            self._bar = _make_bar(self.name, self.total, self.unit)
            if self._bar is None:
                self._enabled = False
                return
            self._bar.advance(self.done)
        elif self._bar is not None:
            self._bar.advance(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._enabled = False


def _make_bar(name: str, total: int | None, unit: str) -> Any:
    """A bar drawn by raylite's shared progress display (rich), or None when none can be."""
    from raylite._progress import progress_bar
    bar = progress_bar(name, total=total, unit=f"{unit}s")
    return bar if bar.shown else None


def _short(name: str, width: int = 60) -> str:
    return name if len(name) <= width else name[:width - 3] + "..."
