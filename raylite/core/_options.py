"""Checking the options of ``@remote``, ``.options()`` and ``init`` and turning them into resources.

``runtime_env`` is checked here too (``raylite.core._runtime_env.normalize``: env_vars,
working_dir, py_modules, pip, excludes, config; conda, containers and uv are refused by name),
and kept in its normalized form, so a bad one fails where it is written.
"""

from __future__ import annotations

import math
from typing import Any

from raylite._suggest import did_you_mean

TASK_OPTIONS = frozenset({
    "num_cpus", "num_gpus", "memory", "resources", "num_returns", "max_retries",
    "retry_exceptions", "name", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "scheduling_strategy", "runtime_env", "max_calls",
    "accelerator_type", "object_store_memory", "_metadata",
})
ACTOR_OPTIONS = frozenset({
    "num_cpus", "num_gpus", "memory", "resources", "max_restarts", "max_task_retries",
    "max_concurrency", "name", "namespace", "lifetime", "get_if_exists", "placement_group",
    "placement_group_bundle_index", "placement_group_capture_child_tasks", "scheduling_strategy",
    "runtime_env", "accelerator_type", "object_store_memory", "max_pending_calls",
    "concurrency_groups", "_metadata",
})
METHOD_OPTIONS = frozenset({"num_returns", "name", "max_task_retries", "retry_exceptions",
                            "concurrency_group"})


# Options Ray has that raylite does not implement. Where ignoring one would change what the
# program does, it is refused with this reason; the empty values listed are accepted.
NOT_IMPLEMENTED = {
    "max_pending_calls": "a limit on an actor's pending calls is not implemented in raylite",
}
EMPTY_VALUES = (None, {}, [], "", -1)
# Options Ray itself treats as hints, or as tuning raylite has no use for: accepted, with a
# one-time warning that raylite ignores them.
HINTS = {
    "max_calls": "raylite's workers are not recycled after a number of calls",
    "object_store_memory": "a task's or actor's object store memory is not reserved separately",
    "_metadata": "task metadata is not kept",
}
_warned: set[str] = set()


