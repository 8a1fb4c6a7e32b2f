"""Trial schedulers: after each result, decide whether a trial goes on, pauses or stops.

    runner --on_trial_add(runner, trial)---------------> scheduler
    runner --on_trial_result(runner, trial, result)----> scheduler -> CONTINUE | PAUSE | STOP
    runner --on_trial_complete / on_trial_error--------> scheduler
    runner --choose_trial_to_run(runner)---------------> scheduler -> a PENDING or PAUSED trial

``runner`` offers ``live_trials()`` (trials not yet ended), ``search_finished()``, and for
schedulers that act on other trials than the one reporting: ``stop_trial(trial)``,
``save_trial(trial) -> checkpoint path`` and ``restart_trial(trial, config, checkpoint, ...)``
(HyperBand and PBT use them). Decisions are strings, as in Ray; NOOP means the scheduler has
already changed the trial's status through the runner.
"""

from __future__ import annotations

import math
import random
from typing import Any

from raylite.tune._searcher import check_mode
from raylite.tune._trial import Trial


class TrialScheduler:
    """Base class: every trial runs to its end, first come first served (FIFO)."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"
    NOOP = "NOOP"

    _metric: str | None = None
    _mode: str | None = None
    #: True asks the runner to create waiting trials up front (a population to rank, as PBT)
    eager_trials = False

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Take the experiment's metric/mode where the scheduler was given none."""
        check_mode(mode, "tune.run")
        if metric and self._metric and metric != self._metric:
            return False
        if mode and self._mode and mode != self._mode:
            return False
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def on_trial_add(self, runner: Any, trial: Trial) -> None:
        pass

    def on_trial_result(self, runner: Any, trial: Trial, result: dict) -> str:
        return self.CONTINUE

    def on_trial_complete(self, runner: Any, trial: Trial, result: dict | None) -> None:
        pass

    def on_trial_error(self, runner: Any, trial: Trial) -> None:
        pass

    def on_trial_remove(self, runner: Any, trial: Trial) -> None:
        pass

    def choose_trial_to_run(self, runner: Any) -> Trial | None:
        """The next trial to start: the first PENDING one, else the first PAUSED one."""
        waiting = [t for t in runner.live_trials() if t.status == Trial.PENDING]
        waiting = waiting or [t for t in runner.live_trials() if t.status == Trial.PAUSED]
        return waiting[0] if waiting else None

    def debug_string(self) -> str:
        return f"Using {type(self).__name__} scheduling algorithm."

    def _require_metric(self) -> None:
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__} needs a metric and a mode (got metric="
                             f"{self._metric!r}, mode={self._mode!r}): pass them to the scheduler "
                             "or to tune.run(metric=..., mode=...)")


class FIFOScheduler(TrialScheduler):
    """Run trials in the order they were created; never stop one early."""

    def debug_string(self) -> str:
        return "Using FIFO scheduling algorithm."


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0..100) of ``values``, ignoring NaN (as numpy's)."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


class _Bracket:
    """One ASHA bracket: rungs at min_t * rf**(k+s); a trial reaching a rung below the rung's
    (1 - 1/rf) quantile of the trials recorded there so far is stopped."""

    def __init__(self, min_t: float, max_t: float, reduction_factor: float, s: int,
                 stop_last_trials: bool = True):
        self.rf = reduction_factor
        count = int(math.log(max_t / min_t) / math.log(reduction_factor) - s + 1)
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (min_t * reduction_factor ** (k + s), {}) for k in reversed(range(count))]
        self.stop_last_trials = stop_last_trials

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        if not recorded:
            return None
        return percentile(list(recorded.values()), (1 - 1 / self.rf) * 100)

    def on_result(self, trial_id: str, time: float, reward: float) -> str:
        action = TrialScheduler.CONTINUE
        for milestone, recorded in self.rungs:
            if time >= milestone and trial_id in recorded and not self.stop_last_trials:
                break
            if time < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(recorded)
            if cutoff is not None and reward < cutoff:
                action = TrialScheduler.STOP
            recorded[trial_id] = reward
            break
        return action

    def debug_string(self) -> str:
        return "Bracket: " + " | ".join(f"Iter {m:.3f}: {self.cutoff(r)}" for m, r in self.rungs)


