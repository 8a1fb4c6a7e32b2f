"""Ray's ``ray.rllib.policy.policy``: ``PolicySpec``."""

from raylite.rllib._multi_agent import PolicySpec

__all__ = ["PolicySpec"]
