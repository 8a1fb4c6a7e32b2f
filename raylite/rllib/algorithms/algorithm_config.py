"""Ray 2.x's path of the config builder's base: ``...algorithm_config import AlgorithmConfig``."""

from raylite.rllib._builder import ConfigBuilder as AlgorithmConfig

__all__ = ["AlgorithmConfig"]
