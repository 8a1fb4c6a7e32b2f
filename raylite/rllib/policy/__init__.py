"""Ray's ``ray.rllib.policy``: ``policy.PolicySpec`` for ``.multi_agent(policies=...)``."""

from raylite.rllib._multi_agent import PolicySpec

__all__ = ["PolicySpec", "policy"]
