"""SAC under Ray 2.x's names: ``SAC`` and the ``SACConfig`` builder.

Example:
    >>> from raylite.rllib.algorithms.sac import SACConfig
    >>> SACConfig().training(twin_q=False).to_dict()["twin_q"]
    False
"""

from raylite.rllib._sac import SAC, SACConfig

__all__ = ["SAC", "SACConfig"]
