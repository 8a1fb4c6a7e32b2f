"""Ray 1.9's path of the callbacks: ``from ray.rllib.agents.callbacks import DefaultCallbacks``."""

from raylite.rllib._callbacks import DefaultCallbacks, Episode

__all__ = ["DefaultCallbacks", "Episode"]
