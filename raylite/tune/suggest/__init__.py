"""Searchers (Ray 1.x path; the same classes as ``raylite.tune.search``).

``OptunaSearch`` and ``HyperOptSearch`` come from ``raylite.tune.suggest.optuna`` and
``raylite.tune.suggest.hyperopt``, or from here (their libraries load on first use).
"""

from raylite.tune._searcher import BasicVariantGenerator, ConcurrencyLimiter, Searcher

SearchAlgorithm = Searcher

__all__ = ["Searcher", "SearchAlgorithm", "BasicVariantGenerator", "ConcurrencyLimiter",
           "OptunaSearch", "HyperOptSearch"]


def __getattr__(name: str):
    if name == "OptunaSearch":
        from raylite.tune._optuna import OptunaSearch
        return OptunaSearch
    if name == "HyperOptSearch":
        from raylite.tune._hyperopt import HyperOptSearch
        return HyperOptSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
