"""PPO under Ray 1.9's names: ``PPOTrainer`` and its ``DEFAULT_CONFIG``.

Example:
    >>> from raylite.rllib.agents.ppo import DEFAULT_CONFIG, PPOTrainer
    >>> DEFAULT_CONFIG["num_sgd_iter"]
    30
"""

from raylite.rllib._ppo import DEFAULT_CONFIG, PPOTrainer

__all__ = ["DEFAULT_CONFIG", "PPOTrainer"]
