"""Callbacks: user code at the points of training RLlib names (``DefaultCallbacks``).

    rollout worker, per env:  on_episode_start ─> on_episode_step (each step) ─> on_episode_end
                              (episode.custom_metrics set here travel back with the samples;
                              a multi-agent env's episode is a MultiAgentEpisode, with
                              agent_rewards); on_sample_end with each fragment's batch
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

    def __init__(self, env_index: int = 0):
        self.episode_id = next(_EPISODE_IDS)
        self.env_id = self.env_index = env_index
        self.length = 0
        self.total_reward = 0.0
        self.custom_metrics: dict[str, float] = {}
        self.user_data: dict[str, Any] = {}
        self.hist_data: dict[str, list] = {}
        self._last_obs: Any = None
        self._last_info: dict = {}

    def last_observation_for(self, agent_id: Any = None) -> Any:
        return self._last_obs

    def last_info_for(self, agent_id: Any = None) -> dict:
        return self._last_info


class MultiAgentEpisode(Episode):
    """A multi-agent episode as callbacks see it: besides ``length``, ``total_reward`` (all
    agents) and ``custom_metrics``, ``agent_rewards`` ``{(agent_id, policy_id): return}``,
    ``policy_for(agent_id)``, ``get_agents()`` and each agent's ``last_observation_for`` /
    ``last_info_for``."""

    def __init__(self, policy_for: Any, env_index: int = 0):
        super().__init__(env_index)
        self.agent_rewards: dict[tuple[Any, str], float] = {}
        self._policy_for = policy_for
        self._agent_obs: dict[Any, Any] = {}
        self._agent_infos: dict[Any, dict] = {}

    def policy_for(self, agent_id: Any) -> str:
        return self._policy_for(agent_id)

    def get_agents(self) -> list:
        return list(self._agent_obs)

    def last_observation_for(self, agent_id: Any = None) -> Any:
        return self._agent_obs.get(agent_id)

    def last_info_for(self, agent_id: Any = None) -> dict:
        return self._agent_infos.get(agent_id, {})

    def record_step(self, obs: dict, rewards: dict, infos: dict) -> None:
        """One env step: the agents' observations, rewards and infos."""
        self.length += 1
        for agent, reward in rewards.items():
            key = (agent, self.policy_for(agent))
            self.agent_rewards[key] = self.agent_rewards.get(key, 0.0) + float(reward)
            self.total_reward += float(reward)
        self._agent_obs.update(obs)
        self._agent_infos.update({a: i for a, i in (infos or {}).items() if a != "__all__"})


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
