"""Multi-agent training: envs of many agents, policies per agent, per-policy overrides."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

import gymnasium as gym

from raylite.rllib.algorithms.dqn import DQNConfig
from raylite.rllib.algorithms.ppo import PPOConfig
from raylite.rllib.env.multi_agent_env import MultiAgentEnv, make_multi_agent
from raylite.rllib.policy.policy import PolicySpec

TwoCartPoles = make_multi_agent("CartPole-v1")


def by_agent(agent_id, episode=None, worker=None, **kwargs):
    return f"p{agent_id}"


class TakeTurns(MultiAgentEnv):
    """Agents "a" and "b" act in turn, 4 steps; each step pays 1 to the agent that acted and
    10 to the other one, so each action's reward is 1 + 10 (what it got until it acts again)."""

    def __init__(self, config=None):
        super().__init__()
        self.agents = ["a", "b"]
        self.observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return {"a": np.zeros(1, np.float32)}, {}

    def step(self, action_dict):
        [actor] = action_dict
        other = "b" if actor == "a" else "a"
        self.t += 1
        done = self.t >= 4
        obs = {} if done else {other: np.full(1, self.t, np.float32)}
        return (obs, {actor: 1.0, other: 10.0}, {"__all__": done}, {"__all__": False}, {})


def test_turn_based_rewards_belong_to_the_action_they_follow():
    algo = (DQNConfig().environment(TakeTurns)
            .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent, *a, **k: "shared")
            .env_runners(rollout_fragment_length=4)
            .training(model={"fcnet_hiddens": [4]}, hiddens=[4],
                      num_steps_sampled_before_learning_starts=1000).build())
    out = algo.workers.local.sample()
    rows = out["batch"]["shared"]
    # a acts at t=0 and t=2, b at t=1 and t=3; each action: its 1 plus the other's 10
    assert rows["rewards"].tolist() == [11.0, 11.0, 11.0, 1.0]
    assert rows["terminateds"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out["episodes"] == [(44.0, 4)] and out["policy_returns"] == {"shared": [22.0, 22.0]}
    algo.stop()


def test_ppo_two_policies_with_their_own_gamma_and_one_frozen():
    algo = (PPOConfig().environment(TwoCartPoles, env_config={"num_agents": 2})
            .multi_agent(policies={"p0": PolicySpec(config={"gamma": 0.5}), "p1": PolicySpec()},
                         policy_mapping_fn=by_agent, policies_to_train=["p0"])
            .env_runners(num_env_runners=0, rollout_fragment_length=50)
            .training(train_batch_size=100, sgd_minibatch_size=50, num_sgd_iter=1,
                      model={"fcnet_hiddens": [8]}).debugging(seed=0).build())
    frozen = algo.get_policy("p1").get_weights()
    assert algo.get_policy("p0").config["gamma"] == 0.5 and algo.get_policy("p1").config[
        "gamma"] == 0.99
    result = algo.train()
    assert set(result["policy_reward_mean"]) == {"p0", "p1"}
    assert set(result["info"]["learner"]) == {"p0"}  # p1 does not train
    assert all(np.array_equal(algo.get_policy("p1").get_weights()[k], frozen[k]) for k in frozen)
    assert result["timesteps_total"] == 100 and result["episode_reward_mean"] > 0
    actions = algo.compute_actions({0: np.zeros(4, np.float32), 1: np.zeros(4, np.float32)})
    assert set(actions) == {0, 1}
    assert algo.evaluate()["evaluation"]["episodes_this_iter"] == 10
    algo.stop()


def test_multi_agent_rollout_worker_actors(ray):
    algo = (PPOConfig().environment(TwoCartPoles, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=by_agent)
            .env_runners(num_env_runners=2, rollout_fragment_length=20)
            .training(train_batch_size=40, sgd_minibatch_size=20, num_sgd_iter=1,
                      model={"fcnet_hiddens": [8]}).build())
    result = algo.train()
    assert result["timesteps_total"] == 40 and set(result["info"]["learner"]) == {"p0", "p1"}
    weights = algo.workers.foreach_worker(lambda w: w.get_policy("p1").get_weights(),
                                          local_worker=False)
    assert len(weights) == 2
    algo.stop()


def test_dqn_multi_agent_trains_each_policy_and_checkpoints_all(tmp_path):
    from raylite.rllib.algorithms.algorithm import Algorithm
    config = (DQNConfig().environment(TwoCartPoles, env_config={"num_agents": 2})
              .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=by_agent)
              .training(model={"fcnet_hiddens": [8]}, hiddens=[8], train_batch_size=16,
                        num_steps_sampled_before_learning_starts=16)
              .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0))
    algo = config.build()
    result = algo.train()
    learner = result["info"]["learner"]
    assert set(learner) == {"p0", "p1"} and learner["p1"]["learner_stats"]["num_updates"] > 0
    assert set(result["policy_reward_mean"]) <= {"p0", "p1"}
    path = algo.save(str(tmp_path))
    obs = np.array([0.01, 0.0, 0.02, 0.0], np.float32)
    before = {pid: algo.compute_single_action(obs, policy_id=pid, explore=False)
              for pid in ("p0", "p1")}
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    assert {pid: restored.compute_single_action(obs, policy_id=pid, explore=False)
            for pid in ("p0", "p1")} == before
    np.testing.assert_array_equal(restored.get_weights()["p1"]["q/advantage/out/bias"],
                                  algo.get_weights()["p1"]["q/advantage/out/bias"])
    restored.stop()


def test_multi_agent_mistakes_are_clear_errors():
    with pytest.raises(ValueError, match="policies need a MultiAgentEnv; CartPole-v1"):
        PPOConfig().environment("CartPole-v1").multi_agent(policies={"a"}).build()
    with pytest.raises(ValueError, match="returned 'p7', which is not a policy"):
        (PPOConfig().environment(TwoCartPoles, env_config={"num_agents": 2})
         .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=lambda a, *x, **k: "p7")
         .env_runners(num_env_runners=0, rollout_fragment_length=8)
         .training(train_batch_size=8, sgd_minibatch_size=8).build().train())
    with pytest.raises(ValueError, match="policies_to_train names \\['p9'\\]"):
        (PPOConfig().environment(TwoCartPoles)
         .multi_agent(policies={"p0"}, policies_to_train=["p9"]).build())


def test_sac_multi_agent_on_continuous_actions():
    from raylite.rllib.algorithms.sac import SACConfig
    TwoPendulums = make_multi_agent("Pendulum-v1")
    algo = (SACConfig().environment(TwoPendulums, env_config={"num_agents": 2})
            .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=by_agent)
            .training(train_batch_size=16, num_steps_sampled_before_learning_starts=180,
                      q_model_config={"fcnet_hiddens": [8]},
                      policy_model_config={"fcnet_hiddens": [8]})
            .reporting(min_sample_timesteps_per_iteration=200).build())
    result = algo.train()  # one episode of 200 steps per agent
    assert set(result["policy_reward_mean"]) == {"p0", "p1"}
    assert set(result["info"]["learner"]) == {"p0", "p1"}
    actions = algo.compute_actions({0: np.zeros(3, np.float32), 1: np.ones(3, np.float32)})
    assert all(-2.0 <= float(a[0]) <= 2.0 for a in actions.values())
    algo.stop()
