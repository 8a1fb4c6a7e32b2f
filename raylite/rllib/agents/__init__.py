"""Ray 1.9's import paths: ``from raylite.rllib.agents.ppo import PPOTrainer``."""

__all__: list[str] = ["dqn", "ppo", "sac"]
