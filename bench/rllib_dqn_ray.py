"""RLlib 2.60's DQN on CartPole-v1 for a fixed step budget, with configs/cartpole-dqn-rllib.yml's
settings (RLlib's tuned example, n_step fixed at 3, 4-step rollout fragments). Run in Ray's
venv; one JSON line per iteration and a summary line.

    .bench-venv/bin/python bench/rllib_dqn_ray.py STEPS [SEED]

Each line holds RLlib's own ``episode_return_mean`` (``return_mean``: RLlib 2.60's new API stack
clears its metric windows at every reduce, so this is about the mean of the iteration's own
episodes) and, from a wrapper that sees every episode of the (in-process) env, the mean of the
last 100 episodes (``return_100``, raylite's and the old RLlib's ``episode_reward_mean``) and of
the iteration's episodes (``iter_return``), so both sides are read with one definition.
"""
import json
import math
import os
import sys
import tempfile
import time

import gymnasium as gym
import ray
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.tune.registry import register_env

# Every finished episode's return, one line each (a file: RLlib pickles the env creator, so a
# list here would not be the one its env appends to).
_handle, RETURNS_FILE = tempfile.mkstemp(prefix="rllib_dqn_returns_")
os.close(_handle)


def read_returns() -> list:
    with open(RETURNS_FILE) as f:
        return [float(line) for line in f if line.strip()]


class EpisodeReturns(gym.Wrapper):
    def __init__(self, env, path):
        super().__init__(env)
        self._path = path

    def reset(self, **kwargs):
        self._return = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            with open(self._path, "a") as f:
                f.write(f"{self._return}\n")
        return obs, reward, terminated, truncated, info


budget = int(sys.argv[1])
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
register_env("CartPoleCounted",
             lambda _, path=RETURNS_FILE: EpisodeReturns(gym.make("CartPole-v1"), path))
ray.init(num_cpus=2, include_dashboard=False)
t0 = time.perf_counter()
config = (DQNConfig().environment("CartPoleCounted")
          .env_runners(num_env_runners=0, rollout_fragment_length=4)
          .training(lr=5e-4, train_batch_size_per_learner=32, n_step=3, double_q=True,
                    dueling=True, epsilon=[(0, 1.0), (10000, 0.02)],
                    replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer",
                                          "capacity": 50000, "alpha": 0.6, "beta": 0.4})
          .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[256], fcnet_activation="tanh",
                                                     head_fcnet_hiddens=[256]))
          .reporting(min_sample_timesteps_per_iteration=1000)
          .debugging(seed=seed))
algo = config.build_algo()
steps, ret, best, seen = 0, float("nan"), -1e9, 0
while steps < budget:
    r = algo.train()
    steps = r["env_runners"]["num_env_steps_sampled_lifetime"]
    ret = r["env_runners"].get("episode_return_mean", float("nan"))
    best = best if math.isnan(ret) else max(best, ret)
    RETURNS = read_returns()
    new = RETURNS[seen:]
    seen = len(RETURNS)
    point = {"steps": steps, "return_mean": round(ret, 1), "t": round(time.perf_counter() - t0, 1),
             "episodes": len(RETURNS)}
    if RETURNS:
        point["return_100"] = round(sum(RETURNS[-100:]) / len(RETURNS[-100:]), 1)
    if new:
        point["iter_return"] = round(sum(new) / len(new), 1)
    print(json.dumps(point), flush=True)
wall = time.perf_counter() - t0
print(json.dumps({"impl": "rllib", "steps": steps, "final_return_mean": round(ret, 1),
                  "best_return_mean": round(best, 1), "wall_s": round(wall, 1),
                  "steps_per_s": round(steps / wall)}))
os.unlink(RETURNS_FILE)
