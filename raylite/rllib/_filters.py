"""Observation filters: ``NoFilter`` and ``MeanStdFilter`` (running mean and std).

Each rollout worker filters its observations with its own copy of the filter and also counts
what it saw since the last synchronisation (the *delta*). After each sampling round the
trainer merges every worker's delta into the global filter and sends the global state back
with the weights:

    worker:  filter(obs) updates running stats and delta ──> sample() returns the delta
    trainer: global.merge(delta) for each worker ──> set_state(global.state) on every worker
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLIP = 10.0


class RunningStat:
    """Count, mean and sum of squared deviations, merged exactly (Chan et al.)."""

    def __init__(self, shape: tuple[int, ...]):
        self.count = 0
        self.mean = np.zeros(shape, dtype=np.float64)
        self.m2 = np.zeros(shape, dtype=np.float64)

    def push_batch(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64)
        other = RunningStat(self.mean.shape)
        other.count = len(rows)
        if other.count:
            other.mean = rows.mean(axis=0)
            other.m2 = ((rows - other.mean) ** 2).sum(axis=0)
            self.merge(other)

    def merge(self, other: RunningStat) -> None:
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * other.count / total
        self.m2 = self.m2 + other.m2 + delta ** 2 * self.count * other.count / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        if self.count < 2:
            return np.ones_like(self.mean)
        return np.sqrt(self.m2 / (self.count - 1))

    def state(self) -> tuple[int, np.ndarray, np.ndarray]:
        return self.count, self.mean.copy(), self.m2.copy()

    @classmethod
    def from_state(cls, state: tuple[int, np.ndarray, np.ndarray]) -> RunningStat:
        count, mean, m2 = state
        stat = cls(np.shape(mean))
        stat.count, stat.mean, stat.m2 = int(count), np.array(mean, np.float64), np.array(m2, np.float64)
        return stat


class NoFilter:
    """Observations as they are."""

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32)

    def take_delta(self) -> Any:
        return None

    def merge_delta(self, delta: Any) -> None:
        pass

    def get_state(self) -> Any:
        return None

    def set_state(self, state: Any) -> None:
        pass


class MeanStdFilter:
    """``(obs - mean) / std``, clipped to +-10, with the mean and std of all observations seen.

    Example:
        >>> f = MeanStdFilter((1,))
        >>> f(np.array([[1.0], [3.0]])).round(3).tolist()   # stats include these rows
        [[-0.707], [0.707]]
    """

    def __init__(self, shape: tuple[int, ...]):
        self.running = RunningStat(shape)
        self.delta = RunningStat(shape)

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if update:
            self.running.push_batch(obs)
            self.delta.push_batch(obs)
        normalized = (obs - self.running.mean) / (self.running.std + 1e-8)
        return np.clip(normalized, -CLIP, CLIP).astype(np.float32)

    def take_delta(self) -> tuple:
        """What was seen since the last call (for the trainer to merge), and forget it."""
        delta, self.delta = self.delta, RunningStat(self.delta.mean.shape)
        return delta.state()

    def merge_delta(self, delta: tuple) -> None:
        self.running.merge(RunningStat.from_state(delta))

    def get_state(self) -> tuple:
        return self.running.state()

    def set_state(self, state: tuple) -> None:
        self.running = RunningStat.from_state(state)
        self.delta = RunningStat(self.running.mean.shape)


def make_filter(name: str, shape: tuple[int, ...]) -> NoFilter | MeanStdFilter:
    if name == "MeanStdFilter":
        return MeanStdFilter(shape)
    if name == "NoFilter":
        return NoFilter()
    raise ValueError(f"observation_filter must be 'NoFilter' or 'MeanStdFilter', got {name!r}")
