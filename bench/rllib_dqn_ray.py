"""RLlib 2.60's DQN on CartPole-v1 for a fixed step budget, with configs/cartpole-dqn.yml's
settings (RLlib's tuned example, n_step fixed at 3, 4-step rollout fragments as raylite's
default). Run in Ray's venv; one JSON line per iteration and a summary line.

    .bench-venv/bin/python bench/rllib_dqn_ray.py STEPS [SEED]
"""
import json
import math
import sys
import time

import ray
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

budget = int(sys.argv[1])
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
ray.init(num_cpus=2, include_dashboard=False)
t0 = time.perf_counter()
config = (DQNConfig().environment("CartPole-v1")
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
steps, ret, best = 0, float("nan"), -1e9
while steps < budget:
    r = algo.train()
    steps = r["env_runners"]["num_env_steps_sampled_lifetime"]
    ret = r["env_runners"].get("episode_return_mean", float("nan"))
    best = best if math.isnan(ret) else max(best, ret)
    print(json.dumps({"steps": steps, "return_mean": round(ret, 1),
                      "t": round(time.perf_counter() - t0, 1)}), flush=True)
wall = time.perf_counter() - t0
print(json.dumps({"impl": "rllib", "steps": steps, "final_return_mean": round(ret, 1),
                  "best_return_mean": round(best, 1), "wall_s": round(wall, 1),
                  "steps_per_s": round(steps / wall)}))
