"""Callbacks: user code at the points of training RLlib names (``DefaultCallbacks``).

    rollout worker, per env:  on_episode_start ─> on_episode_step (each step) ─> on_episode_end
                              (episode.custom_metrics set here travel back with the samples)
    algorithm:                on_algorithm_init once; on_train_result after each iteration,
                              with result["custom_metrics"] = {name_mean, name_min, name_max}

Example:
    >>> class CountSteps(DefaultCallbacks):
    ...     def on_episode_end(self, *, episode, **kwargs):
    ...         episode.custom_metrics["steps"] = episode.length
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

_EPISODE_IDS = itertools.count()


class Episode:
    """What callbacks see of one episode: ``length``, ``total_reward``, ``custom_metrics``
    (numbers, averaged into the results), ``user_data`` and ``hist_data`` (free to use)."""

    def __init__(self, env_index: int = 0, multi_agent: bool = False):
        self.episode_id = next(_EPISODE_IDS)
        self.multi_agent = multi_agent   # then the last observations and infos are per agent
        self.env_id = self.env_index = env_index
        self.length = 0
        self.total_reward = 0.0
        self.custom_metrics: dict[str, float] = {}
        self.user_data: dict[str, Any] = {}
        self.hist_data: dict[str, list] = {}
        self.agent_rewards: dict[Any, float] = {}   # multi-agent: each agent's return so far
        self._last_obs: Any = None
        self._last_info: dict = {}

    def last_observation_for(self, agent_id: Any = None) -> Any:
        """The last observation (of ``agent_id`` in a multi-agent episode)."""
        return self._last_obs.get(agent_id) if self.multi_agent else self._last_obs

    def last_info_for(self, agent_id: Any = None) -> dict:
        """The last info dict (of ``agent_id`` in a multi-agent episode)."""
        return self._last_info.get(agent_id, {}) if self.multi_agent else self._last_info


class DefaultCallbacks:
    """Override the methods you need; each is called with keyword arguments."""

    def on_algorithm_init(self, *, algorithm: Any, **kwargs: Any) -> None:
        pass

    def on_episode_start(self, *, worker: Any, base_env: Any, policies: dict, episode: Episode,
                         env_index: int, **kwargs: Any) -> None:
        pass

    def on_episode_step(self, *, worker: Any, base_env: Any, policies: dict, episode: Episode,
                        env_index: int, **kwargs: Any) -> None:
        pass

    def on_episode_end(self, *, worker: Any, base_env: Any, policies: dict, episode: Episode,
                       env_index: int, **kwargs: Any) -> None:
        pass

    def on_sample_end(self, *, worker: Any, samples: dict, **kwargs: Any) -> None:
        pass

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        pass


def summarize_custom_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    """``{name_mean, name_min, name_max}`` over the episodes' custom metrics."""
    values: dict[str, list[float]] = {}
    for episode_metrics in metrics:
        for name, value in episode_metrics.items():
            values.setdefault(name, []).append(float(value))
    out = {}
    for name, series in values.items():
        out[f"{name}_mean"] = float(np.mean(series))
        out[f"{name}_min"] = float(np.min(series))
        out[f"{name}_max"] = float(np.max(series))
    return out


def make_callbacks(value: Any) -> DefaultCallbacks | None:
    """An instance of the configured ``callbacks`` class (None when none is set)."""
    if value is None:
        return None
    if isinstance(value, type) and issubclass(value, DefaultCallbacks):
        return value()
    if isinstance(value, DefaultCallbacks):
        return value
    raise TypeError(f"callbacks must be a DefaultCallbacks subclass, got {value!r}")
