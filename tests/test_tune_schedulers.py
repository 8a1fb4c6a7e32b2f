"""Schedulers and stoppers: as state machines (no processes), then ASHA, HyperBand and the
median rule end to end on synthetic learning curves."""

import json
import os
import random

import pytest

from raylite import tune
from raylite.tune import _scheduler as sched_mod
from raylite.tune.schedulers import (ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler,
                                     HyperBandScheduler, MedianStoppingRule, TrialScheduler)
from raylite.tune.stopper import (CombinedStopper, MaximumIterationStopper, TimeoutStopper,
                                  TrialPlateauStopper)


class FakeRunner:
    def __init__(self, trials=(), search_finished=False):
        self.trials = list(trials)
        self.finished = search_finished
        self.stopped = []

    def live_trials(self):
        return [t for t in self.trials if not t.is_finished()]

    def search_finished(self):
        return self.finished

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        trial.status = tune.Trial.TERMINATED


def make_trial(i, status=tune.Trial.RUNNING):
    trial = tune.Trial("f", {"i": i}, f"t{i:02d}")
    trial.status = status
    return trial


# ---- state machines ----------------------------------------------------------------------
def test_percentile_matches_numpy_linear():
    import numpy as np
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    for q in (0, 25, 50, 75, 90, 100):
        assert sched_mod.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_asha_rungs_and_cutoff():
    scheduler = AsyncHyperBandScheduler(metric="acc", mode="max", max_t=8, grace_period=1,
                                        reduction_factor=2)
    bracket = scheduler._brackets[0]
    assert [milestone for milestone, _ in bracket.rungs] == [8, 4, 2, 1]
    runner = FakeRunner()
    trials = [make_trial(i) for i in range(4)]
    for trial in trials:
        scheduler.on_trial_add(runner, trial)
    decide = lambda trial, it, acc: scheduler.on_trial_result(
        runner, trial, {"training_iteration": it, "acc": acc})
    assert decide(trials[0], 1, 0.5) == TrialScheduler.CONTINUE   # first at the rung
    assert decide(trials[1], 1, 0.9) == TrialScheduler.CONTINUE   # above the cutoff
    assert decide(trials[2], 1, 0.1) == TrialScheduler.STOP       # below the median
    assert decide(trials[3], 1, 0.95) == TrialScheduler.CONTINUE
    assert decide(trials[1], 8, 0.99) == TrialScheduler.STOP      # max_t reached
    assert scheduler.num_stopped == 2


def test_asha_min_mode_and_missing_metric():
    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=4, grace_period=1, reduction_factor=2)
    runner = FakeRunner()
    a, b = make_trial(0), make_trial(1)
    scheduler.on_trial_add(runner, a)
    scheduler.on_trial_add(runner, b)
    assert scheduler.on_trial_result(runner, a, {"training_iteration": 1, "loss": 0.1}) == "CONTINUE"
    assert scheduler.on_trial_result(runner, b, {"training_iteration": 1, "loss": 0.9}) == "STOP"
    assert scheduler.on_trial_result(runner, b, {"training_iteration": 1}) == "CONTINUE"
    with pytest.raises(ValueError, match="needs a metric and a mode"):
        ASHAScheduler().on_trial_add(runner, a)


@pytest.mark.parametrize("kwargs", [{"max_t": 0}, {"reduction_factor": 1},
                                    {"grace_period": 10, "max_t": 5}, {"mode": "best"}])
def test_asha_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ASHAScheduler(metric="acc", **{"mode": "max", **kwargs})


def test_median_stopping_rule_state_machine():
    rule = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max",
                              grace_period=2, min_samples_required=2)
    runner = FakeRunner()
    good = [make_trial(i) for i in range(2)]
    bad = make_trial(9)
    for t in range(1, 5):
        for trial in good:
            assert rule.on_trial_result(runner, trial, {"training_iteration": t, "acc": 0.8}) == "CONTINUE"
    assert rule.on_trial_result(runner, bad, {"training_iteration": 1, "acc": 0.1}) == "CONTINUE"  # grace
    assert rule.on_trial_result(runner, bad, {"training_iteration": 2, "acc": 0.2}) == "STOP"
    late = make_trial(10)
    assert rule.on_trial_result(runner, late, {"training_iteration": 2, "acc": 0.9}) == "CONTINUE"


