"""Searchers on the Ray 1.x path: the same names as ``raylite.tune.search``.

``OptunaSearch``, ``HyperOptSearch`` and ``BayesOptSearch`` also come from
``raylite.tune.suggest.optuna`` / ``.hyperopt`` / ``.bayesopt`` (their libraries load on
first use).
"""

from raylite.tune import search as _search
from raylite.tune.search import (BasicVariantGenerator, ConcurrencyLimiter, Repeater,
                                 SearchAlgorithm, Searcher)

__all__ = list(_search.__all__)
_EAGER = (BasicVariantGenerator, ConcurrencyLimiter, Repeater, SearchAlgorithm, Searcher)


def __getattr__(name: str):
    return getattr(_search, name)
