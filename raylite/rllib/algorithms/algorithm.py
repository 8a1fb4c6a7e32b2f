"""Ray 2.x's path of the algorithms' base: ``from ray.rllib.algorithms.algorithm import Algorithm``."""

from raylite.rllib._algorithm import Algorithm

__all__ = ["Algorithm"]
