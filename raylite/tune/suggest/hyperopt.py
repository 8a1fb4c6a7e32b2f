"""``from raylite.tune.suggest.hyperopt import HyperOptSearch``"""

from raylite.tune._hyperopt import HyperOptSearch

__all__ = ["HyperOptSearch"]
