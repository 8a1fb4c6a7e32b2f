"""``from raylite.tune.suggest.suggestion import Searcher, ConcurrencyLimiter`` (Ray 1.x)"""

from raylite.tune._searcher import ConcurrencyLimiter, Searcher

__all__ = ["Searcher", "ConcurrencyLimiter"]
