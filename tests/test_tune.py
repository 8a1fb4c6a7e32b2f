"""raylite.tune end to end: the book's Example 1-7, reporting, files on disk, failures, stop
conditions, class trainables, the Tuner surface, callbacks and the progress table."""

import io
import itertools
import json
import os
import re
import time

import pytest

from raylite import tune

BOOK_EXAMPLE_1_7 = '''
from ray import tune
import math
import time

def training_function(config):
    x, y = config["x"], config["y"]
    time.sleep(10)
    score = objective(x, y)
    tune.report(score=score)

def objective(x, y):
    return math.sqrt((x**2 + y**2)/2)

result = tune.run(
    training_function,
    config={
        "x": tune.grid_search([-1, -.5, 0, .5, 1]),
        "y": tune.grid_search([-1, -.5, 0, .5, 1])
    })

print(result.get_best_config(metric="score", mode="min"))
'''


def read(path):
    with open(path) as f:
        return f.read()


def read_lines(path):
    return read(path).splitlines()


def run_quiet(trainable, tmp_path, **kwargs):
    kwargs.setdefault("verbose", 0)
    return tune.run(trainable, storage_path=str(tmp_path), **kwargs)


def test_book_example_1_7(ray, tmp_path, monkeypatch, capsys):
    source = (BOOK_EXAMPLE_1_7.replace("from ray import tune", "from raylite import tune")
              .replace("time.sleep(10)", "time.sleep(0.05)"))
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path))
    namespace = {"__name__": "learning_ray_example_1_7"}
    exec(compile(source, "example_1_7.py", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "{'x': 0, 'y': 0}"
    (experiment,) = os.listdir(tmp_path)
    trial_dirs = [d for d in os.listdir(tmp_path / experiment) if d.startswith("training_function_")]
    assert len(trial_dirs) == 25
    analysis = namespace["result"]
    assert {t.status for t in analysis.trials} == {"TERMINATED"}
    assert analysis.get_best_trial("score", "min").last_result["score"] == 0


def report_in_every_style(config):
    tune.report(score=1)                         # 1.x keywords
    tune.report({"score": 2})                    # 2.x dict
    tune.session.report({"score": 3})            # 2.x session module
    return {"score": 4}                          # a returned dict is the last result


def test_report_styles(ray, tmp_path):
    analysis = run_quiet(report_in_every_style, tmp_path)
    (trial,) = analysis.trials
    assert trial.last_result["score"] == 4
    assert trial.last_result["training_iteration"] == 4
    lines = read_lines(os.path.join(trial.logdir, "result.json"))
    assert [json.loads(line)["score"] for line in lines] == [1, 2, 3, 4]


def test_report_outside_a_trial_raises():
    with pytest.raises(RuntimeError, match="outside a Tune trial"):
        tune.report(score=1)


def three_steps(config):
    for step in range(3):
        tune.report(loss=config["lr"] * (3 - step), nested={"a": step})


def test_files_on_disk(ray, tmp_path):
    analysis = run_quiet(three_steps, tmp_path, name="files",
                         config={"lr": tune.grid_search([0.1, 0.2]), "fixed": "yes"})
    experiment = tmp_path / "files"
    assert analysis.experiment_path == str(experiment)
    assert (experiment / "experiment_state.json").exists()
    for trial in analysis.trials:
        assert os.path.dirname(trial.logdir) == str(experiment)
        assert json.loads(read(os.path.join(trial.logdir, "params.json"))) == trial.config
        lines = [json.loads(x) for x in read_lines(os.path.join(trial.logdir, "result.json"))]
        assert [r["training_iteration"] for r in lines] == [1, 2, 3]
        assert all(r["config"] == trial.config and r["trial_id"] == trial.trial_id for r in lines)
        rows = read_lines(os.path.join(trial.logdir, "progress.csv"))
        header = rows[0].split(",")
        assert "loss" in header and "nested/a" in header and len(rows) == 4
        assert any(n.startswith("events.out.tfevents") for n in os.listdir(trial.logdir))
        assert trial.error_file is None
    state = json.loads(read(experiment / "experiment_state.json"))
    assert sorted(t["trial_id"] for t in state["trials"]) == sorted(t.trial_id for t in analysis.trials)
    reloaded = tune.ExperimentAnalysis(str(experiment))
    assert reloaded.get_best_config("loss", "min") == {"lr": 0.1, "fixed": "yes"}


def test_analysis_accessors(ray, tmp_path):
    analysis = run_quiet(three_steps, tmp_path, config={"lr": tune.grid_search([0.3, 0.1, 0.2])},
                         metric="loss", mode="min")
    assert analysis.best_config == {"lr": 0.1}
    assert analysis.best_result["loss"] == pytest.approx(0.1)
    assert analysis.best_trial.config == {"lr": 0.1}
    assert analysis.get_best_config("loss", "max", scope="all") == {"lr": 0.3}
    assert set(analysis.results) == {t.trial_id for t in analysis.trials}
    frame = analysis.results_df
    assert len(frame) == 3 and "config/lr" in frame.columns and frame.index.name == "trial_id"
    best_rows = analysis.dataframe(metric="loss", mode="max")
    assert sorted(best_rows["training_iteration"]) == [1, 1, 1]
    assert len(analysis.trial_dataframes) == 3


def failing_on_two(config):
    tune.report(loss=config["x"])
    if config["x"] == 2:
        raise ValueError("x=2 is not allowed")
    tune.report(loss=config["x"] / 10)


def test_failed_trial_saves_traceback_and_others_go_on(ray, tmp_path):
    with pytest.raises(tune.TuneError) as info:
        run_quiet(failing_on_two, tmp_path, config={"x": tune.grid_search([1, 2, 3])})
    message = str(info.value)
    assert "1 of 3 trials did not complete" in message and "failing_on_two_" in message
    assert "ValueError: x=2 is not allowed" in message

    analysis = run_quiet(failing_on_two, tmp_path, config={"x": tune.grid_search([1, 2, 3])},
                         raise_on_failed_trial=False)
    by_x = {t.config["x"]: t for t in analysis.trials}
    assert by_x[2].status == "ERROR" and by_x[1].status == by_x[3].status == "TERMINATED"
    assert by_x[3].last_result["loss"] == pytest.approx(0.3)
    text = read(by_x[2].error_file)
    assert "Traceback" in text and "ValueError: x=2 is not allowed" in text
    assert "in failing_on_two" in text
    assert by_x[1].error_file is None


def test_metric_never_reported_names_it(ray, tmp_path):
    with pytest.raises(ValueError) as info:
        run_quiet(three_steps, tmp_path, config={"lr": 0.1}, metric="accuracy", mode="max")
    assert "'accuracy'" in str(info.value) and "loss" in str(info.value)

    analysis = run_quiet(three_steps, tmp_path, config={"lr": 0.1})
    with pytest.raises(ValueError) as info:
        analysis.get_best_config(metric="accuracy", mode="max")
    assert "'accuracy'" in str(info.value) and "loss" in str(info.value)
    with pytest.raises(ValueError, match="metric and a mode"):
        _ = analysis.best_config


def fails_first_time(config):
    marker = config["marker"]
    tune.report(attempt=1)
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    tune.report(attempt=2)


def test_max_failures_retries(ray, tmp_path):
    config = {"marker": str(tmp_path / "marker")}
    analysis = run_quiet(fails_first_time, tmp_path, config=config, max_failures=1)
    (trial,) = analysis.trials
    assert trial.status == "TERMINATED" and trial.num_failures == 1
    assert trial.last_result["attempt"] == 2
    assert "first attempt fails" in read(trial.error_file)


def exits_on_one(config):
    tune.report(score=1)
    if config["x"] == 1:
        os._exit(3)  # the trial's process dies
    tune.report(score=2)


def test_trial_whose_process_dies(ray, tmp_path):
    analysis = run_quiet(exits_on_one, tmp_path, config={"x": tune.grid_search([0, 1, 2])},
                         raise_on_failed_trial=False)
    assert [t.status for t in analysis.trials] == ["TERMINATED", "ERROR", "TERMINATED"]
    assert "died" in read(analysis.trials[1].error_file)


def resumable(config, checkpoint_dir=None):
    start = 0
    if checkpoint_dir:
        with open(os.path.join(checkpoint_dir, "step.txt")) as f:
            start = int(f.read())
    for step in range(start, 4):
        if step == 2 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("crash at step 2")
        with tune.checkpoint_dir(step=step) as directory, \
                open(os.path.join(directory, "step.txt"), "w") as f:
            f.write(str(step + 1))
        tune.report(step=step)


def test_function_checkpoint_dir_restores_after_failure(ray, tmp_path):
    analysis = run_quiet(resumable, tmp_path, config={"marker": str(tmp_path / "marker")},
                         max_failures=2)
    (trial,) = analysis.trials
    steps = [json.loads(x)["step"] for x in read_lines(os.path.join(trial.logdir, "result.json"))]
    assert steps == [0, 1, 2, 3] and trial.num_failures == 1
    assert trial.last_result["training_iteration"] == 4
    assert os.path.basename(trial.checkpoint) == "checkpoint_000003"


def forever(config):
    step = 0
    while True:
        step += 1
        tune.report(step=step, loss=1.0 / step)


class StopAtThree(tune.Stopper):
    def __call__(self, trial_id, result):
        return result["step"] >= 3


@pytest.mark.parametrize("stop, expected", [
    ({"training_iteration": 5}, 5),
    (lambda trial_id, result: result["loss"] < 0.25, 5),
    (StopAtThree(), 3),
    (tune.stopper.MaximumIterationStopper(4), 4),
])
def test_stop_conditions(ray, tmp_path, stop, expected):
    analysis = run_quiet(forever, tmp_path, stop=stop, num_samples=2)
    assert [t.last_result["training_iteration"] for t in analysis.trials] == [expected, expected]
    assert all(t.status == "TERMINATED" and t.last_result["done"] for t in analysis.trials)


def test_stop_on_a_field_never_reported(ray, tmp_path):
    with pytest.raises(ValueError, match="'mean_accuracy'.*loss"):
        run_quiet(forever, tmp_path, stop={"mean_accuracy": 0.9})


def test_stop_all_ends_the_experiment(ray, tmp_path):
    class StopAll(tune.Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return True

    analysis = run_quiet(forever, tmp_path, stop=StopAll(), num_samples=4)
    assert all(t.status == "TERMINATED" for t in analysis.trials)
    assert len(analysis.trials) == 2  # the two started first; the others never began


def reports_then_sleeps(config):
    tune.report(step=0)
    time.sleep(60)
    tune.report(step=1)


def test_time_budget_stops_trials_that_are_busy(ray, tmp_path):
    began = time.monotonic()
    analysis = run_quiet(reports_then_sleeps, tmp_path, num_samples=2, time_budget_s=1)
    assert time.monotonic() - began < 30  # did not wait for the 60 s sleeps
    assert [t.status for t in analysis.trials] == ["TERMINATED", "TERMINATED"]
    assert all(t.last_result.get("step") != 1 for t in analysis.trials)


class Counter(tune.Trainable):
    def setup(self, config):
        self.start = self.count = config.get("start", 0)
        self.marker = config.get("marker")

    def step(self):
        self.count += 1
        if self.marker and self.count == self.start + 3 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("crash at 3")
        return {"count": self.count}

    def save_checkpoint(self, checkpoint_dir):
        return {"count": self.count}

    def load_checkpoint(self, checkpoint):
        self.count = checkpoint["count"]


def test_class_trainable_checkpoints_and_resumes(ray, tmp_path):
    config = {"start": 10, "marker": str(tmp_path / "marker")}
    analysis = run_quiet(Counter, tmp_path, config=config, stop={"training_iteration": 5},
                         checkpoint_freq=1, max_failures=1)
    (trial,) = analysis.trials
    assert trial.status == "TERMINATED" and trial.num_failures == 1
    # resumed from the checkpoint of iteration 2, not from scratch
    assert trial.last_result["count"] == 15 and trial.last_result["training_iteration"] == 5
    lines = [json.loads(x)["count"] for x in read_lines(os.path.join(trial.logdir, "result.json"))]
    assert lines == [11, 12, 13, 14, 15]
    assert os.path.basename(trial.checkpoint) == "checkpoint_000005"
    assert tune.Checkpoint.from_directory(trial.checkpoint).to_dict() == {"count": 15}
    assert "crash at 3" in read(trial.error_file)


def test_class_trainable_without_step_fails_clearly(ray, tmp_path):
    class NoStep(tune.Trainable):
        pass

    analysis = run_quiet(NoStep, tmp_path, raise_on_failed_trial=False)
    assert "must define step()" in read(analysis.trials[0].error_file)


def with_data(config, data=None):
    tune.report(total=sum(data) + config["x"])


def test_with_parameters(ray, tmp_path):
    trainable = tune.with_parameters(with_data, data=list(range(100)))
    analysis = run_quiet(trainable, tmp_path, config={"x": tune.grid_search([0, 1])})
    assert sorted(t.last_result["total"] for t in analysis.trials) == [4950, 4951]
    assert str(analysis.trials[0]).startswith("with_data_")


def timed(config):
    start = time.time()
    time.sleep(0.05)
    tune.report(start=start, end=time.time())


def test_max_concurrent_trials_and_resources(ray, tmp_path):
    def no_overlap(analysis):
        spans = sorted((t.last_result["start"], t.last_result["end"]) for t in analysis.trials)
        return all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))

    assert no_overlap(run_quiet(timed, tmp_path, num_samples=3, max_concurrent_trials=1))
    pids = {t.last_result["pid"] for t in run_quiet(timed, tmp_path, num_samples=4).trials}
    assert len(pids) == 2  # 2 CPUs: two trial actors, each reused for the next trials
    assert no_overlap(run_quiet(tune.with_resources(timed, {"cpu": 2}), tmp_path, num_samples=2))
    pg = tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 1}])
    assert no_overlap(run_quiet(timed, tmp_path, num_samples=2, resources_per_trial=pg))
    with pytest.raises(ValueError, match="asks for 3 CPU"):
        run_quiet(timed, tmp_path, resources_per_trial={"cpu": 3})


