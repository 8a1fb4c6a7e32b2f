"""Ray 2.x's path of the callbacks: ``from ray.rllib.algorithms.callbacks import DefaultCallbacks``."""

from raylite.rllib._callbacks import DefaultCallbacks, Episode

__all__ = ["DefaultCallbacks", "Episode"]
