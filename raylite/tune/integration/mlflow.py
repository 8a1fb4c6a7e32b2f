"""``ray.tune.integration.mlflow``: the same names as ``raylite.air.integrations.mlflow``."""

from raylite.air.integrations.mlflow import *  # noqa: F401,F403
from raylite.air.integrations.mlflow import __all__  # noqa: F401
