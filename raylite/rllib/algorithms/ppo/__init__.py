"""PPO under Ray 2.x's names: ``PPO`` and the ``PPOConfig`` builder.

Example:
    >>> from raylite.rllib.algorithms.ppo import PPOConfig
    >>> PPOConfig().training(lambda_=0.95).to_dict()["lambda"]
    0.95
"""

from raylite.rllib._ppo import PPO, PPOConfig

__all__ = ["PPO", "PPOConfig"]
