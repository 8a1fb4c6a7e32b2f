"""Observation preprocessors, as ``ray.rllib.models.preprocessors``.

Example:
    >>> import gymnasium as gym
    >>> prep = get_preprocessor(gym.spaces.Discrete(3))(gym.spaces.Discrete(3))
    >>> prep.shape, prep.transform(1).tolist()
    ((3,), [0.0, 1.0, 0.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raylite.rllib._envs import preprocessor


class Preprocessor:
    """Turns one observation of ``observation_space`` into a flat float32 vector (one-hot for
    Discrete, Dict and Tuple spaces flattened in order)."""

    def __init__(self, observation_space: Any, options: dict | None = None):
        self._obs_space = observation_space
        self.size, self._transform = preprocessor(observation_space)
        self.shape = (self.size,)

    @property
    def observation_space(self) -> Any:
        from gymnasium import spaces
        return spaces.Box(-np.inf, np.inf, self.shape, np.float32)

    def transform(self, observation: Any) -> np.ndarray:
        return self._transform(observation)


class OneHotPreprocessor(Preprocessor):
    """Discrete observations as one-hot vectors."""


class NoPreprocessor(Preprocessor):
    """Box observations, flattened."""


class DictFlatteningPreprocessor(Preprocessor):
    """Dict observations, flattened key by key."""


class TupleFlatteningPreprocessor(Preprocessor):
    """Tuple observations, flattened in order."""


def get_preprocessor(space: Any) -> type[Preprocessor]:
    """The preprocessor class for ``space`` (instantiate it with the space)."""
    from gymnasium import spaces
    if isinstance(space, spaces.Discrete):
        return OneHotPreprocessor
    if isinstance(space, spaces.Dict):
        return DictFlatteningPreprocessor
    if isinstance(space, spaces.Tuple):
        return TupleFlatteningPreprocessor
    if isinstance(space, spaces.Box):
        return NoPreprocessor
    return Preprocessor


__all__ = ["DictFlatteningPreprocessor", "NoPreprocessor", "OneHotPreprocessor",
           "Preprocessor", "TupleFlatteningPreprocessor", "get_preprocessor"]