class AsyncHyperBandScheduler(TrialScheduler):
    """ASHA: asynchronous successive halving (Li et al., 2018).

    Args:
        time_attr: the result field that measures progress (``training_iteration``).
        metric, mode: what to compare trials on.
        max_t: trials stop at this ``time_attr``.
        grace_period: no trial stops before this ``time_attr``.
        reduction_factor: keep the top 1/reduction_factor at each rung.
        brackets: number of brackets (differently aggressive rung sets).

    Example:
        >>> from raylite import tune
        >>> scheduler = tune.schedulers.ASHAScheduler(metric="loss", mode="min", max_t=10)
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 100, grace_period: float = 1,
                 reduction_factor: float = 4, brackets: int = 1, stop_last_trials: bool = True,
                 seed: int | None = None):
        check_mode(mode, type(self).__name__)
        for name, value, ok in (("max_t", max_t, max_t > 0), ("grace_period", grace_period, grace_period > 0),
                                ("reduction_factor", reduction_factor, reduction_factor > 1),
                                ("brackets", brackets, brackets > 0)):
            if not ok:
                raise ValueError(f"{type(self).__name__}: {name} must be positive "
                                 f"(reduction_factor > 1), got {value!r}")
        if grace_period > max_t:
            raise ValueError(f"grace_period ({grace_period}) must be <= max_t ({max_t})")
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._max_t = max_t
        self._stop_last_trials = stop_last_trials
        self._brackets = [_Bracket(grace_period, max_t, reduction_factor, s, stop_last_trials)
                          for s in range(brackets)]
        self._trial_bracket: dict[str, _Bracket] = {}
        self._rng = random.Random(seed)
        self.num_stopped = 0

    def _sign(self) -> float:
        return 1.0 if self._mode == "max" else -1.0

    def on_trial_add(self, runner, trial) -> None:
        self._require_metric()
        sizes = [len(b.rungs) for b in self._brackets]
        weights = [math.exp(s - max(sizes)) for s in sizes]
        self._trial_bracket[trial.trial_id] = self._rng.choices(self._brackets, weights)[0]

    def on_trial_result(self, runner, trial, result) -> str:
        if self._time_attr not in result or self._metric not in result:
            return self.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = self.STOP
        else:
            bracket = self._trial_bracket[trial.trial_id]
            action = bracket.on_result(trial.trial_id, result[self._time_attr],
                                       self._sign() * result[self._metric])
        if action == self.STOP:
            self.num_stopped += 1
        return action

    def on_trial_complete(self, runner, trial, result) -> None:
        bracket = self._trial_bracket.pop(trial.trial_id, None)
        if bracket and result and self._time_attr in result and self._metric in result:
            bracket.on_result(trial.trial_id, result[self._time_attr],
                              self._sign() * result[self._metric])

    def on_trial_error(self, runner, trial) -> None:
        self._trial_bracket.pop(trial.trial_id, None)

    on_trial_remove = on_trial_error

    def debug_string(self) -> str:
        return "\n".join([f"Using AsyncHyperBand: num_stopped={self.num_stopped}"] +
                         [b.debug_string() for b in self._brackets])


ASHAScheduler = AsyncHyperBandScheduler


class MedianStoppingRule(TrialScheduler):
    """Stop a trial whose best result by time t is worse than the median of the other trials'
    running averages up to t (Golovin et al., 2017, "Google Vizier").

    Args:
        time_attr: the result field that measures progress.
        metric, mode: what to compare trials on.
        grace_period: no trial stops before this ``time_attr``.
        min_samples_required: other trials needed before comparing.
        min_time_slice: with too few samples, pause a trial (if others wait) after this much time.
        hard_stop: stop (True) or pause (False) the trials found below the median.

    Example:
        >>> from raylite import tune
        >>> rule = tune.schedulers.MedianStoppingRule(time_attr="training_iteration",
        ...                                           metric="loss", mode="min", grace_period=2)
    """

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None,
                 mode: str | None = None, grace_period: float = 60.0,
                 min_samples_required: int = 3, min_time_slice: float = 0,
                 hard_stop: bool = True):
        check_mode(mode, type(self).__name__)
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._grace_period = grace_period
        self._min_samples_required = min_samples_required
        self._min_time_slice = min_time_slice
        self._hard_stop = hard_stop
        self._results: dict[str, list[dict]] = {}
        self._stopped: set[str] = set()
        self._last_pause: dict[str, float] = {}

    def on_trial_add(self, runner, trial) -> None:
        self._require_metric()

    def _better(self, a: float, b: float) -> bool:
        return a > b if self._mode == "max" else a < b

    def on_trial_result(self, runner, trial, result) -> str:
        if self._time_attr not in result or self._metric not in result:
            return self.CONTINUE
        if trial.trial_id in self._stopped:
            return self.CONTINUE
        time = result[self._time_attr]
        self._results.setdefault(trial.trial_id, []).append(result)
        if time < self._grace_period:
            return self.CONTINUE
        means = [m for m in (self._running_mean(other, time) for other in self._results
                             if other != trial.trial_id
                             and self._results[other][-1][self._time_attr] >= time)
                 if not math.isnan(m)]
        if len(means) < self._min_samples_required:
            return self._on_insufficient_samples(runner, trial, time)
        median = percentile(means, 50)
        best = self._best(trial.trial_id)
        if self._better(median, best):
            self._stopped.add(trial.trial_id)
            return self.STOP if self._hard_stop else self.PAUSE
        return self.CONTINUE

    def _on_insufficient_samples(self, runner, trial, time: float) -> str:
        if self._min_time_slice <= 0:
            return self.CONTINUE
        waiting = any(t.status in (Trial.PENDING, Trial.PAUSED) for t in runner.live_trials())
        if waiting and time - self._last_pause.get(trial.trial_id, -math.inf) > self._min_time_slice:
            self._last_pause[trial.trial_id] = time
            return self.PAUSE
        return self.CONTINUE

    def on_trial_complete(self, runner, trial, result) -> None:
        if result and self._metric in result and self._time_attr in result:
            results = self._results.setdefault(trial.trial_id, [])
            if not results or results[-1] is not result:
                results.append(result)

    def _running_mean(self, trial_id: str, time: float) -> float:
        values = [r[self._metric] for r in self._results[trial_id]
                  if self._grace_period <= r[self._time_attr] <= time]
        return sum(values) / len(values) if values else math.nan

    def _best(self, trial_id: str) -> float:
        values = [r[self._metric] for r in self._results[trial_id]]
        return max(values) if self._mode == "max" else min(values)

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: num_stopped={len(self._stopped)}."


def scheduler_from_name(name: str) -> TrialScheduler:
    """``scheduler="asha"`` and friends, as Ray accepts (PBT needs arguments: pass an instance)."""
    from raylite.tune._hyperband import HyperBandScheduler
    key = name.lower()
    table = {"fifo": FIFOScheduler, "async_hyperband": AsyncHyperBandScheduler,
             "asha": AsyncHyperBandScheduler, "median_stopping_rule": MedianStoppingRule,
             "hyperband": HyperBandScheduler}
    if key not in table:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(table)} or pass a "
                         "TrialScheduler instance")
    return table[key]()
