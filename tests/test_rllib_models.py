"""Models beyond the fcnet: custom models under DQN's Q heads and as SAC's networks, conv
nets for image observations (PPO and DQN, torch and tf)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
torch = pytest.importorskip("torch")

import gymnasium as gym

from raylite.rllib.algorithms.algorithm import Algorithm
from raylite.rllib.algorithms.dqn import DQNConfig
from raylite.rllib.algorithms.ppo import PPOConfig
from raylite.rllib.algorithms.sac import SACConfig
from raylite.rllib.models import ModelCatalog
from raylite.rllib.models.torch.torch_modelv2 import TorchModelV2

DQN_TINY = dict(hiddens=[8], num_steps_sampled_before_learning_starts=32, train_batch_size=16)


class CountingTorso(TorchModelV2, torch.nn.Module):
    """A custom torch model whose output is DQN's features; it counts its forward calls."""

    calls = 0

    def __init__(self, obs_space, action_space, num_outputs, model_config, name):
        TorchModelV2.__init__(self, obs_space, action_space, num_outputs, model_config, name)
        torch.nn.Module.__init__(self)
        self.fc = torch.nn.Linear(obs_space.shape[0], num_outputs)

    def forward(self, input_dict, state, seq_lens):
        type(self).calls += 1
        return torch.relu(self.fc(input_dict["obs"])), state


class SmallNet(TorchModelV2, torch.nn.Module):
    """A custom torch model for SAC's policy and Q networks; counts calls per output size."""

    calls: dict = {}

    def __init__(self, obs_space, action_space, num_outputs, model_config, name):
        TorchModelV2.__init__(self, obs_space, action_space, num_outputs, model_config, name)
        torch.nn.Module.__init__(self)
        width = model_config["custom_model_config"].get("width", 8)
        self.hidden = torch.nn.Linear(obs_space.shape[0], width)
        self.out = torch.nn.Linear(width, num_outputs)

    def forward(self, input_dict, state, seq_lens):
        SmallNet.calls[self.num_outputs] = SmallNet.calls.get(self.num_outputs, 0) + 1
        return self.out(torch.relu(self.hidden(input_dict["obs"]))), state


def test_dqn_runs_a_custom_torch_model_under_its_q_heads(tmp_path):
    ModelCatalog.register_custom_model("counting_torso", CountingTorso)
    algo = (DQNConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
            .training(model={"custom_model": "counting_torso", "fcnet_hiddens": [12]},
                      **DQN_TINY)
            .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0).build())
    weights = algo.get_policy().get_weights()
    # the module's own parameters (num_outputs: fcnet_hiddens' last size), DQN's heads on top
    assert weights["q/torso/fc.weight"].shape == (12, 4)
    assert weights["q/advantage/hidden_0/kernel"].shape == (12, 8)
    assert weights["q/value/out/kernel"].shape == (8, 1)
    CountingTorso.calls = 0
    for _ in range(2):
        result = algo.train()
    assert result["timesteps_total"] == 128 and result["info"]["learner"]
    assert CountingTorso.calls > 64   # acting and learning both ran the module
    moved = algo.get_policy().get_weights()
    assert not np.allclose(moved["q/torso/fc.weight"], weights["q/torso/fc.weight"])
    calls = CountingTorso.calls
    q = algo.get_policy().model(torch.zeros(3, 4))
    assert tuple(q.shape) == (3, 2) and CountingTorso.calls == calls + 1
    obs = np.array([0.0, 0.1, 0.02, -0.1], np.float32)
    action = algo.compute_single_action(obs, explore=False)
    path = algo.save(str(tmp_path))
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    assert restored.compute_single_action(obs, explore=False) == action
    restored.stop()


def test_dqn_runs_a_custom_keras_model_under_its_q_heads():
    tf = pytest.importorskip("tensorflow")
    from raylite.rllib.models.tf.tf_modelv2 import TFModelV2

    class KerasTorso(TFModelV2):
        def __init__(self, obs_space, action_space, num_outputs, model_config, name):
            super().__init__(obs_space, action_space, num_outputs, model_config, name)
            inputs = tf.keras.layers.Input(shape=obs_space.shape)
            features = tf.keras.layers.Dense(num_outputs, activation="relu")(inputs)
            self.base_model = tf.keras.Model(inputs, features)

    ModelCatalog.register_custom_model("keras_torso", KerasTorso)
    with pytest.raises(ValueError, match="is a Keras \\(TFModelV2\\) model: use framework=tf"):
        DQNConfig().environment("CartPole-v1").training(
            model={"custom_model": "keras_torso"}).build()
    algo = (DQNConfig().environment("CartPole-v1").framework("tf")
            .env_runners(num_env_runners=0)
            .training(model={"custom_model": "keras_torso", "fcnet_hiddens": [6]}, **DQN_TINY)
            .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0).build())
    weights = algo.get_policy().get_weights()
    torso = {k: v.shape for k, v in weights.items() if k.startswith("q/torso/")}
    assert sorted(torso.values()) == [(4, 6), (6,)]
    algo.train()
    algo.train()
    moved = algo.get_policy().get_weights()
    assert all(not np.allclose(moved[k], weights[k]) for k in torso)
    assert algo.compute_single_action(np.zeros(4, np.float32), explore=False) in (0, 1)
    algo.stop()


def test_sac_runs_custom_policy_and_q_models(tmp_path):
    ModelCatalog.register_custom_model("small_net", SmallNet)
    config = (SACConfig().environment("Pendulum-v1").env_runners(num_env_runners=0)
              .training(policy_model_config={"custom_model": "small_net",
                                             "custom_model_config": {"width": 5}},
                        q_model_config={"custom_model": "small_net"},
                        num_steps_sampled_before_learning_starts=32, train_batch_size=16)
              .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0))
    algo = config.build()
    weights = algo.get_policy().get_weights()
    assert weights["policy/hidden.weight"].shape == (5, 3)     # obs -> mean, log std
    assert weights["policy/out.weight"].shape == (2, 5)
    assert weights["q1/hidden.weight"].shape == (8, 4)         # obs + action -> Q
    assert weights["q2/out.weight"].shape == (1, 8)
    assert not np.allclose(weights["q1/hidden.weight"], weights["q2/hidden.weight"])
    SmallNet.calls = {}
    algo.train()
    algo.train()
    assert SmallNet.calls.get(2, 0) > 0 and SmallNet.calls.get(1, 0) > 0
    moved = algo.get_policy().get_weights()
    assert all(not np.allclose(moved[k], weights[k]) for k in weights)
    obs = np.array([1.0, 0.0, 0.1], np.float32)
    action = algo.compute_single_action(obs, explore=False)
    path = algo.save(str(tmp_path))
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    np.testing.assert_allclose(restored.compute_single_action(obs, explore=False), action)
    restored.stop()
    with pytest.raises(ValueError, match="through policy_model_config and q_model_config"):
        SACConfig().environment("Pendulum-v1").training(
            model={"custom_model": "small_net"}).build()
