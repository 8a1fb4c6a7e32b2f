"""MARWIL under Ray 2.x's names."""

from raylite.rllib._marwil import MARWIL, MARWILConfig

__all__ = ["MARWIL", "MARWILConfig"]
