"""A trial's resources: what ``resources_per_trial`` means for the trial's actor (a dict: the
actor holds it; a PlacementGroupFactory: the trial reserves its bundles as one placement group
before it starts, see ``reserve_trial_group``), and how many trials fit at once."""

from __future__ import annotations

import functools
import math
from typing import Any

import raylite


def trial_actor_options(resources: Any) -> tuple[dict, dict]:
    """(the actor options for a trial's resources, the resources as shown) from
    ``resources_per_trial``: a dict like {"cpu": 1, "gpu": 0} or a PlacementGroupFactory."""
    if resources is None:
        resources = {"cpu": 1, "gpu": 0}
    bundles = getattr(resources, "bundles", None)
    if bundles is not None:
        total: dict[str, float] = {}
        for bundle in bundles:
            for key, value in bundle.items():
                total[key] = total.get(key, 0) + value
        resources = {k.lower() if k in ("CPU", "GPU") else k: v for k, v in total.items()}
    if not isinstance(resources, dict):
        raise TypeError(f"resources_per_trial must be a dict like {{'cpu': 1, 'gpu': 0}} or a "
                        f"tune.PlacementGroupFactory, got {type(resources).__name__}")
    options: dict[str, Any] = {"num_cpus": 0, "num_gpus": 0}
    custom = {}
    for key, value in resources.items():
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"resources_per_trial[{key!r}] must be a non-negative number, got {value!r}")
        if key in ("cpu", "extra_cpu"):
            options["num_cpus"] += value
        elif key in ("gpu", "extra_gpu"):
            options["num_gpus"] += value
        elif key in ("memory", "extra_memory"):
            options["memory"] = options.get("memory", 0) + value
        elif key == "custom_resources":
            custom.update(value)
        elif key in ("CPU", "GPU"):
            raise ValueError(f"resources_per_trial: write {key.lower()!r}, not {key!r}")
        else:
            custom[key] = value
    if custom:
        options["resources"] = custom
    shown = {"CPU": options["num_cpus"], "GPU": options["num_gpus"], **custom}
    return options, shown


def concurrency_limit(shown: dict[str, float], max_concurrent_trials: int | None) -> int:
    """How many trials fit in the cluster at once (and within ``max_concurrent_trials``)."""
    cluster = raylite.cluster_resources()
    limit = math.inf
    for name, amount in shown.items():
        if not amount:
            continue
        have = cluster.get(name, 0)
        fits = math.floor(have / amount + 1e-9)
        if fits < 1:
            raise ValueError(f"each trial asks for {amount} {name} but the cluster has {have}; "
                             "lower resources_per_trial or start raylite with more")
        limit = min(limit, fits)
    if limit == math.inf:
        limit = max(1, int(cluster.get("CPU", 1)))
    if max_concurrent_trials:
        if not isinstance(max_concurrent_trials, int) or max_concurrent_trials < 1:
            raise ValueError(f"max_concurrent_trials must be an int >= 1, got {max_concurrent_trials!r}")
        limit = min(limit, max_concurrent_trials)
    return int(limit)


def reserve_trial_group(factory: Any) -> tuple[Any, dict]:
    """Reserve a trial's placement group from its PlacementGroupFactory, as Ray's Tune does:
    (the group, the options for the trial's actor). The actor takes the first bundle (an
    empty first bundle, as a trainer's by default, is left out: the actor then holds nothing,
    inside the group) and captures its children, so the tasks and actors it starts (a
    trainer's workers, Data tasks) run in the group's bundles."""
    from raylite.util import placement_group
    from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    bundles = [dict(b) for b in factory.bundles]
    cluster = raylite.cluster_resources()
    for name, amount in _total(bundles).items():
        if amount > cluster.get(name, 0) + 1e-9:
            raise ValueError(f"a trial asks for {amount:g} {name} ({bundles}) but the cluster "
                             f"has {cluster.get(name, 0):g}; lower the trial's resources or "
                             "start raylite with more")
    head = bundles[0]
    empty_head = factory.head_bundle_is_empty
    group = placement_group(bundles[1:] if empty_head else bundles,
                            strategy=getattr(factory, "strategy", "PACK"))
    options, _ = trial_actor_options({} if empty_head else
                                     {k.lower() if k in ("CPU", "GPU") else k: v
                                      for k, v in head.items()})
    options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
        group, -1 if empty_head else 0, placement_group_capture_child_tasks=True)
    return group, options


def _total(bundles: list[dict]) -> dict[str, float]:
    total: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            total[key] = total.get(key, 0.0) + float(value)
    return total


class TrialGroups:
    """The placement groups of an experiment's trials, one per trial from ``factory(config)``
    (a PlacementGroupFactory): reserved before the trial starts, removed with the trial's
    actor (which takes the trainer workers it started along) or at the end.

        reserve(trial_id, config) -> the group's ready() ref, for the runner to wait on
        placed(trial_id)          -> (group, options for the trial's actor)
        bind(host, group) ... release(host)   the actor's group goes with it
    """

    def __init__(self, factory: Any):
        self.factory = factory
        self.reserving: dict[str, tuple] = {}   # trial id -> (group, actor options), not placed
        self.of_host: dict[Any, Any] = {}       # trial actor -> the group it runs in

    @classmethod
    def for_trials(cls, trainable: Any, resources: Any) -> TrialGroups | None:
        """A trainer's own per-trial bundles, or a PlacementGroupFactory for every trial;
        None for plain dict resources (the trial's actor holds them)."""
        factory = getattr(trainable, "__raylite_trial_resources__", None)
        bundles = getattr(resources, "bundles", None)
        if factory is None and bundles and any(any(b.values()) for b in bundles):
            factory = functools.partial(_same, resources)  # (nothing to reserve: no group)
        return cls(factory) if factory is not None else None

    def reserve(self, trial_id: str, config: dict) -> Any:
        group, options = reserve_trial_group(self.factory(config))
        self.reserving[trial_id] = (group, options)
        return group.ready()

    def placed(self, trial_id: str) -> tuple[Any, dict]:
        return self.reserving.pop(trial_id)

    def bind(self, host: Any, group: Any) -> None:
        self.of_host[host] = group

    def release(self, host: Any) -> None:
        group = self.of_host.pop(host, None)
        if group is not None:
            remove_group(group)

    def close(self) -> None:
        for group, _ in self.reserving.values():
            remove_group(group)
        self.reserving.clear()


def _same(factory: Any, config: dict) -> Any:
    return factory


def remove_group(group: Any) -> None:
    from raylite.util import remove_placement_group
    try:
        remove_placement_group(group)
    except Exception:  # noqa: BLE001, S110 - the runtime is shutting down
        pass
