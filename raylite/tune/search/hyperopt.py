"""``from raylite.tune.search.hyperopt import HyperOptSearch``"""

from raylite.tune._hyperopt import HyperOptSearch

__all__ = ["HyperOptSearch"]
