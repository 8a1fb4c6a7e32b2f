"""HyperBandScheduler: synchronous HyperBand (Li et al., 2018, "Hyperband: A Novel
Bandit-Based Approach to Hyperparameter Optimization").

Trials are dealt, as they are created, into brackets. Bracket ``s`` (s = s_max .. 0, then
round again) holds ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` trials and runs successive
halving from the milestone ``r = max_t / eta**s``:

    every trial of the bracket runs until time_attr >= r, then PAUSES (its checkpoint saved)
    once all have arrived: the best ceil(arrived / eta) go on to r * eta, the others STOP
    ... until r reaches max_t, where the survivors run to the end

"All have arrived" needs the bracket full, or the searcher finished. Unlike ASHA
(``AsyncHyperBandScheduler``), trials wait for each other; trials therefore need to save and
restore checkpoints (class trainables do; function trainables report them) to be paused.
"""

from __future__ import annotations

import math
from typing import Any

from raylite.tune._scheduler import FIFOScheduler
from raylite.tune._searcher import check_mode
from raylite.tune._trial import Trial


class _Bracket:
    """One bracket's successive halving: its trials, the current milestone, who has arrived."""

    def __init__(self, s: int, capacity: int, milestone: float, eta: float, max_t: float):
        self.s, self.capacity, self.eta, self.max_t = s, capacity, eta, max_t
        self.milestone = milestone
        self.trial_ids: list[str] = []
        self.live: set[str] = set()           # not ended
        self.arrived: dict[str, float] = {}   # trial id -> score at the current milestone
        self.promoted: set[str] = set()       # paused at a milestone, allowed to go on

    def full(self) -> bool:
        return len(self.trial_ids) >= self.capacity

    def final_rung(self) -> bool:
        return self.milestone >= self.max_t

    def everyone_arrived(self) -> bool:
        return bool(self.arrived) and all(t in self.arrived for t in self.live)

    def halve(self) -> tuple[list[str], list[str]]:
        """(the trials that go on to the next milestone, the ones to stop), best first."""
        ranked = sorted(self.arrived, key=lambda t: self.arrived[t], reverse=True)
        keep = max(1, math.ceil(len(ranked) / self.eta))
        self.milestone = min(self.milestone * self.eta, self.max_t)
        self.arrived = {}
        return ranked[:keep], ranked[keep:]


