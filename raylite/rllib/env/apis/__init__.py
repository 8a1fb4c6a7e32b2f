"""Ray's ``ray.rllib.env.apis``: ``task_settable_env.TaskSettableEnv``."""

__all__ = ["task_settable_env"]
