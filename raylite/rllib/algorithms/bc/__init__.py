"""Behavior cloning under Ray 2.x's names."""

from raylite.rllib._marwil import BC, BCConfig

__all__ = ["BC", "BCConfig"]
