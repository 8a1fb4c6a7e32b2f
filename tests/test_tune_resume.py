"""Resuming an experiment whose driver was killed with SIGKILL: nothing finished is run again,
nothing reported is lost, the trial that was running goes on from its checkpoint.

The driver is a real subprocess. The test waits on events (a trial's result.json reaching a
number of lines), never on a fixed sleep; the trial that is running when the driver dies is
held at a known step by a file the test creates only before resuming.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from raylite import tune

DRIVER = r'''
import json, os, sys, time
import raylite
from raylite import tune

root, release, snapshot_every = sys.argv[1], sys.argv[2], float(sys.argv[3])
import raylite.tune._runner
raylite.tune._runner.STATE_SAVE_INTERVAL_S = snapshot_every

def train(config, checkpoint_dir=None):
    start = 0
    if checkpoint_dir:
        with open(os.path.join(checkpoint_dir, "step")) as f:
            start = int(f.read()) + 1
    with open(os.path.join(root, f"starts_{config['x']}"), "a") as f:
        f.write(f"{start}\n")
    for step in range(start, 6):
        if config["x"] == 3 and step == 3:
            while not os.path.exists(release):   # held here until the test resumes
                time.sleep(0.01)
        with tune.checkpoint_dir(step=step) as directory:
            with open(os.path.join(directory, "step"), "w") as f:
                f.write(str(step))
        tune.report(step=step, loss=abs(config["x"] - 2) + 1.0 / (step + 1))

raylite.init(num_cpus=2)
analysis = tune.run(train, name="killed", storage_path=root, resume="AUTO", verbose=0,
                    config={"x": tune.grid_search([0, 1, 2, 3, 4, 5])}, max_concurrent_trials=2,
                    metric="loss", mode="min")
print(json.dumps({"statuses": [t.status for t in analysis.trials],
                  "best": analysis.best_config["x"]}))
'''

EVENT_TIMEOUT_S = 60


def wait_for(condition, what, process=None):
    """Poll ``condition`` until it holds; fail naming ``what`` after EVENT_TIMEOUT_S."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the driver exited ({process.returncode}) before {what}:\n"
                        f"{process.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def result_lines(experiment, x):
    for name in os.listdir(experiment):
        path = os.path.join(experiment, name, "result.json")
        if f"x={x}" in name and os.path.exists(path):
            with open(path) as f:
                return [json.loads(line) for line in f if line.strip()]
    return []


@pytest.mark.parametrize("snapshot_every", [5.0, 0.0], ids=["journal", "snapshot_each_step"])
def test_resume_after_the_driver_is_killed(tmp_path, snapshot_every):
    """With the default snapshot interval the journal carries nearly everything; with a
    snapshot at every loop step, the kill also lands between snapshots and journal resets."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    release = tmp_path / "release"
    experiment = tmp_path / "killed"
    command = [sys.executable, str(script), str(tmp_path), str(release), str(snapshot_every)]
    env = dict(os.environ, PYTHONPATH=os.getcwd())

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    try:
        # x=3 starts only once two trials have ended (2 at a time); it is held at step 3
        wait_for(lambda: experiment.exists() and len(result_lines(experiment, 3)) >= 3,
                 "trial x=3 to report 3 results", first)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        first.stdout.close()
        first.stderr.close()
    assert first.returncode == -signal.SIGKILL

    before = tune.ExperimentAnalysis(str(experiment))
    ended_before = {t.config["x"] for t in before.trials if t.status == "TERMINATED"}
    assert len(ended_before) >= 2, [t.status for t in before.trials]
    assert 3 not in ended_before

    release.touch()
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["statuses"] == ["TERMINATED"] * 6 and summary["best"] == 2

    for x in range(6):
        starts = (tmp_path / f"starts_{x}").read_text().split()
        if x in ended_before:
            assert starts == ["0"], f"trial x={x} ended before the kill but ran again: {starts}"
        steps = sorted({line["step"] for line in result_lines(experiment, x)})
        assert steps == list(range(6)), f"trial x={x} lost results: {steps}"
    starts = (tmp_path / "starts_3").read_text().split()
    assert starts[0] == "0" and len(starts) == 2 and int(starts[1]) >= 2  # from its checkpoint

    after = tune.ExperimentAnalysis(str(experiment))
    assert {t.trial_id for t in before.trials} <= {t.trial_id for t in after.trials}
    assert {t.status for t in after.trials} == {"TERMINATED"} and len(after.trials) == 6