class HyperBandScheduler(FIFOScheduler):
    """Synchronous HyperBand: successive halving in brackets of different aggressiveness.

    Args:
        time_attr: the result field that measures progress (``training_iteration``).
        metric, mode: what to compare trials on.
        max_t: no trial runs past this ``time_attr``.
        reduction_factor: eta; each halving keeps the best 1/eta.
        stop_last_trials: stop the survivors at ``max_t`` (else they run on, to their end).

    Example:
        >>> from raylite import tune
        >>> hb = tune.schedulers.HyperBandScheduler(metric="loss", mode="min", max_t=9)
        >>> [(b["trials"], b["first_milestone"]) for b in hb.bracket_plan()]
        [(9, 1), (5, 3), (3, 9)]
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 81, reduction_factor: float = 3,
                 stop_last_trials: bool = True):
        check_mode(mode, type(self).__name__)
        if not isinstance(max_t, (int, float)) or max_t <= 0:
            raise ValueError(f"HyperBandScheduler: max_t must be > 0, got {max_t!r}")
        if not isinstance(reduction_factor, (int, float)) or reduction_factor <= 1:
            raise ValueError(f"HyperBandScheduler: reduction_factor must be > 1, got "
                             f"{reduction_factor!r}")
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._max_t, self._eta = max_t, reduction_factor
        self._stop_last_trials = stop_last_trials
        self._s_max = max(0, int(round(math.log(max_t) / math.log(reduction_factor))))
        self._next_s = self._s_max
        self._brackets: list[_Bracket] = []
        self._bracket_of: dict[str, _Bracket] = {}
        self.num_stopped = 0

    def bracket_plan(self) -> list[dict[str, Any]]:
        """The brackets of one HyperBand round: trials each and first milestone."""
        return [{"s": s, "trials": self._capacity(s), "first_milestone": self._first_milestone(s)}
                for s in range(self._s_max, -1, -1)]

    def _capacity(self, s: int) -> int:
        return math.ceil((self._s_max + 1) / (s + 1) * self._eta ** s)

    def _first_milestone(self, s: int) -> float:
        milestone = self._max_t / self._eta ** s
        return int(milestone) if milestone >= 1 else milestone

    # ---- the runner's calls -------------------------------------------------------------------
    def on_trial_add(self, runner: Any, trial: Trial) -> None:
        self._require_metric()
        bracket = self._brackets[-1] if self._brackets else None
        if bracket is None or bracket.full():
            s = self._next_s
            self._next_s = s - 1 if s > 0 else self._s_max
            bracket = _Bracket(s, self._capacity(s), self._first_milestone(s), self._eta, self._max_t)
            self._brackets.append(bracket)
        bracket.trial_ids.append(trial.trial_id)
        bracket.live.add(trial.trial_id)
        self._bracket_of[trial.trial_id] = bracket

    def on_trial_result(self, runner: Any, trial: Trial, result: dict) -> str:
        bracket = self._bracket_of.get(trial.trial_id)
        if bracket is None or self._time_attr not in result or self._metric not in result:
            return self.CONTINUE
        time = result[self._time_attr]
        if time >= self._max_t and self._stop_last_trials:
            return self.STOP
        if bracket.final_rung() or time < bracket.milestone:
            return self.CONTINUE
        sign = 1.0 if self._mode == "max" else -1.0
        bracket.arrived[trial.trial_id] = sign * result[self._metric]
        bracket.promoted.discard(trial.trial_id)
        if not (bracket.everyone_arrived() and (bracket.full() or runner.search_finished())):
            return self.PAUSE
        keep = self._halve(runner, bracket, current=trial.trial_id)
        if trial.trial_id in keep:
            return self.CONTINUE
        self.num_stopped += 1
        return self.STOP

    def _halve(self, runner: Any, bracket: _Bracket, current: str | None = None) -> list[str]:
        """Halve ``bracket``: stop its losers (paused ones here; ``current`` by the caller's
        decision) and let its winners go on."""
        keep, drop = bracket.halve()
        by_id = {t.trial_id: t for t in runner.live_trials()}
        bracket.promoted.update(t for t in keep if t != current)
        for trial_id in drop:
            if trial_id != current and trial_id in by_id:
                self.num_stopped += 1
                runner.stop_trial(by_id[trial_id])
        return keep

    def on_trial_complete(self, runner: Any, trial: Trial, result: dict | None) -> None:
        bracket = self._bracket_of.get(trial.trial_id)
        if bracket is not None:
            bracket.live.discard(trial.trial_id)
            bracket.arrived.pop(trial.trial_id, None)
            bracket.promoted.discard(trial.trial_id)

    def on_trial_error(self, runner: Any, trial: Trial) -> None:
        self.on_trial_complete(runner, trial, None)

    on_trial_remove = on_trial_error

    def choose_trial_to_run(self, runner: Any) -> Trial | None:
        """A new trial first; then a paused one its bracket promoted. Brackets whose trials
        have all arrived are halved here when the search has ended (or nothing else can
        move: no trial running and none promoted)."""
        live = runner.live_trials()
        for trial in live:
            if trial.status == Trial.PENDING:
                return trial
        chosen = self._promoted_trial(runner)
        if chosen is not None:
            return chosen
        for bracket in self._brackets:
            if bracket.everyone_arrived() and (bracket.full() or runner.search_finished()):
                self._halve(runner, bracket)
        chosen = self._promoted_trial(runner)
        if chosen is None and not any(t.status == Trial.RUNNING for t in runner.live_trials()):
            for bracket in self._brackets:  # nothing else can move: halve what has arrived
                if bracket.everyone_arrived():
                    self._halve(runner, bracket)
            chosen = self._promoted_trial(runner)
        return chosen

    def _promoted_trial(self, runner: Any) -> Trial | None:
        for trial in runner.live_trials():
            bracket = self._bracket_of.get(trial.trial_id)
            if trial.status == Trial.PAUSED and bracket and trial.trial_id in bracket.promoted:
                return trial
        return None

    def debug_string(self) -> str:
        lines = [f"Using HyperBand: num_stopped={self.num_stopped} total_brackets="
                 f"{len(self._brackets)}"]
        for i, b in enumerate(self._brackets):
            lines.append(f"Round {i}: bracket(s={b.s}, max_trials={b.capacity}, "
                         f"milestone={b.milestone}, live={len(b.live)}, arrived={len(b.arrived)})")
        return "\n".join(lines)
