"""External envs: a separate process owns the simulator and asks the algorithm for actions
over HTTP on 127.0.0.1 (PolicyServerInput / PolicyClient)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

import gymnasium as gym

from raylite.rllib.algorithms.dqn import DQNConfig
from raylite.rllib.algorithms.ppo import PPOConfig
from raylite.rllib.env.policy_client import PolicyClient
from raylite.rllib.env.policy_server_input import PolicyServerInput

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = """
import sys
import gymnasium as gym
from raylite.rllib.env.policy_client import PolicyClient
client = PolicyClient(sys.argv[1])
env = gym.make("CartPole-v1")
for episode in range(int(sys.argv[2])):
    eid = client.start_episode()
    obs, _ = env.reset(seed=episode)
    while True:
        action = client.get_action(eid, obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        client.log_returns(eid, reward)
        if terminated or truncated:
            client.end_episode(eid, obs)
            break
print("client done")
"""


def server_config(config_class, **training):
    servers = []

    def serve(ioctx):
        servers.append(PolicyServerInput(ioctx, "localhost", 0))
        return servers[-1]

    config = (config_class().environment(None, observation_space=gym.spaces.Box(
        -float("inf"), float("inf"), (4,)), action_space=gym.spaces.Discrete(2))
        .offline_data(input_=serve).env_runners(num_env_runners=0).training(**training))
    return config, servers


@pytest.mark.parametrize("algo_name", ["PPO", "DQN"])
def test_a_client_process_drives_training(algo_name, tmp_path):
    if algo_name == "PPO":
        config, servers = server_config(PPOConfig, train_batch_size=200, sgd_minibatch_size=100,
                                        num_sgd_iter=1, model={"fcnet_hiddens": [8]})
        config = config.env_runners(rollout_fragment_length=50)
    else:
        config, servers = server_config(DQNConfig, model={"fcnet_hiddens": [8]}, hiddens=[8],
                                        num_steps_sampled_before_learning_starts=20)
        config = config.reporting(min_sample_timesteps_per_iteration=100)
    algo = config.build()
    [server] = servers
    assert server.address == "127.0.0.1"  # "localhost" binds the loopback only
    url = f"http://127.0.0.1:{server.port}"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, url, "30"],
                              env={**os.environ, "PYTHONPATH": REPO},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = algo.train()
        second = algo.train()
    finally:
        algo.stop()
        out = client.communicate(timeout=120)[0]  # the server is gone: the client fails fast
    assert first["timesteps_total"] >= 100 and second["timesteps_total"] > first[
        "timesteps_total"]
    assert second["episodes_total"] >= 1 and second["episode_reward_mean"] > 5
    stats = second["info"]["learner"]["default_policy"]["learner_stats"]
    assert stats, out


def test_server_refuses_unknown_commands_and_episodes():
    config, servers = server_config(PPOConfig, train_batch_size=64, sgd_minibatch_size=32)
    algo = config.build()
    client = PolicyClient(f"http://127.0.0.1:{servers[0].port}")
    with pytest.raises(ValueError, match="unknown episode 'nope': call start_episode first"):
        client.get_action("nope", [0, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown command 'RUN_CODE'"):
        client._send(command="RUN_CODE")
    eid = client.start_episode()
    assert client.get_action(eid, [0.0, 0.0, 0.0, 0.0]) in (0, 1)
    with pytest.raises(ValueError, match="no env of its own to evaluate in"):
        algo.evaluate()
    algo.stop()
    with pytest.raises(ValueError, match="inference_mode='local'"):
        PolicyClient("http://127.0.0.1:1", inference_mode="local")
