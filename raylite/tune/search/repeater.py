"""``from raylite.tune.search.repeater import Repeater``"""

from raylite.tune._searcher import Repeater

__all__ = ["Repeater"]
