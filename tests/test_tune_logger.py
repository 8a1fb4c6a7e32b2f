"""ray.tune.logger (pretty_print, Ray 1.x Logger classes, tune.run(loggers=...)) and the
results directory: ~/ray_results unless RAYLITE_RESULTS_DIR or storage_path say otherwise."""

from __future__ import annotations

import csv
import json
import os

import pytest

from raylite import tune
from raylite.tune.logger import (CSVLogger, JsonLogger, LegacyLoggerCallback, Logger, TBXLogger,
                                 UnifiedLogger, pretty_print)

yaml = pytest.importorskip("yaml")
np = pytest.importorskip("numpy")


def test_pretty_print_is_yaml_without_config():
    result = {"episode_reward_mean": np.float32(1.5), "training_iteration": 3, "done": False,
              "info": {"learner": {"default_policy": {"lr": 5e-5, "name": "a: b"}}},
              "config": {"lr": 0.1}, "hist_stats": {"x": [1, 2]}, "custom": [1, {"k": None}],
              "nan": float("nan"), "skip_me": 1, "missing": None}
    text = pretty_print(result, exclude=["skip_me"])
    parsed = yaml.safe_load(text)
    assert parsed["episode_reward_mean"] == 1.5 and parsed["training_iteration"] == 3
    assert parsed["info"]["learner"]["default_policy"] == {"lr": 5e-5, "name": "a: b"}
    assert parsed["custom"] == [1, {"k": None}] and parsed["done"] is False
    assert np.isnan(parsed["nan"])
    assert not {"config", "hist_stats", "skip_me", "missing"} & set(parsed)
    assert text.splitlines()[0] == "custom:"  # keys sorted, as Ray prints them
    assert tune.logger.pretty_print is pretty_print
    with pytest.raises(TypeError, match="result dict"):
        pretty_print([1])


def test_legacy_loggers_write_the_trial_files(tmp_path):
    logger = UnifiedLogger({"lr": 0.1}, str(tmp_path))
    for i in range(3):
        logger.on_result({"training_iteration": i + 1, "score": i * 2.0, "info": {"a": i}})
    logger.close()
    lines = (tmp_path / "result.json").read_text().splitlines()
    assert [json.loads(line)["score"] for line in lines] == [0.0, 2.0, 4.0]
    assert json.loads((tmp_path / "params.json").read_text()) == {"lr": 0.1}
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["info/a"] for row in rows] == ["0", "1", "2"]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
    with pytest.raises(TypeError, match="Logger subclasses"):
        LegacyLoggerCallback([tune.CSVLoggerCallback])


class ScoreLines(Logger):
    def on_result(self, result):
        with open(os.path.join(self.logdir, "scores.txt"), "a") as f:
            f.write(f"{result['score']}\n")


def scored(config):
    for step in range(2):
        tune.report(score=config["x"] + step)


def test_tune_run_with_ray_1x_loggers(ray, tmp_path):
    analysis = tune.run(scored, config={"x": tune.grid_search([1, 2])}, verbose=0,
                        storage_path=str(tmp_path), name="legacy",
                        loggers=[CSVLogger, ScoreLines])
    for trial in analysis.trials:
        files = os.listdir(trial.logdir)
        assert "progress.csv" in files and "result.json" not in files  # only the given loggers
        scores = (open(os.path.join(trial.logdir, "scores.txt")).read().split())
        assert scores == [str(trial.config["x"]), str(trial.config["x"] + 1)]
    with pytest.raises(TypeError, match="did you mean 'loggers'"):
        tune.run(scored, config={"x": 1}, verbose=0, storage_path=str(tmp_path), logers=[])
    assert JsonLogger and TBXLogger  # the other Ray 1.x names import


def test_results_go_to_ray_results_by_default(ray, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAYLITE_RESULTS_DIR", raising=False)
    analysis = tune.run(scored, config={"x": 1}, verbose=0, name="book")
    assert analysis.trials[0].logdir.startswith(str(tmp_path / "ray_results" / "book") + os.sep)
    from raylite.rllib._algorithm import results_root
    assert results_root() == str(tmp_path / "ray_results")

    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path / "elsewhere"))
    analysis = tune.run(scored, config={"x": 1}, verbose=0, name="env")
    assert os.path.isdir(tmp_path / "elsewhere" / "env")
    analysis = tune.run(scored, config={"x": 1}, verbose=0, name="arg",
                        storage_path=f"file://{tmp_path}/given")
    assert os.path.isdir(tmp_path / "given" / "arg")
