"""Offline RL: output=DIR writes sample batches as JSON, input_=DIR learns from them (BC,
MARWIL, DQN), evaluate() runs the learned policy in the real env."""

from __future__ import annotations

import glob

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

from raylite.rllib.algorithms.bc import BCConfig
from raylite.rllib.algorithms.dqn import DQNConfig
from raylite.rllib.algorithms.marwil import MARWILConfig
from raylite.rllib.algorithms.ppo import PPOConfig
from raylite.rllib.offline import JsonReader, JsonWriter


def test_json_writer_and_reader_round_trip_and_cycle(tmp_path):
    writer = JsonWriter(str(tmp_path), max_file_size=400)
    batches = [{"obs": np.arange(6, dtype=np.float32).reshape(3, 2) + i,
                "actions": np.array([0, 1, i], np.int64), "dones": np.array([0, 0, 1], bool)}
               for i in range(3)]
    for batch in batches:
        writer.write(batch)
    writer.close()
    assert len(glob.glob(str(tmp_path / "output-*.json"))) >= 2  # rolled over by size
    reader = JsonReader(str(tmp_path))
    for expected in batches + batches[:1]:  # in order, then round again
        got = reader.next()
        for name, column in expected.items():
            assert got[name].dtype == column.dtype and np.array_equal(got[name], column)
    with pytest.raises(FileNotFoundError, match="no offline data at"):
        JsonReader(str(tmp_path / "none"))
    (tmp_path / "bad.json").write_text('{"type": "Other"}\n')
    with pytest.raises(ValueError, match="bad.json, line 1: not a sample batch"):
        list(JsonReader(str(tmp_path / "bad.json")).read_all_files())


@pytest.fixture(scope="module")
def expert_data(tmp_path_factory):
    """Batches written while a simple expert controls CartPole (push toward the lean)."""
    folder = tmp_path_factory.mktemp("expert")
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
            .training(train_batch_size=64, sgd_minibatch_size=64, num_sgd_iter=1,
                      model={"fcnet_hiddens": [8]})
            .offline_data(output=str(folder)).debugging(seed=0).build())
    worker = algo.workers.local_worker()

    class Expert:  # acts on the pole angle and its velocity
        def __init__(self, inner):
            self.inner = inner

        def compute_actions(self, obs, explore, rng):
            out = self.inner.compute_actions(obs, explore, rng)
            actions = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
            out["actions"] = actions
            out["env_actions"] = [int(a) for a in actions]
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    worker.policy = Expert(worker.policy)
    for _ in range(20):
        worker.sample()
    algo.stop()
    return str(folder)


@pytest.mark.parametrize("config_class", [BCConfig, MARWILConfig])
def test_bc_and_marwil_learn_the_experts_actions(config_class, expert_data):
    algo = (config_class().environment("CartPole-v1").offline_data(input_=expert_data)
            .training(lr=1e-2, train_batch_size=500, model={"fcnet_hiddens": [16]})
            .evaluation(evaluation_duration=3).debugging(seed=0).build())
    for _ in range(40):
        result = algo.train()
    assert result["timesteps_total"] >= 40 * 500
    evaluation = algo.evaluate()["evaluation"]
    # the expert's rule keeps the pole up for hundreds of steps; random play lasts ~22
    assert evaluation["episode_reward_mean"] > 150, evaluation
    algo.stop()


def test_dqn_learns_from_its_own_logged_transitions(tmp_path):
    config = dict(model={"fcnet_hiddens": [8]}, hiddens=[8], train_batch_size=16,
                  num_steps_sampled_before_learning_starts=16)
    writer = (DQNConfig().environment("CartPole-v1").training(**config)
              .reporting(min_sample_timesteps_per_iteration=100)
              .offline_data(output=str(tmp_path)).build())
    writer.train()
    writer.stop()
    offline = (DQNConfig().environment("CartPole-v1").training(**config)
               .reporting(min_sample_timesteps_per_iteration=100)
               .offline_data(input_=str(tmp_path)).build())
    result = offline.train()
    stats = result["info"]["learner"]["default_policy"]["learner_stats"]
    assert result["timesteps_total"] == 100 and stats["num_updates"] > 0
    assert result["episodes_this_iter"] == 0  # no env was stepped to learn
    assert offline.evaluate()["evaluation"]["episodes_this_iter"] == 10
    offline.stop()


def test_offline_input_errors_are_clear(tmp_path, expert_data):
    with pytest.raises(ValueError, match="BC learns from offline data: set"):
        BCConfig().environment("CartPole-v1").build()
    with pytest.raises(ValueError, match="lack new_obs"):
        (DQNConfig().environment("CartPole-v1").offline_data(input_=expert_data)
         .training(num_steps_sampled_before_learning_starts=0)
         .reporting(min_sample_timesteps_per_iteration=10).build().train())
    with pytest.raises(NotImplementedError, match="PPO in raylite learns from its env only"):
        PPOConfig().environment("CartPole-v1").offline_data(input_=str(tmp_path)).build()


def test_multi_agent_output_writes_each_policys_batches(tmp_path):
    from raylite.rllib.env.multi_agent_env import make_multi_agent
    algo = (DQNConfig().environment(make_multi_agent("CartPole-v1"), env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"},
                         policy_mapping_fn=lambda agent, *args, **kwargs: f"p{agent}")
            .env_runners(rollout_fragment_length=10)
            .training(model={"fcnet_hiddens": [8]}, hiddens=[8],
                      num_steps_sampled_before_learning_starts=1000)
            .reporting(min_sample_timesteps_per_iteration=20)
            .offline_data(output=str(tmp_path)).build())
    algo.train()
    algo.stop()
    batches = list(JsonReader(str(tmp_path)).read_all_files())
    assert len(batches) == 2 and all(set(batch) == {"p0", "p1"} for batch in batches)
    for batch in batches:
        for rows in batch.values():   # each agent acts in each of the 10 env steps it is in
            assert 0 < len(rows["obs"]) <= 10 and rows["obs"].shape[1:] == (4,)
            assert {"actions", "rewards", "new_obs", "terminateds"} <= set(rows)
    learner = (DQNConfig().environment("CartPole-v1").offline_data(input_=str(tmp_path))
               .training(model={"fcnet_hiddens": [8]}, hiddens=[8]).build())
    with pytest.raises(ValueError, match="multi-agent batches .* single-agent batches only"):
        learner.train()
    learner.stop()
