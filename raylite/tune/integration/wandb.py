"""``ray.tune.integration.wandb``: the same names as ``raylite.air.integrations.wandb``."""

from raylite.air.integrations.wandb import *  # noqa: F401,F403
from raylite.air.integrations.wandb import __all__  # noqa: F401