def test_invalid_search_space_names_the_key(ray, tmp_path):
    with pytest.raises(ValueError, match="'lr'.*lower > 0"):
        run_quiet(timed, tmp_path, config={"lr": tune.loguniform(0, 1)})
    with pytest.raises(ValueError, match="'net/width'"):
        run_quiet(timed, tmp_path, config={"net": {"width": tune.randint(5, 1)}})
    assert not os.listdir(tmp_path)  # nothing ran


def test_unknown_argument_suggests_the_right_one(ray, tmp_path):
    with pytest.raises(TypeError, match="did you mean 'num_samples'"):
        tune.run(timed, num_sample=2)


def test_tuner_surface(ray, tmp_path):
    tuner = tune.Tuner(
        failing_on_two, param_space={"x": tune.grid_search([1, 2, 3])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=1,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(name="tuner", storage_path=str(tmp_path), verbose=0,
                                  stop={"training_iteration": 5}))
    grid = tuner.fit()
    assert len(grid) == 3 and grid.experiment_path == str(tmp_path / "tuner")
    assert grid.num_errors == 1 and "x=2 is not allowed" in str(grid.errors[0])
    best = grid.get_best_result()
    assert best.config == {"x": 1} and best.metrics["loss"] == pytest.approx(0.1)
    assert [r.config["x"] for r in grid] == [1, 2, 3]
    assert grid[0].path.startswith(str(tmp_path / "tuner"))
    assert list(grid[0].metrics_dataframe["loss"]) == [1, 0.1]
    frame = grid.get_dataframe()
    assert len(frame) == 3 and "config/x" in frame.columns
    assert grid.get_best_result("loss", "max").config == {"x": 2}  # its last result before failing


class Recorder(tune.Callback):
    def __init__(self):
        self.events = []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.events.append(("start", trial.trial_id))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.events.append(("result", trial.trial_id))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.events.append(("complete", trial.trial_id))

    def on_experiment_end(self, trials, **info):
        self.events.append(("end", len(trials)))


def test_callbacks_see_every_event_in_order(ray, tmp_path):
    recorder = Recorder()
    analysis = run_quiet(three_steps, tmp_path, config={"lr": tune.grid_search([1, 2])},
                         callbacks=[recorder])
    for trial in analysis.trials:
        mine = [kind for kind, tid in recorder.events if tid == trial.trial_id]
        assert mine == ["start", "result", "result", "result", "complete"]
    assert recorder.events[-1] == ("end", 2)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_table(ray, tmp_path, capsys):
    terminal = FakeTerminal()
    reporter = tune.CLIReporter(max_report_frequency=0, out=terminal)
    analysis = tune.run(three_steps, config={"lr": tune.grid_search([0.5, 0.25])},
                        storage_path=str(tmp_path), progress_reporter=reporter, verbose=1,
                        metric="loss", mode="min")
    text = terminal.getvalue()
    for trial in analysis.trials:
        assert str(trial) in text
    assert "TERMINATED" in text and re.search(r"\|\s+lr\s+\|", text) and "loss" in text
    assert "Number of trials: 2/2 (2 TERMINATED)" in text
    assert "Current best trial" in text
    assert "\x1b[" in text  # redrawn in place on a terminal

    run_quiet(three_steps, tmp_path, config={"lr": 1})
    assert capsys.readouterr().out == ""  # verbose=0 prints nothing
    tune.run(three_steps, config={"lr": 1}, storage_path=str(tmp_path), verbose=1)
    out = capsys.readouterr().out
    assert "== Status ==" in out and "\x1b[" not in out  # not a terminal: one final table


class Crash(Exception):
    pass


class CrashAfterTwo(tune.Callback):
    """Stands in for a driver that dies mid-experiment."""

    def __init__(self):
        self.completed = 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed += 1
        if self.completed == 2:
            raise Crash("the driver died")


def count_runs(config):
    with open(os.path.join(config["dir"], f"ran_{config['x']}"), "a") as f:
        f.write("x")
    tune.report(loss=abs(config["x"] - 3))


@pytest.mark.parametrize("api", ["run", "Tuner.restore"])
def test_resume_after_a_crash(ray, tmp_path, api):
    space = {"x": tune.grid_search([0, 1, 2, 3, 4, 5]), "dir": str(tmp_path)}
    with pytest.raises(Crash):
        run_quiet(count_runs, tmp_path, name="crashy", config=space, max_concurrent_trials=1,
                  callbacks=[CrashAfterTwo()])
    assert tune.Tuner.can_restore(tmp_path / "crashy")
    if api == "run":
        analysis = run_quiet(count_runs, tmp_path, name="crashy", config=space, resume=True,
                             metric="loss", mode="min")
        trials = analysis.trials
        best = analysis.best_config["x"]
    else:
        grid = tune.Tuner.restore(str(tmp_path / "crashy"), trainable=count_runs).fit()
        trials = [r for r in grid]
        best = grid.get_best_result("loss", "min").config["x"]
    assert len(trials) == 6 and best == 3
    ran = sorted(name for name in os.listdir(tmp_path) if name.startswith("ran_"))
    assert ran == [f"ran_{x}" for x in range(6)]
    assert [read(tmp_path / name) for name in ran[:2]] == ["x", "x"]  # not run again
    with pytest.raises(ValueError, match="nothing to resume"):
        run_quiet(count_runs, tmp_path, name="never_ran", config=space, resume=True)


@pytest.mark.parametrize("score_attr, kept", [(None, [4, 5]), ("min-count", [1, 5])])
def test_keep_checkpoints_num(ray, tmp_path, score_attr, kept):
    analysis = run_quiet(Counter, tmp_path, stop={"training_iteration": 5}, checkpoint_freq=1,
                         keep_checkpoints_num=2, checkpoint_score_attr=score_attr)
    (trial,) = analysis.trials
    names = sorted(n for n in os.listdir(trial.logdir) if n.startswith("checkpoint_"))
    assert names == [f"checkpoint_{i:06d}" for i in kept]
    assert os.path.basename(trial.checkpoint) == "checkpoint_000005"
    with pytest.raises(ValueError, match="keep_checkpoints_num"):
        run_quiet(Counter, tmp_path, keep_checkpoints_num=0)


def reads_the_registry(config):
    from raylite import _registry
    creator = _registry.env_creator("tune_test_env")
    tune.report(env_value=creator({"n": config["n"]}) if creator else None)


def test_registered_trainables_and_envs_reach_the_trials(ray, tmp_path):
    tune.register_env("tune_test_env", lambda env_config: env_config["n"] * 10)
    tune.register_trainable("registry_reader", reads_the_registry)
    analysis = run_quiet("registry_reader", tmp_path, config={"n": tune.grid_search([1, 2])})
    assert sorted(t.last_result["env_value"] for t in analysis.trials) == [10, 20]
    assert all(str(t).startswith("registry_reader_") for t in analysis.trials)
    with pytest.raises(ValueError, match="unknown trainable 'registry_readr'.*did you mean "
                                         "'registry_reader'"):
        run_quiet("registry_readr", tmp_path)


def test_ppo_by_name_with_a_registered_env(ray, tmp_path):
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("torch")
    tune.register_env("tune_short_cartpole",
                      lambda cfg: gym.make("CartPole-v1", max_episode_steps=cfg["steps"]))
    config = {"env": "tune_short_cartpole", "env_config": {"steps": 20}, "num_workers": 0,
              "train_batch_size": 100, "sgd_minibatch_size": 50, "num_sgd_iter": 1,
              "rollout_fragment_length": 100, "model": {"fcnet_hiddens": [8]}}
    analysis = run_quiet("PPO", tmp_path, config=config, stop={"training_iteration": 1})
    (trial,) = analysis.trials
    assert trial.status == "TERMINATED" and str(trial).startswith("PPO_")
    assert trial.last_result["episode_len_mean"] <= 20  # the env registered in this process


def test_placement_group_factory_through_with_resources(ray, tmp_path):
    pg = tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 1}])
    analysis = run_quiet(tune.with_resources(timed, pg), tmp_path, num_samples=2)
    spans = sorted((t.last_result["start"], t.last_result["end"]) for t in analysis.trials)
    assert spans[0][1] <= spans[1][0]  # 2 CPUs each on a 2-CPU node: one at a time
    assert analysis.trials[0].resources == {"CPU": 2, "GPU": 0}
    with pytest.raises(ValueError, match="asks for 3 CPU"):
        run_quiet(tune.with_resources(timed, tune.PlacementGroupFactory([{"CPU": 3}])), tmp_path)


