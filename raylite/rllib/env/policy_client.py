"""Ray's ``ray.rllib.env.policy_client``: ``PolicyClient``."""

from raylite.rllib._external import PolicyClient

__all__ = ["PolicyClient"]
