"""Trainers inside a Tuner: each trial counts its trainer's bundles (trainer + one per worker),
so only as many trials run as fit, and its workers reserve their bundles as the one placement
group; a failure is retried at one level only (Tune's), as in Ray."""

import os

import pytest

import raylite
from raylite import tune
from raylite.air import FailureConfig, RunConfig, ScalingConfig, session
from raylite.train import DataParallelTrainer


def _loop_in_trial(config):
    from raylite.util import placement_group_table
    groups = placement_group_table()
    session.report({"groups": len(groups),
                    "states": sorted(g["state"] for g in groups.values()),
                    "free_cpus": raylite.available_resources().get("CPU", 0)})


class _RunningTrials(tune.Callback):
    """The most trials RUNNING at once, as the driver sees it when each one starts."""

    def __init__(self):
        self.most = 0

    def on_trial_start(self, iteration, trials, trial, **info):
        self.most = max(self.most, sum(t.status == "RUNNING" for t in trials))


def test_trials_of_a_trainer_hold_its_bundles_and_run_one_at_a_time(ray, tmp_path):
    """2 CPUs, 3 trials of a 2-worker trainer (1 CPU each): one trial at a time, its workers'
    group the only placement group (no other trial's waiting), and all three finish."""
    assert raylite.cluster_resources()["CPU"] == 2
    trainer = DataParallelTrainer(_loop_in_trial, backend_config="tensorflow",
                                  scaling_config=ScalingConfig(num_workers=2))
    running = _RunningTrials()
    grid = tune.Tuner(trainer, param_space={"train_loop_config": {"i": tune.grid_search([0, 1, 2])}},
                      run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                                           callbacks=[running])).fit()
    assert not grid.errors and len(grid) == 3
    assert running.most == 1
    for result in grid:
        # the running trial's workers hold both CPUs; no other trial's group is waiting
        assert result.metrics["groups"] == 1 and result.metrics["states"] == ["CREATED"]
        assert result.metrics["free_cpus"] == 0
    from raylite.util import placement_group_table
    assert placement_group_table() == {}  # every trial's group was freed


def test_trainer_trial_bundles_and_a_scaling_config_override(ray, tmp_path):
    trainer = DataParallelTrainer(_loop_in_trial, backend_config="tensorflow",
                                  scaling_config=ScalingConfig(num_workers=2))
    function = trainer.as_trainable()
    assert function.__raylite_resources__.bundles == [{"CPU": 0}, {"CPU": 1.0}, {"CPU": 1.0}]
    assert function.__raylite_trial_resources__({"scaling_config": ScalingConfig(num_workers=1)}).bundles \
        == [{"CPU": 0}, {"CPU": 1.0}]
    # a fixed ScalingConfig in param_space sets every trial's bundles: 2 x 1-worker trials fit
    running = _RunningTrials()
    grid = tune.Tuner(trainer, param_space={"scaling_config": ScalingConfig(num_workers=1),
                                            "train_loop_config": {"i": tune.grid_search([0, 1])}},
                      run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                                           callbacks=[running])).fit()
    assert not grid.errors and len(grid) == 2 and running.most == 2


def _loop_always_failing(config):
    with open(config["attempts"], "a") as f:
        f.write("x")
    raise RuntimeError("always fails")


def _attempts(path):
    return len(open(path).read()) if os.path.exists(path) else 0


@pytest.mark.parametrize("trainer_failures, tuner_failures, attempts", [
    (1, 1, 2),     # both say 1: one retry in all (not 1 inside x 1 outside = 4 attempts)
    (2, None, 3),  # the Tuner without a RunConfig takes the trainer's: 2 retries, by Tune
])
def test_failures_are_retried_at_one_level(ray, tmp_path, trainer_failures, tuner_failures,
                                           attempts):
    path = str(tmp_path / "attempts")
    trainer = DataParallelTrainer(
        _loop_always_failing, train_loop_config={"attempts": path}, backend_config="tensorflow",
        run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                             failure_config=FailureConfig(max_failures=trainer_failures)))
    run_config = None if tuner_failures is None else RunConfig(
        storage_path=str(tmp_path), verbose=0,
        failure_config=FailureConfig(max_failures=tuner_failures))
    grid = tune.Tuner(trainer, run_config=run_config).fit()
    assert len(grid.errors) == 1 and "always fails" in str(grid.errors[0])
    assert _attempts(path) == attempts


@raylite.remote(num_cpus=0)
class _Gauge:
    """Training workers inside their loop right now, and the most ever at once; ``enter``
    returns once ``together`` workers are in (a trial's workers are started as a gang)."""

    def __init__(self):
        import asyncio
        self.now, self.most, self.entered = 0, 0, 0
        self.changed = asyncio.Condition()

    async def enter(self, together):
        import asyncio
        async with self.changed:
            self.now += 1
            self.entered += 1
            self.most = max(self.most, self.now)
            self.changed.notify_all()
            await asyncio.wait_for(self.changed.wait_for(lambda: self.now >= together), 60)

    async def leave(self):
        self.now -= 1

    async def counts(self):
        return {"most": self.most, "entered": self.entered, "now": self.now}


def _loop_counting_workers(config):
    from raylite.util import get_current_placement_group, placement_group_table
    gauge = raylite.get_actor(config["gauge"])
    raylite.get(gauge.enter.remote(2))
    group = get_current_placement_group()
    session.report({"group": group.id.hex() if group else None,
                    "bundles": group.bundle_specs if group else None,
                    "groups": {gid: g["state"] for gid, g in placement_group_table().items()},
                    "free_cpus": raylite.available_resources().get("CPU", 0)})
    raylite.get(gauge.leave.remote())


def test_each_trial_reserves_its_trainers_bundles_up_front(tmp_path):
    """3 CPUs; 2 trials whose param_space gives each 2 workers (the trainer's own
    ScalingConfig says 1, so only the trial's config tells what it needs): each trial reserves
    its group (2 bundles: the trainer's empty one is left out) before it starts, its workers run
    in that group (get_current_placement_group() is the trial's, the only one placed), so
    the trials run one at a time and never more than 2 workers train at once."""
    raylite.shutdown()
    raylite.init(num_cpus=3)
    try:
        gauge = _Gauge.options(name="gauge").remote()
        trainer = DataParallelTrainer(_loop_counting_workers, train_loop_config={"gauge": "gauge"},
                                      backend_config="tensorflow",
                                      scaling_config=ScalingConfig(num_workers=1))
        running = _RunningTrials()
        two_workers = ScalingConfig(num_workers=2)
        grid = tune.Tuner(trainer, param_space={
            "scaling_config": tune.grid_search([two_workers, two_workers])},
            run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                                 callbacks=[running])).fit()
        assert not grid.errors and len(grid) == 2
        assert running.most == 1
        assert raylite.get(gauge.counts.remote()) == {"most": 2, "entered": 4, "now": 0}
        groups = set()
        for result in grid:
            metrics = result.metrics
            # the trial's group is the one placed; the other trial's waits for its whole group
            placed = [gid for gid, state in metrics["groups"].items() if state == "CREATED"]
            assert placed == [metrics["group"]] and len(metrics["groups"]) <= 2
            assert metrics["bundles"] == [{"CPU": 1.0}, {"CPU": 1.0}]
            assert metrics["free_cpus"] == 1
            groups.add(metrics["group"])
        assert len(groups) == 2
        from raylite.util import placement_group_table
        assert placement_group_table() == {}                 # both freed at the trials' ends
    finally:
        raylite.shutdown()
