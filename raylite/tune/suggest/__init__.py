"""Searchers on the Ray 1.x path: the same names as ``raylite.tune.search``.

``OptunaSearch`` and ``HyperOptSearch`` also come from ``raylite.tune.suggest.optuna`` and
``raylite.tune.suggest.hyperopt`` (their libraries load on first use).
"""

from raylite.tune import search as _search
from raylite.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchAlgorithm, Searcher

__all__ = list(_search.__all__)


def __getattr__(name: str):
    return getattr(_search, name)