def test_fifo_chooses_pending_before_paused():
    trials = [make_trial(0, "PAUSED"), make_trial(1, "PENDING"), make_trial(2, "TERMINATED")]
    assert FIFOScheduler().choose_trial_to_run(FakeRunner(trials)) is trials[1]
    trials[1].status = "RUNNING"
    assert FIFOScheduler().choose_trial_to_run(FakeRunner(trials)) is trials[0]


def test_trial_status_lifecycle():
    trial = tune.Trial("f", {}, "t0")
    assert trial.status == "PENDING"
    trial.set_status("RUNNING")
    trial.set_status("PAUSED")
    trial.set_status("PENDING")
    trial.set_status("RUNNING")
    trial.set_status("TERMINATED")
    with pytest.raises(RuntimeError, match="illegal status change TERMINATED -> RUNNING"):
        trial.set_status("RUNNING")


def test_stoppers():
    stopper = MaximumIterationStopper(2)
    assert [stopper("a", {}), stopper("a", {}), stopper("b", {})] == [False, True, False]
    plateau = TrialPlateauStopper("loss", std=0.01, num_results=3, grace_period=3)
    flags = [plateau("a", {"loss": v, "training_iteration": i + 1})
             for i, v in enumerate([1.0, 0.5, 0.3, 0.3, 0.3])]
    assert flags == [False, False, False, False, True]
    combined = CombinedStopper(MaximumIterationStopper(10), TimeoutStopper(1e-6))
    assert combined("a", {}) is False
    assert combined.stop_all() is True
    with pytest.raises(ValueError):
        MaximumIterationStopper(0)


# ---- end to end --------------------------------------------------------------------------
def learning_curve(config):
    for step in range(1, 17):
        tune.report(acc=config["quality"] * (1 - 0.8 ** step))


def test_asha_stops_most_trials_early_and_keeps_the_best(ray, tmp_path):
    qualities = list(range(1, 25))
    random.Random(7).shuffle(qualities)
    analysis = tune.run(learning_curve, config={"quality": tune.grid_search(qualities)},
                        scheduler=ASHAScheduler(max_t=16, grace_period=1, reduction_factor=3),
                        metric="acc", mode="max", storage_path=str(tmp_path), verbose=0)
    iterations = [t.last_result["training_iteration"] for t in analysis.trials]
    stopped_early = sum(1 for it in iterations if it < 16)
    assert stopped_early > len(iterations) / 2, iterations
    assert analysis.best_config == {"quality": 24}
    assert analysis.best_trial.last_result["training_iteration"] == 16
    assert all(t.status == "TERMINATED" for t in analysis.trials)


def test_median_stopping_rule_end_to_end(ray, tmp_path):
    analysis = tune.run(learning_curve, config={"quality": tune.grid_search([10, 9, 8, 1, 2, 1])},
                        scheduler=MedianStoppingRule(time_attr="training_iteration",
                                                     grace_period=2, min_samples_required=2),
                        metric="acc", mode="max", max_concurrent_trials=2,
                        storage_path=str(tmp_path), verbose=0)
    by_quality = {t.config["quality"]: t.last_result["training_iteration"] for t in analysis.trials}
    assert by_quality[10] == 16
    assert any(it < 16 for q, it in by_quality.items() if q <= 2)
    assert analysis.best_config == {"quality": 10}


def test_scheduler_metric_conflict_is_an_error(ray, tmp_path):
    with pytest.raises(ValueError, match="conflicts"):
        tune.run(learning_curve, scheduler=ASHAScheduler(metric="acc", mode="max"),
                 metric="loss", mode="min", storage_path=str(tmp_path), verbose=0)


class PauseEachTrialOnce(FIFOScheduler):
    def __init__(self):
        self.paused = set()

    def on_trial_result(self, runner, trial, result):
        if result["training_iteration"] == 2 and trial.trial_id not in self.paused:
            self.paused.add(trial.trial_id)
            return self.PAUSE
        return self.CONTINUE


class Counter(tune.Trainable):
    def setup(self, config):
        self.count = 0

    def step(self):
        self.count += 1
        return {"count": self.count}

    def save_checkpoint(self, checkpoint_dir):
        return {"count": self.count}

    def load_checkpoint(self, checkpoint):
        self.count = checkpoint["count"]


