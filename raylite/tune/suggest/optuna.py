"""``from raylite.tune.suggest.optuna import OptunaSearch``"""

from raylite.tune._optuna import OptunaSearch

__all__ = ["OptunaSearch"]
