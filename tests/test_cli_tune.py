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
