"""Ray's ``ray.rllib.env``: ``MultiAgentEnv`` (and ``multi_agent_env.make_multi_agent``)."""

from raylite.rllib._multi_agent import MultiAgentEnv

__all__ = ["MultiAgentEnv", "multi_agent_env"]
