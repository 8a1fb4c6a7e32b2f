"""``from raylite.tune.search.optuna import OptunaSearch``"""

from raylite.tune._optuna import OptunaSearch

__all__ = ["OptunaSearch"]