class Resettable(tune.Trainable):
    builds = 0

    def setup(self, config):
        Resettable.builds += 1
        self.builds_here, self.resets = Resettable.builds, 0

    def reset_config(self, new_config):
        self.resets += 1
        return True

    def step(self):
        return {"x": self.config["x"], "builds": self.builds_here, "resets": self.resets,
                "done": True}


def test_reset_config_reuses_class_instances(ray, tmp_path):
    analysis = run_quiet(Resettable, tmp_path, config={"x": tune.grid_search([1, 2, 3])},
                         max_concurrent_trials=1)
    results = [t.last_result for t in analysis.trials]
    assert [r["x"] for r in results] == [1, 2, 3]
    assert [r["resets"] for r in results] == [0, 1, 2]  # one instance, reset twice
    assert len({(r["pid"], r["builds"]) for r in results}) == 1


def test_tuner_checkpoint_config_keeps_the_best(ray, tmp_path):
    tuner = tune.Tuner(Counter, param_space={"start": 0}, run_config=tune.RunConfig(
        storage_path=str(tmp_path), verbose=0, stop={"training_iteration": 4},
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_frequency=1,
                                                checkpoint_score_attribute="count",
                                                checkpoint_score_order="min")))
    (result,) = tuner.fit()
    names = sorted(n for n in os.listdir(result.path) if n.startswith("checkpoint_"))
    assert names == ["checkpoint_000001", "checkpoint_000004"]  # the best (lowest) and the latest
    assert result.checkpoint.to_dict() == {"count": 4}
