"""DQN under Ray 1.9's names: ``DQNTrainer`` and its ``DEFAULT_CONFIG``.

Example:
    >>> from raylite.rllib.agents.dqn import DEFAULT_CONFIG, DQNTrainer
    >>> DEFAULT_CONFIG["target_network_update_freq"]
    500
"""

from raylite.rllib._dqn import DEFAULT_CONFIG, DQNTrainer

__all__ = ["DEFAULT_CONFIG", "DQNTrainer"]
