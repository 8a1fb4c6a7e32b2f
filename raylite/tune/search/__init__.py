"""Searchers (Ray 2.x path; the same classes as ``raylite.tune.suggest``).

``OptunaSearch``, ``HyperOptSearch`` and ``BayesOptSearch`` come from
``raylite.tune.search.optuna`` / ``.hyperopt`` / ``.bayesopt``, or from here (their libraries
load on first use).
"""

from raylite.tune._searcher import BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher

SearchAlgorithm = Searcher

__all__ = ["Searcher", "SearchAlgorithm", "BasicVariantGenerator", "ConcurrencyLimiter",
           "Repeater", "OptunaSearch", "HyperOptSearch", "BayesOptSearch"]

_LAZY = {"OptunaSearch": "raylite.tune._optuna", "HyperOptSearch": "raylite.tune._hyperopt",
         "BayesOptSearch": "raylite.tune._bayesopt"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
