"""SAC under Ray 1.9's names: ``SACTrainer`` and its ``DEFAULT_CONFIG``.

Example:
    >>> from raylite.rllib.agents.sac import DEFAULT_CONFIG, SACTrainer
    >>> DEFAULT_CONFIG["tau"]
    0.005
"""

from raylite.rllib._sac import DEFAULT_CONFIG, SACTrainer

__all__ = ["DEFAULT_CONFIG", "SACTrainer"]
