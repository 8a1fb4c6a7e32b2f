"""The `tune ls` / `tune lsx` commands over an experiment written by tune.run."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def experiment(ray, tmp_path_factory):
    from raylite import tune
    root = tmp_path_factory.mktemp("results")

    def trainable(config):
        for step in range(3):
            tune.report(loss=(config["x"] - 2) ** 2 + step, step=step)

    tune.run(trainable, config={"x": tune.grid_search([0, 1, 2, 3])}, metric="loss", mode="min",
             local_dir=str(root), name="exp", verbose=0)
    return root


def _tune(*args):
    return subprocess.run([sys.executable, "-m", "raylite.cli._tune", *args],
                          capture_output=True, text=True, timeout=60)


def test_ls_table_sort_and_filter(experiment):
    out = _tune("ls", str(experiment / "exp"), "--sort", "loss")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "CONFIG/X" in lines[0] and "LOSS" in lines[0] and "4 trials" in out.stdout
    assert lines[1].split()[2] == "2"  # config/x of the best (lowest loss) trial comes first
    out = _tune("ls", str(experiment / "exp"), "--filter", "loss <= 3")  # last loss: (x-2)^2 + 2
    assert "3 trials" in out.stdout


def test_ls_csv_and_lsx(experiment):
    out = _tune("ls", str(experiment / "exp"), "--output", "csv")
    header, *rows = out.stdout.strip().splitlines()
    assert "config/x" in header and len(rows) == 4
    out = _tune("lsx", str(experiment))
    assert out.returncode == 0 and "exp" in out.stdout and "4 TERMINATED" in out.stdout


def test_bad_input(experiment, tmp_path):
    out = _tune("ls", str(tmp_path))
    assert out.returncode == 2 and "no experiment" in out.stderr
    out = _tune("ls", str(experiment / "exp"), "--filter", "loss ~ 3")
    assert out.returncode == 2 and "loss < 0.5" in out.stderr


@pytest.fixture(scope="module")
def wide_experiment(ray, tmp_path_factory):
    """Many config keys and metrics: the full table is far wider than a terminal."""
    from raylite import tune
    root = tmp_path_factory.mktemp("wide")

    def trainable(config):
        tune.report(mean_accuracy=0.5 + config["x"] / 10, validation_loss_of_the_model=1.0,
                    throughput_samples_per_second=1234.5678, note="a" * 60)

    config = {"x": tune.grid_search([0, 1, 2])}
    config.update({f"hyperparameter_number_{i}": tune.uniform(0, 1) for i in range(6)})
    tune.run(trainable, config=config, local_dir=str(root), name="wide", verbose=0)
    return root


def _tune_env(*args, columns: int):
    import os
    env = dict(os.environ, COLUMNS=str(columns))
    return subprocess.run([sys.executable, "-m", "raylite.cli._tune", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_ls_fits_the_terminal_and_names_what_it_left_out(wide_experiment):
    out = _tune_env("ls", str(wide_experiment / "wide"), columns=80)
    assert out.returncode == 0, out.stderr
    table, _, notes = out.stdout.partition("\n\n")
    assert all(len(line) <= 80 for line in table.splitlines()), table
    header = table.splitlines()[0]
    assert header.startswith("TRIAL_ID") and "STATUS" in header and "CONFIG/X" in header
    assert "3 trials" in notes and "did not fit the terminal" in notes
    assert "training_iteration" in notes and "--columns" in notes
    wide = _tune_env("ls", str(wide_experiment / "wide"), columns=500)
    header = wide.stdout.splitlines()[0]
    assert "MEAN_ACCURACY" in header and "did not fit" not in wide.stdout
    assert header.index("MEAN_ACCURACY") < header.index("TRAINING_ITERATION")  # own metrics first
    assert "a" * 60 not in wide.stdout and "a" * 23 + "…" in wide.stdout  # long cells cut


def test_ls_columns_and_limit(wide_experiment):
    out = _tune_env("ls", str(wide_experiment / "wide"), "--columns", "config/x,mean_accuracy",
                    "--sort", "mean_accuracy", "--desc", "--limit", "2", columns=80)
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["CONFIG/X", "MEAN_ACCURACY"] and lines[1].split()[0] == "2"
    assert "2 trials" in out.stdout
    out = _tune_env("ls", str(wide_experiment / "wide"), "--columns", "mean_acuracy", columns=80)
    assert out.returncode == 2 and "did you mean 'mean_accuracy'" in out.stderr


def test_ls_of_a_folder_of_experiments_points_to_lsx(wide_experiment):
    out = _tune("ls", str(wide_experiment))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert f"tune lsx {wide_experiment}" in out.stderr and "folder of 1 experiments" in out.stderr


def test_rerunning_an_existing_experiment_name_says_so(ray, tmp_path, capfd):
    from raylite import tune

    def trainable(config):
        tune.report(score=1)

    tune.run(trainable, local_dir=str(tmp_path), name="again", verbose=0)
    assert "already exists" not in capfd.readouterr().err
    tune.run(trainable, local_dir=str(tmp_path), name="again", verbose=0)
    err = capfd.readouterr().err
    assert "experiment 'again' already exists" in err and "resume=True" in err
    tune.run(trainable, local_dir=str(tmp_path), name="again", verbose=0, resume=True)
    assert "already exists" not in capfd.readouterr().err
