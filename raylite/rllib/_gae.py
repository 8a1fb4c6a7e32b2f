"""Generalized Advantage Estimation (Schulman et al. 2016, "High-Dimensional Continuous
Control Using Generalized Advantage Estimation").

Arrays are time-major, ``[T, num_envs]``. ``dones[t]`` is True when the episode ended with step
``t`` (terminated, or truncated with the bootstrap value already added to ``rewards[t]``), so
nothing flows across it; after the last step the value of the next observation,
``last_values``, bootstraps the unfinished episodes:

    delta[t]      = rewards[t] + gamma * V(next obs of t) * (1 - dones[t]) - values[t]
    advantages[t] = delta[t] + gamma * lambda * (1 - dones[t]) * advantages[t + 1]
    returns[t]    = advantages[t] + values[t]       (the value function's targets)
"""

from __future__ import annotations

import numpy as np


def compute_gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray,
                last_values: np.ndarray, gamma: float, lambda_: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and value targets of a ``[T, num_envs]`` rollout.

    Args:
        rewards, values, dones: ``[T, num_envs]`` (or ``[T]`` for one env).
        last_values: ``[num_envs]``, the value of the observation after the last step.
        gamma: discount; lambda_: GAE's lambda (0: one-step TD, 1: Monte Carlo).

    Returns:
        ``(advantages, returns)``, float32, shaped like ``rewards``.

    Example:
        >>> adv, ret = compute_gae(np.array([1.0, 1.0]), np.array([0.0, 0.0]),
        ...                        np.array([False, True]), np.array(5.0), 0.5, 1.0)
        >>> adv.tolist(), ret.tolist()
        ([1.5, 1.0], [1.5, 1.0])
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    not_done = 1.0 - np.asarray(dones, dtype=np.float64)
    if not rewards.shape == values.shape == not_done.shape:
        raise ValueError(f"rewards, values and dones must have one shape, got {rewards.shape}, "
                         f"{values.shape}, {not_done.shape}")
    advantages = np.zeros_like(rewards)
    next_values = np.asarray(last_values, dtype=np.float64)
    running = np.zeros_like(next_values)
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_values * not_done[t] - values[t]
        running = delta + gamma * lambda_ * not_done[t] * running
        advantages[t] = running
        next_values = values[t]
    returns = advantages + values
    return advantages.astype(np.float32), returns.astype(np.float32)


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, last_values: np.ndarray,
                       gamma: float) -> np.ndarray:
    """Discounted returns, bootstrapped by ``last_values`` (``use_gae: false``); GAE with
    lambda 1 and zero values."""
    zeros = np.zeros_like(np.asarray(rewards, dtype=np.float64))
    return compute_gae(rewards, zeros, dones, last_values, gamma, 1.0)[1]
