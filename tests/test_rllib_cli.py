"""The ``rllib`` command end to end: train (flags and YAML files) through Tune, rollout and
evaluate of the checkpoint it printed, the example files, and the errors for bad input."""

import glob
import os
import pickle
import re
import shlex
import subprocess
import sys

import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")      # raylite[torch]: the default framework
yaml = pytest.importorskip("yaml")

from raylite.cli._rllib import main
from raylite.rllib.examples import example_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ('{"num_workers": 1, "train_batch_size": 200, "sgd_minibatch_size": 100, '
        '"num_sgd_iter": 1, "rollout_fragment_length": 100, "model": {"fcnet_hiddens": [16]}}')


def run_cli(*args):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "raylite.cli._rllib", *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          timeout=300)


def test_train_with_flags_then_rollout_the_printed_command(ray, tmp_path, capsys):
    status = main(["train", "--run", "PPO", "--env", "CartPole-v1", "--stop",
                   '{"training_iteration": 2}', "--config", TINY, "--checkpoint-freq", "1",
                   "--local-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    progress = [line for line in out.splitlines() if " iter " in line]
    assert len(progress) == 2 and "PPO_CartPole-v1_" in progress[0] and "reward" in progress[0]
    [trial_dir] = glob.glob(str(tmp_path / "default" / "PPO_CartPole-v1_*"))
    assert sorted(os.listdir(trial_dir)) >= ["checkpoint_000001", "checkpoint_000002"]
    last = out.split("Last checkpoint: ")[1].split()[0]
    assert last == os.path.join(trial_dir, "checkpoint_000002", "checkpoint-2")
    command = out.strip().splitlines()[-1].strip()
    assert command == f"rllib rollout {last} --run PPO --env CartPole-v1 --steps 2000"
    assert f"  rllib evaluate {last} --algo PPO --env CartPole-v1 --steps 2000\n" in out

    argv = shlex.split(command)[1:]
    argv[argv.index("2000")] = "30"
    out_file = tmp_path / "rollout.pkl"
    assert main(argv + ["--no-render", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Episode #1: reward: \d+\.\d+", out)
    with open(out_file, "rb") as f:
        episodes = pickle.load(f)
    assert sum(len(e) for e in episodes) == 30 and len(episodes[0][0]) == 5

    assert main(["evaluate", trial_dir, "--algo", "PPO", "--episodes", "2", "--no-render"]) == 0
    out = capsys.readouterr().out
    assert "on CartPole-v1" in out and "Mean reward over 2 episode(s)" in out


def test_yaml_file_with_tf_legacy_env_and_an_unreachable_stop(tmp_path):
    """As a user runs it: ``python -m raylite.cli._rllib train -f FILE`` then ``rollout``,
    rendering through pygame's dummy video driver."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("pygame")
    experiment = {"pendulum-ppo": {
        "env": "Pendulum-v0", "run": "PPO", "checkpoint_freq": 5,
        "stop": {"episode_reward_mean": 800, "training_iteration": 1},
        "config": {**yaml.safe_load(TINY), "num_workers": 0, "lambda": 0.1, "gamma": 0.95}}}
    path = tmp_path / "pendulum.yml"
    path.write_text(yaml.safe_dump(experiment))
    done = run_cli("train", "-f", str(path), "--framework", "tf", "--local-dir", str(tmp_path))
    out = done.stdout  # stdout and stderr, in order
    assert done.returncode == 0, out
    assert "Pendulum-v0 is not in Gymnasium" in out and "using Pendulum-v1" in out
    warning = [line for line in out.splitlines() if "can never be reached" in line]
    assert len(warning) == 1 and "[-3254.7, 0]" in warning[0] and "-800" in warning[0]
    assert out.index("can never be reached") < out.index(" iter    1 ")  # before training
    assert "checkpoint_000001/checkpoint-1" in out  # checkpoint at the end
    checkpoint = out.split("Last checkpoint: ")[1].split()[0]
    assert "/pendulum-ppo/PPO_Pendulum-v1_" in checkpoint

    rollout = run_cli("rollout", checkpoint, "--run", "PPO", "--env", "Pendulum-v1",
                      "--steps", "5")
    assert rollout.returncode == 0, rollout.stdout
    assert "without rendering" not in rollout.stdout
    assert "Episode #1: reward:" in rollout.stdout and "unfinished" in rollout.stdout


@pytest.mark.parametrize("argv, message", [
    (["train", "--run", "PPO", "--env", "Pendulumv0"],
     "unknown environment 'Pendulumv0'; did you mean Pendulum-v0 / Pendulum-v1?"),
    (["train", "--run", "PPO", "--env", "CartPole-v1", "--config", '{"lamda": 0.9}'],
     "unknown config key 'lamda'; did you mean 'lambda'"),
    (["train", "--run", "PP0", "--env", "CartPole-v1"], "unknown algorithm 'PP0'; did you mean 'PPO'?"),
    (["train", "--run", "PPO", "--env", "CartPole-v1", "--stop", '{"episode_reward_man": 1}'],
     "unknown stop criterion 'episode_reward_man'; did you mean 'episode_reward_mean'"),
    (["train", "--run", "PPO"], "needs -f FILE.yml, or --run ALGO and --env ENV"),
    (["rollout", "/no/such/checkpoint", "--run", "PPO"], "no checkpoint at /no/such/checkpoint"),
    (["example", "get", "pendulum-pp"], "unknown example 'pendulum-pp'; did you mean 'pendulum-ppo'"),
])
def test_bad_input_is_one_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_yaml_experiment_keys_are_checked(tmp_path, capsys):
    path = tmp_path / "bad.yml"
    path.write_text("exp:\n  run: PPO\n  env: CartPole-v1\n  chekpoint_freq: 5\n")
    assert main(["train", "-f", str(path)]) == 2
    assert "unknown key 'chekpoint_freq'; did you mean 'checkpoint_freq'" in capsys.readouterr().err


def test_examples_are_listed_served_and_valid(capsys):
    from raylite.rllib import ALGORITHMS, AlgorithmConfig, resolve_env
    from raylite.rllib._envs import check_stop_criteria
    assert main(["example", "list"]) == 0
    listed = capsys.readouterr().out
    assert {"pendulum", "pendulum-ppo", "cartpole-ppo", "cartpole-dqn",
            "pendulum-sac"} <= set(example_files())
    for name, path in example_files().items():
        assert name in listed
        assert main(["example", "get", name]) == 0
        text = capsys.readouterr().out
        with open(os.path.join(REPO, "configs", os.path.basename(path))) as f:
            assert f.read() == text  # configs/ holds the same files
        [(_, spec)] = yaml.safe_load(text).items()
        config = AlgorithmConfig.from_dict({**spec["config"], "env": spec["env"]}, spec["run"])
        assert spec["run"] in ALGORITHMS and config.env == spec["env"]
        assert check_stop_criteria(spec["stop"], resolve_env(spec["env"])) == []


def test_example_run_trains_like_train_f(ray, tmp_path, capsys):
    assert main(["example", "run", "cartpole-ppo", "--stop", '{"training_iteration": 1}',
                 "--config", TINY, "--local-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== cartpole-ppo: PPO on CartPole-v1" in out and "reached training_iteration >= 1" in out
    assert glob.glob(str(tmp_path / "cartpole-ppo" / "PPO_CartPole-v1_*" / "checkpoint_000001"))


def test_the_books_pendulum_yml():
    with open(os.path.join(REPO, "configs", "pendulum.yml")) as f:
        [(name, spec)] = yaml.safe_load(f).items()
    assert name == "pendulum-ppo"
    assert spec == {"env": "Pendulum-v0", "run": "PPO", "checkpoint_freq": 5,
                    "stop": {"episode_reward_mean": -800},
                    "config": {"lambda": 0.1, "gamma": 0.95, "lr": 0.0003, "num_sgd_iter": 6}}
