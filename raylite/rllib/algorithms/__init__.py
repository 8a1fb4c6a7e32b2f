"""Ray 2.x's import paths: ``from raylite.rllib.algorithms.ppo import PPO, PPOConfig``."""

from raylite.rllib._algorithm import Algorithm
from raylite.rllib._config import AlgorithmConfig

__all__ = ["Algorithm", "AlgorithmConfig", "bc", "dqn", "marwil", "ppo", "sac"]