def test_paused_trials_resume_from_their_checkpoint(ray, tmp_path):
    scheduler = PauseEachTrialOnce()
    analysis = tune.run(Counter, num_samples=3, stop={"training_iteration": 4},
                        scheduler=scheduler, storage_path=str(tmp_path), verbose=0)
    assert len(scheduler.paused) == 3
    for trial in analysis.trials:
        assert trial.status == "TERMINATED"
        assert trial.last_result["count"] == 4 and trial.last_result["training_iteration"] == 4


# ---- HyperBand (synchronous) ---------------------------------------------------------------
def test_hyperband_brackets_pause_then_halve():
    scheduler = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    assert [(b["trials"], b["first_milestone"]) for b in scheduler.bracket_plan()] == [
        (9, 1), (5, 3), (3, 9)]
    trials = [make_trial(i) for i in range(10)]
    runner = FakeRunner(trials)
    for trial in trials:
        scheduler.on_trial_add(runner, trial)
    decide = lambda trial, it, acc: scheduler.on_trial_result(
        runner, trial, {"training_iteration": it, "acc": acc})
    for trial in trials[:8]:  # the first bracket holds 9: wait for all of them
        assert decide(trial, 1, float(trial.config["i"])) == TrialScheduler.PAUSE
        trial.status = tune.Trial.PAUSED
    assert scheduler.choose_trial_to_run(runner) is None  # nobody promoted yet
    assert decide(trials[8], 1, 8.0) == TrialScheduler.CONTINUE  # the best third goes on
    assert sorted(runner.stopped) == [f"t{i:02d}" for i in range(6)]
    chosen = scheduler.choose_trial_to_run(runner)
    assert chosen.trial_id in ("t06", "t07")
    assert decide(trials[8], 2, 8.5) == TrialScheduler.CONTINUE  # next milestone is 3
    assert decide(trials[8], 9, 9.0) == TrialScheduler.STOP      # max_t
    assert scheduler._bracket_of["t09"].capacity == 5           # the next bracket


def test_hyperband_halves_a_partial_bracket_once_the_search_ends():
    scheduler = HyperBandScheduler(metric="loss", mode="min", max_t=9, reduction_factor=3)
    trials = [make_trial(i) for i in range(3)]
    runner = FakeRunner(trials)
    for trial in trials:
        scheduler.on_trial_add(runner, trial)
        assert scheduler.on_trial_result(runner, trial, {"training_iteration": 1,
                                                         "loss": trial.config["i"]}) == "PAUSE"
        trial.status = tune.Trial.PAUSED
    runner.finished = True
    assert scheduler.choose_trial_to_run(runner) is trials[0]  # lowest loss kept
    assert runner.stopped == ["t01", "t02"]


class Curve(tune.Trainable):
    """A learning curve whose height is config["quality"]; checkpoints its step count."""

    def setup(self, config):
        self.steps = 0

    def step(self):
        self.steps += 1
        return {"acc": self.config["quality"] * (1 - 0.8 ** self.steps), "steps": self.steps}

    def save_checkpoint(self, checkpoint_dir):
        return {"steps": self.steps}

    def load_checkpoint(self, checkpoint):
        self.steps = checkpoint["steps"]


def test_hyperband_end_to_end(ray, tmp_path):
    qualities = [3, 9, 1, 7, 5, 2, 8, 4, 6]
    scheduler = HyperBandScheduler(max_t=9, reduction_factor=3)
    analysis = tune.run(Curve, config={"quality": tune.grid_search(qualities)},
                        scheduler=scheduler, metric="acc", mode="max",
                        storage_path=str(tmp_path), verbose=0)
    iterations = {t.config["quality"]: t.last_result["training_iteration"] for t in analysis.trials}
    assert sorted(iterations.values()) == [1] * 6 + [3] * 2 + [9]
    assert iterations[9] == 9 and iterations[8] == iterations[7] == 3
    assert analysis.best_config == {"quality": 9}
    assert scheduler.num_stopped == 8
    for trial in analysis.trials:  # paused and resumed from checkpoints, never restarted
        lines = [json.loads(x) for x in open(os.path.join(trial.logdir, "result.json"))]
        assert [r["steps"] for r in lines] == list(range(1, iterations[trial.config["quality"]] + 1))
