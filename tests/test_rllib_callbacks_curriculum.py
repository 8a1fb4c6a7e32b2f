"""DefaultCallbacks with custom metrics, and curriculum learning with env_task_fn."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

import gymnasium as gym

from raylite.rllib.algorithms.callbacks import DefaultCallbacks
from raylite.rllib.algorithms.ppo import PPOConfig
from raylite.rllib.env.apis.task_settable_env import TaskSettableEnv
from raylite.rllib.env.multi_agent_env import MultiAgentEnv

TINY = dict(train_batch_size=64, sgd_minibatch_size=32, num_sgd_iter=1,
            model={"fcnet_hiddens": [8]})


class Corridor(TaskSettableEnv):
    """Walk right to the end of a corridor whose length is the task."""

    def __init__(self, config=None):
        self.length = (config or {}).get("length", 2)
        self.observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def get_task(self):
        return self.length

    def set_task(self, task):
        self.length = task

    def reset(self, *, seed=None, options=None):
        self.position = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.position += 1 if action == 1 else 0
        done = self.position >= self.length
        return np.array([self.position], np.float32), 1.0 if done else -0.1, done, False, {
            "length": self.length}


class Metrics(DefaultCallbacks):
    def on_algorithm_init(self, *, algorithm, **kwargs):
        algorithm.seen_init = True

    def on_episode_start(self, *, episode, **kwargs):
        episode.user_data["steps"] = 0

    def on_episode_step(self, *, episode, **kwargs):
        episode.user_data["steps"] += 1

    def on_episode_end(self, *, episode, **kwargs):
        assert episode.user_data["steps"] == episode.length
        episode.custom_metrics["corridor"] = episode.last_info_for()["length"]
        episode.custom_metrics["steps"] = episode.length

    def on_train_result(self, *, algorithm, result, **kwargs):
        result["callback_ran"] = True


def grow(train_results, task_settable_env, env_ctx):
    """The curriculum: one step longer after each iteration, per env slot."""
    return task_settable_env.get_task() + 1 + 0 * env_ctx.vector_index


def test_callbacks_fill_custom_metrics_and_see_each_result():
    algo = (PPOConfig().environment(Corridor, env_config={"length": 3})
            .env_runners(num_env_runners=0).training(**TINY).callbacks(Metrics).build())
    assert algo.seen_init
    result = algo.train()
    metrics = result["custom_metrics"]
    assert metrics["corridor_mean"] == metrics["corridor_min"] == metrics["corridor_max"] == 3
    assert metrics["steps_min"] >= 3
    assert metrics["steps_mean"] == pytest.approx(result["episode_len_mean"], rel=0.5)
    assert result["callback_ran"] is True
    algo.stop()


@pytest.mark.parametrize("workers", [0, 2])
def test_env_task_fn_sets_each_envs_next_task_after_every_iteration(workers, request):
    if workers:
        request.getfixturevalue("ray")
    algo = (PPOConfig().environment(Corridor, env_config={"length": 2}, env_task_fn=grow)
            .env_runners(num_env_runners=workers, num_envs_per_env_runner=2)
            .training(**TINY).callbacks(Metrics).build())
    first = algo.train()
    assert first["env_tasks"] == [3] * (2 * max(workers, 1))
    second = algo.train()
    assert second["env_tasks"] == [4] * (2 * max(workers, 1))
    assert second["custom_metrics"]["corridor_max"] == 3  # episodes of the second iteration
    algo.stop()


def test_env_task_fn_needs_task_settable_envs():
    algo = (PPOConfig().environment("CartPole-v1", env_task_fn=grow)
            .env_runners(num_env_runners=0).training(**TINY).build())
    with pytest.raises(TypeError, match="env_task_fn needs envs with set_task"):
        algo.train()
    algo.stop()


class TwoWalkers(MultiAgentEnv):
    """Two agents walk the same corridor, whose length is the task; both done at its end."""

    def __init__(self, config=None):
        super().__init__()
        self.length = (config or {}).get("length", 2)
        self.agents = ["left", "right"]
        self.observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def get_task(self):
        return self.length

    def set_task(self, task):
        self.length = task

    def reset(self, *, seed=None, options=None):
        self.position = 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {}

    def step(self, action_dict):
        self.position += 1
        done = self.position >= self.length
        obs = {a: np.array([self.position], np.float32) for a in self.agents}
        return obs, {a: 1.0 for a in self.agents}, {"__all__": done}, {"__all__": False}, {}


@pytest.mark.parametrize("workers", [0, 2])
def test_env_task_fn_sets_the_task_of_multi_agent_envs(workers, request):
    if workers:
        request.getfixturevalue("ray")
    algo = (PPOConfig().environment(TwoWalkers, env_config={"length": 2}, env_task_fn=grow)
            .multi_agent(policies={"p_left", "p_right"},
                         policy_mapping_fn=lambda agent, *args, **kwargs: f"p_{agent}")
            .env_runners(num_env_runners=workers, rollout_fragment_length=32)
            .training(**TINY).build())
    assert algo.train()["env_tasks"] == [3] * max(workers, 1)
    second = algo.train()
    assert second["env_tasks"] == [4] * max(workers, 1)
    # the second iteration's episodes ran in corridors of 3 (each agent earns 1 a step)
    new_episodes = second["hist_stats"]["episode_reward"][-second["episodes_this_iter"]:]
    assert second["episodes_this_iter"] and min(new_episodes) >= 2 * 3
    assert algo.workers.foreach_worker(lambda w: w.foreach_env(lambda env: env.get_task()),
                                       local_worker=not workers) == [[4]] * max(workers, 1)
    algo.stop()
