"""Stop conditions: ``stop=`` as a dict, a function, or a :class:`Stopper`.

    stop={"training_iteration": 10, "mean_accuracy": 0.98}   any field reaching its value stops
    stop=lambda trial_id, result: result["loss"] < 0.1        True stops that trial
    stop=MaximumIterationStopper(10)                          a Stopper: per trial, and stop_all()
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable
from typing import Any


class Stopper(abc.ABC):
    """Decide when a trial (``__call__``) or the whole experiment (``stop_all``) ends.

    Example:
        >>> class AfterFive(Stopper):
        ...     def __call__(self, trial_id, result):
        ...         return result["training_iteration"] >= 5
        ...     def stop_all(self):
        ...         return False
    """

    @abc.abstractmethod
    def __call__(self, trial_id: str, result: dict) -> bool:
        """True to stop trial ``trial_id`` after ``result``."""

    def stop_all(self) -> bool:
        """True to stop every trial and the experiment."""
        return False


class NoopStopper(Stopper):
    def __call__(self, trial_id, result) -> bool:
        return False


class MaximumIterationStopper(Stopper):
    """Stop each trial after ``max_iter`` results."""

    def __init__(self, max_iter: int):
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
        self._max_iter = max_iter
        self._iterations: dict[str, int] = {}

    def __call__(self, trial_id, result) -> bool:
        self._iterations[trial_id] = self._iterations.get(trial_id, 0) + 1
        return self._iterations[trial_id] >= self._max_iter


class FunctionStopper(Stopper):
    """Wrap ``f(trial_id, result) -> bool``."""

    def __init__(self, function: Callable[[str, dict], bool]):
        self._function = function

    def __call__(self, trial_id, result) -> bool:
        return bool(self._function(trial_id, result))


class CombinedStopper(Stopper):
    """Stop when any of the given stoppers says so."""

    def __init__(self, *stoppers: Stopper):
        self._stoppers = stoppers

    def __call__(self, trial_id, result) -> bool:
        return any([s(trial_id, result) for s in self._stoppers])  # noqa: C419 - call them all

    def stop_all(self) -> bool:
        return any([s.stop_all() for s in self._stoppers])  # noqa: C419 - call them all


class TimeoutStopper(Stopper):
    """Stop the experiment after ``timeout`` seconds (a number or a ``datetime.timedelta``)."""

    def __init__(self, timeout: Any):
        seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._deadline = time.time() + seconds

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.time() >= self._deadline


class TrialPlateauStopper(Stopper):
    """Stop a trial once the std of its last ``num_results`` values of ``metric`` is <= ``std``."""

    def __init__(self, metric: str, std: float = 0.01, num_results: int = 4,
                 grace_period: int = 4, metric_threshold: float | None = None,
                 mode: str | None = None):
        if metric_threshold is not None and mode not in ("min", "max"):
            raise ValueError("TrialPlateauStopper with metric_threshold needs mode 'min' or 'max'")
        self._metric, self._std, self._num, self._grace = metric, std, num_results, grace_period
        self._threshold, self._mode = metric_threshold, mode
        self._values: dict[str, list[float]] = {}

    def __call__(self, trial_id, result) -> bool:
        if self._metric not in result:
            return False
        values = self._values.setdefault(trial_id, [])
        values.append(result[self._metric])
        del values[:-self._num]
        if result.get("training_iteration", len(values)) < self._grace or len(values) < self._num:
            return False
        if self._threshold is not None:
            latest = values[-1]
            if (self._mode == "min" and latest > self._threshold) or (
                    self._mode == "max" and latest < self._threshold):
                return False
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) <= self._std


class DictStopper(Stopper):
    """``stop={"field": value}``: stop a trial when any field's value is >= its threshold."""

    def __init__(self, criteria: dict[str, float]):
        for key, value in criteria.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"stop={{{key!r}: {value!r}}}: each stop value must be a number")
        self._criteria = dict(criteria)

    def __call__(self, trial_id, result) -> bool:
        for key, value in self._criteria.items():
            if key not in result:
                reported = sorted(k for k in result if k != "config")
                raise ValueError(f"stop criterion {key!r} is not in the trial's results; it "
                                 f"reported: {reported}")
            if result[key] >= value:
                return True
        return False


def make_stopper(stop: Any) -> Stopper | None:
    """Turn tune.run's ``stop=`` into a Stopper (None when there is nothing to check)."""
    if stop is None or (isinstance(stop, dict) and not stop):
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, dict):
        return DictStopper(stop)
    if callable(stop):
        return FunctionStopper(stop)
    raise TypeError(f"stop must be a dict, a function (trial_id, result) -> bool or a "
                    f"tune.Stopper, got {type(stop).__name__}")
