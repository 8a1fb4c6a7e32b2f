"""Placement groups: reserve bundles of resources together, for gangs of workers.

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    raylite.get(pg.ready())
    Worker.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
"""

from __future__ import annotations

from typing import Any

from raylite.core._api import _call
from raylite.core._refs import ObjectRef

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    def __init__(self, raw: bytes):
        self._raw = raw

    def binary(self) -> bytes:
        return self._raw

    def hex(self) -> str:
        return self._raw.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)


class PlacementGroup:
    """A set of reserved resource bundles; schedule tasks and actors into its bundles."""

    def __init__(self, group_id: bytes, bundles: list[dict[str, float]], strategy: str,
                 ready_ref: ObjectRef | None):
        self.id = PlacementGroupID(group_id)
        self.bundle_specs = bundles
        self.strategy = strategy
        self._ready_ref = ready_ref

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef:
        """An ObjectRef that resolves (to True) once every bundle is reserved."""
        return self._ready_ref

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Block until reserved; False if not within ``timeout_seconds``."""
        from raylite import exceptions, get
        try:
            get(self._ready_ref, timeout=timeout_seconds)
            return True
        except exceptions.GetTimeoutError:
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()[:12]}, bundles={self.bundle_specs})"

    def __reduce__(self):
        return (PlacementGroup, (self.id.binary(), self.bundle_specs, self.strategy, None))


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None) -> PlacementGroup:
    """Reserve ``bundles`` (each a dict like ``{"CPU": 1, "GPU": 1}``) together."""
    if not isinstance(bundles, list) or not bundles:
        raise ValueError(f"bundles must be a non-empty list of resource dicts, got {bundles!r}")
    normalized = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not bundle:
            raise ValueError(f"bundle {i} must be a non-empty dict like {{'CPU': 1}}, got {bundle!r}")
        for key, amount in bundle.items():
            if not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"bundle {i}: {key} must be a non-negative number, got {amount!r}")
        if all(v == 0 for v in bundle.values()):
            raise ValueError(f"bundle {i} asks for nothing ({bundle}); every bundle needs a resource")
        normalized.append({("CPU" if k == "num_cpus" else k): float(v) for k, v in bundle.items()})
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    group_id, ready_ref = _call("create_placement_group", normalized, strategy, name)
    return PlacementGroup(group_id, normalized, strategy, ready_ref)


def remove_placement_group(group: PlacementGroup) -> None:
    """Release a placement group's reserved resources."""
    _call("remove_placement_group", group.id.binary())


def placement_group_table(group: PlacementGroup | None = None) -> dict[str, Any]:
    table = _call("placement_group_table")
    return table.get(group.id.hex(), {}) if group is not None else table


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the current task or actor runs in; None outside one (the driver
    never is in one; nor is anything in ``init(local_mode=True)``, which runs in the caller,
    or on the Dask backend, where groups reserve nothing).

    Example:
        >>> @raylite.remote                                             # doctest: +SKIP
        ... def where():
        ...     return get_current_placement_group()
        >>> pg = placement_group([{"CPU": 1}])                          # doctest: +SKIP
        >>> strategy = PlacementGroupSchedulingStrategy(pg)              # doctest: +SKIP
        >>> raylite.get(where.options(scheduling_strategy=strategy).remote()) == pg  # doctest: +SKIP
        True
    """
    context = _call("placement_context")
    if context is None:
        return None
    group_id = context[0]
    entry = _call("placement_group_table").get(group_id.hex())
    if entry is None:  # removed while this task runs
        return PlacementGroup(group_id, [], "PACK", None)
    bundles = [dict(b) for _, b in sorted(entry["bundles"].items())]
    return PlacementGroup(group_id, bundles, entry["strategy"], None)
