"""``from raylite.tune.search.searcher import Searcher``"""

from raylite.tune._searcher import Searcher

__all__ = ["Searcher"]
