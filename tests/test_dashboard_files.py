"""Reading Tune's files back for the dashboard, without a runtime: results that are still being
written, trial status, and experiment names that try to leave the results folder."""

from __future__ import annotations

import json
import os

from raylite.dashboard import _tune_files
from raylite.dashboard._tune_files import TuneFiles


def write_trial(experiment, dirname, rows, params=None, partial=""):
    path = experiment / dirname
    path.mkdir(parents=True, exist_ok=True)
    (path / "params.json").write_text(json.dumps(params or {"lr": 0.1}))
    with open(path / "result.json", "a") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
        f.write(partial)
    return path


def test_results_are_read_as_they_are_appended(tmp_path):
    files = TuneFiles(str(tmp_path))
    experiment = tmp_path / "exp"
    trial = write_trial(experiment, "train_ab12c_00000_0_lr=0.1", [
        {"training_iteration": 1, "loss": 1.0, "config": {"lr": 0.1}, "note": "text"}],
        partial='{"training_iteration": 2, "lo')
    rows = files.rows(str(trial / "result.json"))
    assert rows == [{"training_iteration": 1, "loss": 1.0}]  # numbers only; no half line
    with open(trial / "result.json", "a") as f:
        f.write('ss": 0.5, "nested": {"kl": 0.01}, "bad": NaN}\n')
    rows = files.rows(str(trial / "result.json"))
    assert rows[-1] == {"training_iteration": 2, "loss": 0.5, "nested/kl": 0.01}
    summary = files.summary(str(experiment))
    assert summary["metric"] == "loss" and summary["metrics"] == ["loss", "nested/kl"]
    [row] = summary["trials"]
    assert row["status"] == "RUNNING" and row["iterations"] == 2 and row["params"] == {"lr": 0.1}
    assert row["trial"] == "train_ab12c_00000"
    series = files.series(str(experiment), "nested/kl")
    assert series["lines"][0]["points"] == [[2, 0.01]]


def test_rewritten_file_is_read_from_the_start(tmp_path):
    files = TuneFiles(str(tmp_path))
    trial = write_trial(tmp_path / "exp", "t_00000", [{"training_iteration": i, "loss": i}
                                                      for i in range(1, 4)])
    assert len(files.rows(str(trial / "result.json"))) == 3
    os.remove(trial / "result.json")
    write_trial(tmp_path / "exp", "t_00000", [{"training_iteration": 1, "loss": 9}])
    assert files.rows(str(trial / "result.json")) == [{"training_iteration": 1, "loss": 9}]


def test_long_runs_are_thinned_not_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(_tune_files, "MAX_ROWS", 100)
    files = TuneFiles(str(tmp_path))
    trial = write_trial(tmp_path / "exp", "t_00000", [{"training_iteration": i, "r": i}
                                                      for i in range(1, 1001)])
    rows = files.rows(str(trial / "result.json"))
    assert 50 <= len(rows) <= 100
    assert rows[0]["training_iteration"] == 1 and rows[-1]["training_iteration"] > 900


def test_status_from_the_state_file_done_flag_and_errors(tmp_path):
    files = TuneFiles(str(tmp_path))
    experiment = tmp_path / "exp"
    done = write_trial(experiment, "f_00000", [{"training_iteration": 1, "score": 1, "done": True}])
    failed = write_trial(experiment, "f_00001", [{"training_iteration": 1, "score": 2}])
    (failed / "error.txt").write_text("Traceback ...\nValueError: diverged\n")
    state = {"metric": "score", "mode": "max", "trials": [
        {"trial_id": "00000", "trainable_name": "f", "status": "RUNNING", "logdir": str(done)},
        {"trial_id": "00002", "trainable_name": "f", "status": "PENDING",
         "logdir": str(experiment / "f_00002"), "config": {"lr": 3}}]}
    (experiment / "experiment_state.json").write_text(json.dumps(state))
    summary = files.summary(str(experiment))
    status = {t["trial"]: t["status"] for t in summary["trials"]}
    assert status == {"f_00000": "TERMINATED", "f_00001": "ERROR", "f_00002": "PENDING"}
    assert "diverged" in next(t for t in summary["trials"] if t["trial"] == "f_00001")["error"]
    assert summary["status_counts"] == {"TERMINATED": 1, "ERROR": 1, "PENDING": 1}
    assert summary["mode"] == "max" and not summary["is_rllib"]


def test_experiment_names_cannot_leave_the_results_folder(tmp_path):
    root = tmp_path / "results"
    (root / "exp").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    files = TuneFiles(str(root))
    assert files.experiment_path("exp") == os.path.realpath(root / "exp")
    for name in ("..", ".", "", "../outside", "exp/..", "/etc", "link", "missing", "a\x00b"):
        assert files.experiment_path(name) is None, name


def test_rllib_runs_are_recognised_by_their_reward(tmp_path):
    files = TuneFiles(str(tmp_path))
    write_trial(tmp_path / "PPO", "PPO_CartPole_00000", [
        {"training_iteration": i, "episode_reward_mean": 10.0 * i} for i in range(1, 4)])
    summary = files.summary(str(tmp_path / "PPO"))
    assert summary["is_rllib"] and summary["metric"] == "episode_reward_mean"
    assert files.experiment_dirs() == [str(tmp_path / "PPO")]
