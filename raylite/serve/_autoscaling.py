"""Autoscaling: how many replicas a deployment should have, from the requests it has in flight.

    controller, every metrics_interval_s:  sum(replica.stats()["ongoing"]) + requests queued at
                                           the proxy  ──record(now, total)──▶ AutoscalingPolicy
    controller, every control tick:        policy.decide(now, current) ──▶ new target replica count

The policy is pure (no I/O, no clock of its own: the caller passes ``now``), so it is tested
without processes. Its rule:

- ``ideal = average total in flight over look_back_period_s / target_ongoing_requests``;
- the step toward it is scaled by ``upscaling_factor`` / ``downscaling_factor`` (both default
  to ``smoothing_factor``, 1.0), rounded up, and clamped to ``[min_replicas, max_replicas]``;
- a change happens only once every decision for ``upscale_delay_s`` (``downscale_delay_s``) in a
  row has wanted to go the same way; a decision that wants no change resets both clocks.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

from raylite.serve._common import did_you_mean

_AUTO_DEFAULTS = {"min_replicas": 1, "max_replicas": 100, "target_ongoing_requests": 2.0}
_ALIASES = {"target_num_ongoing_requests_per_replica": "target_ongoing_requests"}  # Ray 1.x
_ACCEPTED_WITHOUT_EFFECT = frozenset({"policy", "aggregation_function",
                                      "upscale_smoothing_factor", "downscale_smoothing_factor"})


@dataclasses.dataclass(frozen=True)
class AutoscalingConfig:
    """A deployment's ``autoscaling_config`` (Ray Serve's fields and defaults, except that
    metrics are sampled every second rather than every ten: sampling more often only makes the
    average over ``look_back_period_s`` more precise).

    ``target_num_ongoing_requests_per_replica`` (the book's Ray 1.x name) is accepted for
    ``target_ongoing_requests``.
    """

    min_replicas: int = 1
    max_replicas: int = 1
    initial_replicas: int | None = None
    target_ongoing_requests: float = 2.0
    metrics_interval_s: float = 1.0
    look_back_period_s: float = 30.0
    smoothing_factor: float = 1.0
    upscaling_factor: float | None = None
    downscaling_factor: float | None = None
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0

    @property
    def starting_replicas(self) -> int:
        return self.min_replicas if self.initial_replicas is None else self.initial_replicas

    @classmethod
    def parse(cls, value: Any, where: str, auto: bool = False) -> AutoscalingConfig:
        """Check a user's ``autoscaling_config`` (a dict or an AutoscalingConfig); with
        ``auto`` (``num_replicas="auto"``), what it leaves out takes the "auto" defaults."""
        if isinstance(value, AutoscalingConfig):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"{where}: autoscaling_config must be a dict such as "
                            f"{{'min_replicas': 1, 'max_replicas': 4}}, got {type(value).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, item in value.items():
            name = _ALIASES.get(key, key)
            if name in _ACCEPTED_WITHOUT_EFFECT:
                continue
            if name not in fields:
                raise ValueError(f"{where}: autoscaling_config has no option {key!r}"
                                 f"{did_you_mean(key, fields | set(_ALIASES))} Valid options: "
                                 f"{', '.join(sorted(fields))}.")
            if name in values and item != values[name]:
                raise ValueError(f"{where}: autoscaling_config gives target_ongoing_requests "
                                 "twice (also as target_num_ongoing_requests_per_replica)")
            values[name] = item
        if auto:
            values = {**_AUTO_DEFAULTS, **values}
        config = cls(**values)
        config.check(where)
        return config

    @classmethod
    def auto(cls) -> AutoscalingConfig:
        """What ``num_replicas="auto"`` means (Ray Serve 2.x)."""
        return cls(**_AUTO_DEFAULTS)

    def check(self, where: str) -> None:
        for name in ("min_replicas", "max_replicas"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{where}: autoscaling_config {name} must be an int >= 0, "
                                 f"got {value!r}")
        if self.max_replicas < 1 or self.max_replicas < self.min_replicas:
            raise ValueError(f"{where}: autoscaling_config needs 1 <= max_replicas and "
                             f"min_replicas <= max_replicas, got min_replicas="
                             f"{self.min_replicas}, max_replicas={self.max_replicas}")
        start = self.initial_replicas
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)
                                  or not self.min_replicas <= start <= self.max_replicas):
            raise ValueError(f"{where}: autoscaling_config initial_replicas must be an int "
                             f"between min_replicas and max_replicas, got {start!r}")
        positive = ("target_ongoing_requests", "metrics_interval_s", "look_back_period_s",
                    "smoothing_factor", "upscaling_factor", "downscaling_factor")
        for name in positive:
            value = getattr(self, name)
            if value is None and name.endswith("scaling_factor"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{where}: autoscaling_config {name} must be a number > 0, "
                                 f"got {value!r}")
        for name in ("upscale_delay_s", "downscale_delay_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{where}: autoscaling_config {name} must be a number >= 0, "
                                 f"got {value!r}")


class AutoscalingPolicy:
    """One deployment's autoscaling state: recent load samples and the pending decision."""

    def __init__(self, config: AutoscalingConfig):
        self.config = config
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._up_since: float | None = None
        self._down_since: float | None = None

    def record(self, now: float, total_ongoing: float) -> None:
        """A sample of the requests in flight (running or queued) over the whole deployment."""
        self._samples.append((now, float(total_ongoing)))
        horizon = now - self.config.look_back_period_s
        while len(self._samples) > 1 and self._samples[0][0] < horizon:
            self._samples.popleft()

    def average_ongoing(self) -> float:
        if not self._samples:
            return 0.0
        return sum(total for _, total in self._samples) / len(self._samples)

    def desired(self, current: int) -> int:
        """The replica count the recent load asks for (before the delays)."""
        config = self.config
        if not self._samples:
            return self.clamp(current)
        ideal = self.average_ongoing() / config.target_ongoing_requests
        change = ideal - current
        if change > 0:
            factor = config.upscaling_factor or config.smoothing_factor
        else:
            factor = config.downscaling_factor or config.smoothing_factor
        wanted = math.ceil(round(current + change * factor, 9))
        if ideal > 0 and wanted == 0:
            wanted = 1  # anything in flight needs a replica to run on
        return self.clamp(wanted)

    def clamp(self, count: int) -> int:
        return max(self.config.min_replicas, min(self.config.max_replicas, count))

    def decide(self, now: float, current: int) -> int:
        """The new target replica count (``current`` until a change has waited its delay)."""
        wanted = self.desired(current)
        if wanted > current:
            self._down_since = None
            if self._up_since is None:
                self._up_since = now
            if now - self._up_since >= self.config.upscale_delay_s:
                self._up_since = None
                return wanted
        elif wanted < current:
            self._up_since = None
            if self._down_since is None:
                self._down_since = now
            if now - self._down_since >= self.config.downscale_delay_s:
                self._down_since = None
                return wanted
        else:
            self._up_since = self._down_since = None
        return current
