"""``from raylite.tune.suggest.repeater import Repeater``"""

from raylite.tune._searcher import Repeater

__all__ = ["Repeater"]
