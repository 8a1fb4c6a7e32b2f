"""Ray's ``ray.rllib.env.multi_agent_env``."""

from raylite.rllib._multi_agent import MultiAgentEnv, make_multi_agent

__all__ = ["MultiAgentEnv", "make_multi_agent"]
