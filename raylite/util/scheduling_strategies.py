"""Scheduling strategies for ``.options(scheduling_strategy=...)``."""

from __future__ import annotations


class PlacementGroupSchedulingStrategy:
    """Run inside a placement group's bundle (``placement_group_bundle_index=-1``: any bundle)."""

    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run on a given node (raylite's local runtime has one)."""

    def __init__(self, node_id: str, soft: bool = False):
        self.node_id = node_id
        self.soft = soft
        self.placement_group = None
        self.placement_group_bundle_index = -1
