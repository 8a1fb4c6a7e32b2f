"""Ray's ``ray.rllib.env.policy_server_input``: ``PolicyServerInput``."""

from raylite.rllib._external import PolicyServerInput

__all__ = ["PolicyServerInput"]
