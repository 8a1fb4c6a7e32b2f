"""DQN under Ray 2.x's names: ``DQN`` and the ``DQNConfig`` builder.

Example:
    >>> from raylite.rllib.algorithms.dqn import DQNConfig
    >>> DQNConfig().training(double_q=False).to_dict()["double_q"]
    False
"""

from raylite.rllib._dqn import DQN, DQNConfig

__all__ = ["DQN", "DQNConfig"]
