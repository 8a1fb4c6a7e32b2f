"""The ``rllib`` command's forms for today's Ray: ``train file FILE`` (YAML or a .py config),
``--algo``, DQN and SAC through train / evaluate, and the example list."""

import os
import re

import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

from raylite.cli._rllib import main

DQN_TINY = ('{"min_sample_timesteps_per_iteration": 64, "model": {"fcnet_hiddens": [8]}, '
            '"hiddens": [8], "num_steps_sampled_before_learning_starts": 32}')


def test_train_dqn_with_algo_flag_then_evaluate(ray, tmp_path, capsys):
    assert main(["train", "--algo", "DQN", "--env", "CartPole-v1", "--config", DQN_TINY,
                 "--stop", '{"training_iteration": 2}', "--local-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== default: DQN on CartPole-v1" in out and "reached training_iteration >= 2" in out
    last = re.search(r"Last checkpoint: (\S+)", out).group(1)
    assert main(["evaluate", last, "--algo", "DQN", "--episodes", "2", "--no-render"]) == 0
    out = capsys.readouterr().out
    assert "Rolling out DQN" in out and "Mean reward over 2 episode(s)" in out
    assert main(["evaluate", last, "--algo", "PPO", "--episodes", "1", "--no-render"]) == 2
    assert "written by DQN, not PPO" in capsys.readouterr().err


def test_train_file_with_a_python_config(ray, tmp_path, capsys):
    path = tmp_path / "my_sac.py"
    path.write_text(
        "from raylite.rllib.algorithms.sac import SACConfig\n"
        "config = (SACConfig().environment('Pendulum-v1')\n"
        "          .training(train_batch_size=16, num_steps_sampled_before_learning_starts=16,\n"
        "                    q_model_config={'fcnet_hiddens': [8]},\n"
        "                    policy_model_config={'fcnet_hiddens': [8]})\n"
        "          .reporting(min_sample_timesteps_per_iteration=32))\n"
        "stop = {'training_iteration': 1}\n")
    assert main(["train", "file", str(path), "--local-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== my_sac: SAC on Pendulum-v1" in out and "reached training_iteration >= 1" in out
    last = re.search(r"Last checkpoint: (\S+)", out).group(1)
    assert os.path.isfile(last)


def test_train_file_with_yaml_and_bad_forms(ray, tmp_path, capsys):
    path = tmp_path / "exp.yml"
    path.write_text("exp:\n  run: PPO\n  env: CartPole-v1\n  stop: {training_iteration: 1}\n"
                    "  config: {num_workers: 0, train_batch_size: 64, sgd_minibatch_size: 32,\n"
                    "           num_sgd_iter: 1, model: {fcnet_hiddens: [8]}}\n")
    assert main(["train", "file", str(path), "--local-dir", str(tmp_path)]) == 0
    assert "== exp: PPO on CartPole-v1" in capsys.readouterr().out
    assert main(["train", "fil", str(path)]) == 2
    assert "use `rllib train file FILE`" in capsys.readouterr().err
    empty = tmp_path / "nothing.py"
    empty.write_text("x = 1\n")
    assert main(["train", "file", str(empty)]) == 2
    assert "must define one algorithm config" in capsys.readouterr().err


def test_example_list_has_dqn_and_sac(capsys):
    assert main(["example", "list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"cartpole-dqn\s+DQN on CartPole-v1", listed)
    assert re.search(r"pendulum-sac\s+SAC on Pendulum-v1", listed)