def check_options(options: dict[str, Any], allowed: frozenset, what: str) -> dict[str, Any]:
    """Reject unknown option names and bad values with errors that say what would be right."""
    for key in options:
        if key not in allowed:
            raise TypeError(f"{what} got an unexpected option {key!r}{did_you_mean(key, allowed) or '.'} "
                            f"Valid options: {', '.join(sorted(k for k in allowed if not k.startswith('_')))}.")
        value = options[key]
        if key in NOT_IMPLEMENTED and not _is_empty(value):
            raise ValueError(f"{what}: {key}={value!r:.80} is not supported: {NOT_IMPLEMENTED[key]}.")
        if key in HINTS and not _is_empty(value) and value is not False:
            warn_once(key, f"{what}: {key} is accepted and ignored ({HINTS[key]}).")
    if options.get("runtime_env") is not None:
        from raylite.core._runtime_env import normalize
        options["runtime_env"] = normalize(options["runtime_env"], what)
    for key in ("num_cpus", "num_gpus", "memory"):
        value = options.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0 or math.isnan(value)):
            raise ValueError(f"{what}: {key} must be a non-negative number, got {value!r}.")
    if options.get("num_gpus") and options["num_gpus"] > 1 and options["num_gpus"] % 1:
        raise ValueError(f"{what}: num_gpus above 1 must be a whole number, got {options['num_gpus']}.")
    resources = options.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            raise TypeError(f"{what}: resources must be a dict like {{'my_resource': 1}}, got "
                            f"{type(resources).__name__}.")
        for name, amount in resources.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"{what}: use num_cpus / num_gpus / memory instead of "
                                 f"resources={{{name!r}: ...}}.")
            if not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"{what}: resource {name!r} must be a non-negative number, got "
                                 f"{amount!r}.")
    num_returns = options.get("num_returns")
    if isinstance(num_returns, str):  # a generator's "streaming" / "dynamic"
        from raylite.core._generators import check_num_returns
        check_num_returns(num_returns, what)
    elif num_returns is not None and (not isinstance(num_returns, int) or num_returns < 0):
        raise ValueError(f"{what}: num_returns must be a non-negative int, got {num_returns!r}.")
    for key in ("max_retries", "max_restarts", "max_task_retries"):
        value = options.get(key)
        if value is not None and (not isinstance(value, int) or value < -1):
            raise ValueError(f"{what}: {key} must be an int >= -1 (-1: unlimited), got {value!r}.")
    groups = options.get("concurrency_groups")
    if groups is not None and (not isinstance(groups, dict) or not all(
            isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v >= 1
            for k, v in groups.items())):
        raise ValueError(f"{what}: concurrency_groups must be a dict of group name to its "
                         f"number of concurrent calls (an int >= 1), got {groups!r:.80}.")
    group = options.get("concurrency_group")
    if group is not None and (not isinstance(group, str) or not group):
        raise ValueError(f"{what}: concurrency_group must be a group's name, got {group!r}.")
    concurrency = options.get("max_concurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"{what}: max_concurrency must be an int >= 1, got {concurrency!r}.")
    return options


def _is_empty(value: Any) -> bool:
    return any(value is empty or (type(value) is type(empty) and value == empty)
               for empty in EMPTY_VALUES)


def warn_once(key: str, message: str) -> None:
    """Tell the user once per process (options Ray treats as hints)."""
    if key not in _warned:
        _warned.add(key)
        import sys
        print(f"raylite: warning: {message}", file=sys.stderr, flush=True)


def to_resources(options: dict[str, Any], default_cpus: float) -> dict[str, float]:
    """The scheduler's resource request for a set of options."""
    cpus = options.get("num_cpus")
    out = {"CPU": float(default_cpus if cpus is None else cpus)}
    if options.get("num_gpus"):
        out["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        out["memory"] = float(options["memory"])
    for name, amount in (options.get("resources") or {}).items():
        out[name] = float(amount)
    if options.get("accelerator_type"):  # as in Ray: a node of that kind is required
        out[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    return {k: v for k, v in out.items() if v > 0}


NO_GROUP = ("no group",)  # placement_of: the caller said "in no group" (never captured)


def placement_of(options: dict[str, Any]) -> tuple | None:
    """Where the options place a task or actor, before capture (``resolve_placement``):
    ``(group id, bundle index, capture child tasks: True/False/None)``; None where they name
    no group (a capturing parent's group applies); ``NO_GROUP`` where they opt out of it
    (``PlacementGroupSchedulingStrategy(placement_group=None)``, ``placement_group=None``,
    ``scheduling_strategy="SPREAD"``), as in Ray."""
    strategy = options.get("scheduling_strategy")
    group = options.get("placement_group", "default")
    index = options.get("placement_group_bundle_index", -1)
    capture = options.get("placement_group_capture_child_tasks")
    if strategy is not None and not isinstance(strategy, str):
        group = getattr(strategy, "placement_group", None)
        index = getattr(strategy, "placement_group_bundle_index", -1)
        capture = getattr(strategy, "placement_group_capture_child_tasks", None)
    elif isinstance(strategy, str) and strategy not in ("DEFAULT", "SPREAD"):
        raise ValueError(f"unknown scheduling_strategy {strategy!r}; use 'DEFAULT', 'SPREAD' or "
                         "PlacementGroupSchedulingStrategy(...)")
    if strategy == "SPREAD" or group is None:
        return NO_GROUP
    if isinstance(group, str) and group == "default":
        return None
    if index is None:
        index = -1
    if index >= len(group.bundle_specs) or index < -1:
        raise ValueError(f"placement_group_bundle_index {index} is out of range: the group has "
                         f"{len(group.bundle_specs)} bundles (use -1 for any).")
    return (group.id.binary(), index, capture)


def resolve_placement(placement: tuple | None, context: tuple | None) -> tuple | None:
    """``placement_of``'s answer in its caller's context: ``context`` is the caller's
    ``(group id, captures child tasks)``, or None outside any group (the driver). A child that
    names no group lands in a capturing parent's group, in any bundle with room, and captures
    its own children too; an unset capture flag is inherited. Returns
    ``(group id, bundle index, capture)`` or None (no group)."""
    if placement is NO_GROUP:
        return None
    parent_group, parent_captures = context if context is not None else (None, False)
    if placement is None:
        return (parent_group, -1, True) if parent_captures and parent_group else None
    group_id, index, capture = placement
    return (group_id, index, parent_captures if capture is None else bool(capture))
