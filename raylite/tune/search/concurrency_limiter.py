"""``from raylite.tune.search.concurrency_limiter import ConcurrencyLimiter``"""

from raylite.tune._searcher import ConcurrencyLimiter

__all__ = ["ConcurrencyLimiter"]
