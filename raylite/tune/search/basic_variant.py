"""``from raylite.tune.search.basic_variant import BasicVariantGenerator``"""

from raylite.tune._searcher import BasicVariantGenerator

__all__ = ["BasicVariantGenerator"]
