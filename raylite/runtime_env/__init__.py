"""``raylite.runtime_env``: Ray's ``ray.runtime_env`` names.

A runtime environment (env_vars, working_dir, py_modules, pip, excludes, config) for a job
(``init(runtime_env=...)``), a task or an actor (``@remote(runtime_env=...)``, ``.options``);
see ``raylite/core/_runtime_env.py`` for what each key means and how children inherit.
"""

from raylite.core._runtime_env import RuntimeEnv, RuntimeEnvConfig

__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
