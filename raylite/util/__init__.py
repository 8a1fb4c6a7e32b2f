"""Utilities on the core API: placement groups, ActorPool, Queue, a multiprocessing Pool drop-in,
inspect_serializability, and object_store_stats.

``Pool`` comes from its submodule, as in Ray: ``from raylite.util.multiprocessing import Pool``.
"""

from raylite.util.actor_pool import ActorPool
from raylite.util.check_serialize import inspect_serializability
from raylite.util.memory import object_store_stats
from raylite.util.placement_group import (PlacementGroup, get_current_placement_group,
                                          placement_group, placement_group_table,
                                          remove_placement_group)
from raylite.util.queue import Queue

__all__ = ["placement_group", "remove_placement_group", "placement_group_table",
           "get_current_placement_group", "PlacementGroup", "ActorPool", "Queue",
           "inspect_serializability", "object_store_stats"]


def __getattr__(name: str):
    if name == "dask":  # ray.util.dask without importing Dask with raylite.util
        import importlib
        return importlib.import_module("raylite.util.dask")
    raise AttributeError(f"module 'raylite.util' has no attribute {name!r}")
