"""Exploration: epsilon-greedy acting and the schedules that decay epsilon.

    Ray 1.9:  exploration_config={"type": "EpsilonGreedy", "initial_epsilon": 1.0,
                                  "final_epsilon": 0.02, "epsilon_timesteps": 10000}
    Ray 2.x:  .training(epsilon=[[0, 1.0], [10000, 0.02]])      (or a constant: epsilon=0.1)
        └── both become a PiecewiseSchedule of the env steps sampled so far

The algorithm computes epsilon from its step count and sends it with the weights; the
workers act with ``epsilon_greedy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class PiecewiseSchedule:
    """A value that moves linearly between ``(timestep, value)`` endpoints and holds the last.

    Example:
        >>> schedule = PiecewiseSchedule([(0, 1.0), (100, 0.1)])
        >>> schedule(0), schedule(50), schedule(1000)
        (1.0, 0.55, 0.1)
    """

    def __init__(self, endpoints: list[tuple[float, float]]):
        points = sorted((float(t), float(v)) for t, v in endpoints)
        if not points:
            raise ValueError("a schedule needs at least one (timestep, value) point")
        self.times = [t for t, _ in points]
        self.values = [v for _, v in points]

    def __call__(self, timestep: float) -> float:
        return round(float(np.interp(timestep, self.times, self.values)), 12)


def epsilon_schedule(config: Any, defaults: dict[str, Any]) -> PiecewiseSchedule:
    """DQN's epsilon schedule from ``epsilon`` (2.x) or ``exploration_config`` (1.9)."""
    if config.epsilon is not None:
        if isinstance(config.epsilon, (int, float)):
            return PiecewiseSchedule([(0, config.epsilon)])
        return PiecewiseSchedule([tuple(point) for point in config.epsilon])
    spec = {**defaults, **config.exploration_config}
    start = spec.get("initial_epsilon", 1.0)
    warmup = spec.get("warmup_timesteps", 0)
    return PiecewiseSchedule([(0, start), (warmup, start),
                              (warmup + spec.get("epsilon_timesteps", 10000),
                               spec.get("final_epsilon", 0.02))])


def epsilon_greedy(q_values: np.ndarray, epsilon: float, rng: np.random.Generator
                   ) -> np.ndarray:
    """Per row: a uniformly random action with probability ``epsilon``, else the best one."""
    greedy = np.argmax(q_values, axis=-1)
    random_actions = rng.integers(0, q_values.shape[-1], len(q_values))
    return np.where(rng.random(len(q_values)) < epsilon, random_actions, greedy)
