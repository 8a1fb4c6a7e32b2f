"""Results as trackers want them: flat keys, numbers only for metrics."""

from __future__ import annotations

import math
from typing import Any

# Tune's bookkeeping fields, not worth a metric series each
SKIPPED = {"config", "pid", "hostname", "node_ip", "trial_id", "experiment_id", "date",
           "timestamp", "done", "experiment_tag"}


def flatten(values: dict, prefix: str = "") -> dict:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def numeric_metrics(result: dict, excludes: tuple = ()) -> dict[str, float]:
    out = {}
    for key, value in flatten({k: v for k, v in result.items() if k not in SKIPPED}).items():
        if key in excludes or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
        elif hasattr(value, "item") and getattr(value, "size", 0) == 1:
            number = float(value.item())
            if math.isfinite(number):
                out[key] = number
    return out
