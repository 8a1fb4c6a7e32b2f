"""``from raylite.tune.suggest.bayesopt import BayesOptSearch`` (needs bayesian-optimization)"""

from raylite.tune._bayesopt import BayesOptSearch

__all__ = ["BayesOptSearch"]
