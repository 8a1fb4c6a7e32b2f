"""Curriculum learning: envs whose task can be changed between episodes.

With ``config.environment(env_task_fn=fn)``, after each training iteration every rollout
worker's envs get ``env.set_task(fn(train_results, env, env_ctx))``.

Example:
    >>> class Levels(TaskSettableEnv):
    ...     level = 0
    ...     def get_task(self): return self.level
    ...     def set_task(self, task): self.level = task
    >>> env = Levels(); env.set_task(2); env.get_task()
    2
"""

from __future__ import annotations

from typing import Any

import gymnasium

TaskType = Any


class TaskSettableEnv(gymnasium.Env):
    """A Gymnasium env with tasks: override ``get_task`` and ``set_task`` (and
    ``sample_tasks`` if tasks are drawn at random)."""

    def sample_tasks(self, n_tasks: int) -> list[TaskType]:
        raise NotImplementedError(f"{type(self).__name__} does not define sample_tasks")

    def set_task(self, task: TaskType) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define set_task")

    def get_task(self) -> TaskType:
        raise NotImplementedError(f"{type(self).__name__} does not define get_task")


__all__ = ["TaskSettableEnv", "TaskType"]
