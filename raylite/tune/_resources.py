"""A trial's resources: what ``resources_per_trial`` (a dict, or a PlacementGroupFactory whose
bundles are summed) means for the trial's actor, and how many trials fit at once."""

from __future__ import annotations

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
