"""Multi-agent runs with callbacks (multi-agent episodes), curriculum (env_task_fn on a
MultiAgentEnv that is a TaskSettableEnv) and offline output (MultiAgentBatch JSON lines)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

import gymnasium as gym

from raylite.rllib.algorithms.callbacks import DefaultCallbacks
from raylite.rllib.algorithms.dqn import DQNConfig
from raylite.rllib.algorithms.ppo import PPOConfig
from raylite.rllib.env.apis.task_settable_env import TaskSettableEnv
from raylite.rllib.env.multi_agent_env import MultiAgentEnv
from raylite.rllib.offline import JsonReader, MultiAgentBatch

PPO_TINY = dict(train_batch_size=32, sgd_minibatch_size=16, num_sgd_iter=1,
                model={"fcnet_hiddens": [4]})
DQN_TINY = dict(model={"fcnet_hiddens": [4]}, hiddens=[4], train_batch_size=8,
                num_steps_sampled_before_learning_starts=8)


class Turns(MultiAgentEnv, TaskSettableEnv):
    """Agents "a" and "b" act in turn for ``length`` steps (the task); each step pays 1 to the
    agent that acted and 10 to the other one. Infos carry the step number."""

    def __init__(self, config=None):
        super().__init__()
        self.agents = ["a", "b"]
        self.length = (config or {}).get("length", 4)
        self.observation_space = gym.spaces.Box(-100, 100, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def get_task(self):
        return self.length

    def set_task(self, task):
        self.length = task

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return {"a": np.zeros(1, np.float32)}, {}

    def step(self, action_dict):
        [actor] = action_dict
        other = "b" if actor == "a" else "a"
        self.t += 1
        done = self.t >= self.length
        obs = {} if done else {other: np.full(1, self.t, np.float32)}
        infos = {actor: {"t": self.t}}
        return obs, {actor: 1.0, other: 10.0}, {"__all__": done}, {"__all__": False}, infos


def own_policy(agent_id, episode=None, worker=None, **kwargs):
    return f"p{agent_id}"


class AgentMetrics(DefaultCallbacks):
    def on_episode_start(self, *, episode, policies, **kwargs):
        assert set(policies) == {"pa", "pb"}
        episode.user_data["steps"] = 0

    def on_episode_step(self, *, episode, **kwargs):
        episode.user_data["steps"] += 1

    def on_episode_end(self, *, episode, **kwargs):
        assert episode.user_data["steps"] == episode.length
        episode.custom_metrics["a_return"] = episode.agent_rewards[("a", "pa")]
        episode.custom_metrics["b_return"] = episode.agent_rewards[("b", episode.policy_for("b"))]
        episode.custom_metrics["total"] = episode.total_reward
        episode.custom_metrics["last_t"] = max(episode.last_info_for(a).get("t", 0)
                                               for a in episode.get_agents())

    def on_sample_end(self, *, worker, samples, **kwargs):
        assert set(samples) <= {"pa", "pb"}

    def on_train_result(self, *, algorithm, result, **kwargs):
        result["callback_ran"] = True


def lengthen(train_results, task_settable_env, env_ctx):
    return task_settable_env.get_task() + 2


def _config(builder, **training):
    return (builder.environment(Turns, env_config={"length": 4})
            .multi_agent(policies={"pa", "pb"}, policy_mapping_fn=own_policy)
            .env_runners(num_env_runners=0, rollout_fragment_length=8)
            .training(**training).debugging(seed=0))


def test_callbacks_see_multi_agent_episodes():
    algo = _config(PPOConfig(), **PPO_TINY).callbacks(AgentMetrics).build()
    result = algo.train()
    metrics = result["custom_metrics"]
    # 4 steps: a acts at t=1, 3 and b at t=2, 4; each gets 1 + 10 + 1 + 10
    assert metrics["a_return_mean"] == metrics["b_return_max"] == 22.0
    assert metrics["total_min"] == 44.0 and metrics["last_t_mean"] == 4
    assert result["callback_ran"] is True
    assert result["policy_reward_mean"] == {"pa": 22.0, "pb": 22.0}
    algo.stop()


@pytest.mark.parametrize("workers", [0, 1])
def test_env_task_fn_on_a_task_settable_multi_agent_env(workers, request):
    if workers:
        request.getfixturevalue("ray")
    algo = (_config(DQNConfig(), **DQN_TINY).environment(env_task_fn=lengthen)
            .env_runners(num_env_runners=workers).callbacks(AgentMetrics)
            .reporting(min_sample_timesteps_per_iteration=24).build())
    first = algo.train()
    assert first["env_tasks"] == [6] * max(workers, 1)
    assert first["custom_metrics"]["last_t_max"] == 4
    second = algo.train()
    assert second["env_tasks"] == [8] * max(workers, 1)
    assert second["custom_metrics"]["last_t_max"] == 6   # the episodes of the longer task
    algo.stop()


def test_multi_agent_output_is_read_back_and_trains_dqn(tmp_path):
    out = str(tmp_path / "logged")
    writer = (_config(DQNConfig(), **DQN_TINY).offline_data(output=out)
              .reporting(min_sample_timesteps_per_iteration=32).build())
    writer.train()
    writer.stop()
    batches = list(JsonReader(out).read_all_files())
    assert len(batches) == 4 and all(isinstance(b, MultiAgentBatch) for b in batches)
    assert set(batches[0].policy_batches) == {"pa", "pb"} and batches[0].count == 8
    rows = batches[0]["pa"]
    assert rows["obs"].shape == (4, 1) and rows["rewards"].tolist() == [11.0] * 4
    assert batches[0].agent_steps() == 8

    learner = (_config(DQNConfig(), **DQN_TINY).offline_data(input_=out)
               .reporting(min_sample_timesteps_per_iteration=16).build())
    result = learner.train()
    assert result["timesteps_total"] == 16
    stats = result["info"]["learner"]
    assert {pid: stats[pid]["learner_stats"]["num_updates"] > 0 for pid in stats} == {
        "pa": True, "pb": True}
    assert learner.evaluate()["evaluation"]["episode_reward_mean"] == 44.0
    learner.stop()
    with pytest.raises(ValueError, match="is multi-agent, this DQN single-agent"):
        (DQNConfig().environment("CartPole-v1").offline_data(input_=out)
         .training(**DQN_TINY).build().train())

    ppo_out = str(tmp_path / "ppo")
    algo = _config(PPOConfig(), **PPO_TINY).offline_data(output=ppo_out).build()
    algo.train()
    algo.stop()
    first = next(JsonReader(ppo_out).read_all_files())
    assert {"advantages", "value_targets"} <= set(first["pb"])
