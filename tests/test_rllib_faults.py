"""``rllib`` under faults, as real processes: Ctrl-C during ``rllib train`` saves a final
checkpoint and says where; a truncated or corrupt checkpoint is one line naming the file."""

import os
import re
import signal
import subprocess
import sys

import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")      # raylite[torch]: the default framework

from raylite.cli._rllib import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# iterations of a few seconds, so that the Ctrl-C lands in the middle of one
LONG_ITERATIONS = ('{"min_sample_timesteps_per_iteration": 2000, "num_workers": 1, '
                   '"model": {"fcnet_hiddens": [16]}, "hiddens": [16]}')


def test_ctrl_c_during_rllib_train_saves_a_final_checkpoint_and_prints_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "-m", "raylite.cli._rllib", "train", "--algo", "DQN", "--env",
         "CartPole-v1", "--config", LONG_ITERATIONS, "--local-dir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    lines = []
    try:
        for line in process.stdout:  # no --checkpoint-freq: nothing saved so far
            lines.append(line)
            if " iter    1 " in line:
                # as a terminal's Ctrl-C does: SIGINT to the whole process group
                os.killpg(process.pid, signal.SIGINT)
                break
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    out = "".join(lines) + rest
    assert process.returncode == 0, out
    assert "rllib: interrupted: stopping after the running iteration and saving" in out
    assert "(interrupted)" in out and "Traceback" not in out
    last = re.search(r"Last checkpoint: (\S+)", out).group(1)
    assert os.path.isfile(last) and last.startswith(str(tmp_path))
    assert f"rllib rollout {last} --run DQN --env CartPole-v1" in out
    assert main(["evaluate", last, "--algo", "DQN", "--episodes", "1", "--no-render"]) == 0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from raylite.rllib.algorithms.ppo import PPO
    algo = PPO(env="CartPole-v1", config={"num_workers": 0, "train_batch_size": 64,
                                          "sgd_minibatch_size": 32, "num_sgd_iter": 1,
                                          "model": {"fcnet_hiddens": [8]}})
    algo.train()
    path = algo.save(str(tmp_path_factory.mktemp("good")))
    algo.stop()
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(checkpoint, tmp_path, damage, capsys):
    with open(checkpoint, "rb") as f:
        data = f.read()
    bad = tmp_path / "checkpoint_000001" / "checkpoint-1"
    bad.parent.mkdir()
    bad.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"\x80\x05not a pickle",
                     "empty": b""}[damage])
    for command in ("rollout", "evaluate"):
        assert main([command, str(bad.parent), "--run", "PPO", "--steps", "5",
                     "--no-render"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert str(bad) in err and "truncated or corrupt" in err
    from raylite.rllib.algorithms.algorithm import Algorithm
    from raylite.rllib._checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match=re.escape(str(bad)) + ".*truncated or corrupt") as info:
        Algorithm.from_checkpoint(str(bad))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_good_checkpoint_still_loads_through_the_base_class(checkpoint):
    from raylite.rllib.algorithms.algorithm import Algorithm
    algo = Algorithm.from_checkpoint(checkpoint)
    assert type(algo).__name__ == "PPO" and algo.iteration == 1
    algo.stop()
