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


def test_sac_runs_custom_keras_policy_and_q_models():
    tf = pytest.importorskip("tensorflow")
    from raylite.rllib.models.tf.tf_modelv2 import TFModelV2

    class KerasNet(TFModelV2):
        def __init__(self, obs_space, action_space, num_outputs, model_config, name):
            super().__init__(obs_space, action_space, num_outputs, model_config, name)
            inputs = tf.keras.layers.Input(shape=obs_space.shape)
            hidden = tf.keras.layers.Dense(8, activation="relu")(inputs)
            self.base_model = tf.keras.Model(inputs, tf.keras.layers.Dense(num_outputs)(hidden))

    ModelCatalog.register_custom_model("keras_net", KerasNet)
    algo = (SACConfig().environment("Pendulum-v1").framework("tf")
            .env_runners(num_env_runners=0)
            .training(policy_model_config={"custom_model": "keras_net"},
                      q_model_config={"custom_model": "keras_net"},
                      num_steps_sampled_before_learning_starts=32, train_batch_size=16)
            .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0).build())
    weights = algo.get_policy().get_weights()
    assert weights["policy/02/kernel"].shape == (8, 2) and weights["q2/00/kernel"].shape == (4, 8)
    algo.train()
    algo.train()
    moved = algo.get_policy().get_weights()
    assert all(not np.allclose(moved[k], weights[k]) for k in weights)
    assert -2.0 <= float(algo.compute_single_action(np.ones(3, np.float32))[0]) <= 2.0
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


class ImageEnv(gym.Env):
    """A tiny image task: one bright pixel; reward 1 for action 1 if it is in the left half,
    for action 0 otherwise. Shape from env_config (H, W, C); 8 steps an episode."""

    def __init__(self, env_config=None):
        self.shape = tuple((env_config or {}).get("shape", (10, 10, 3)))
        self.observation_space = gym.spaces.Box(0.0, 1.0, self.shape, np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.rng = np.random.default_rng(0)

    def _observe(self):
        image = np.zeros(self.shape, np.float32)
        self.column = int(self.rng.integers(self.shape[1]))
        image[int(self.rng.integers(self.shape[0])), self.column, :] = 1.0
        return image

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        reward = float(int(action) == int(self.column < self.shape[1] // 2))
        self.t += 1
        return self._observe(), reward, self.t >= 8, False, {}


SMALL_FILTERS = [[4, [3, 3], 2], [8, [5, 5], 1]]   # 10x10 -> 5x5x4 -> 1x1x8


def _conv_kernels(weights):
    return {name: w.shape for name, w in weights.items() if name.endswith("kernel")
            and len(w.shape) == 4}


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("algo_name", ["PPO", "DQN"])
def test_conv_net_for_image_observations(algo_name, framework):
    if framework == "tf":
        pytest.importorskip("tensorflow")
    builder = PPOConfig() if algo_name == "PPO" else DQNConfig()
    tiny = (dict(train_batch_size=64, sgd_minibatch_size=32, num_sgd_iter=2)
            if algo_name == "PPO" else DQN_TINY)
    config = (builder.environment(ImageEnv).framework(framework)
              .env_runners(num_env_runners=0, rollout_fragment_length=32)
              .training(model={"conv_filters": SMALL_FILTERS, "conv_activation": "elu"},
                        **tiny)
              .debugging(seed=0))
    if algo_name == "DQN":
        config = config.reporting(min_sample_timesteps_per_iteration=64)
    algo = config.build()
    weights = algo.get_policy().get_weights()
    kernels = _conv_kernels(weights)
    prefix = "policy" if algo_name == "PPO" else "q/torso"
    assert kernels[f"{prefix}/conv_0/kernel"] == (3, 3, 3, 4)
    assert kernels[f"{prefix}/conv_1/kernel"] == (5, 5, 4, 8)
    model = algo.get_policy().model   # the framework's model runs the conv layers
    image = ImageEnv().reset(seed=1)[0]
    if framework == "torch":
        assert any(p.ndim == 4 for p in model.parameters())
        out = model(torch.as_tensor(image.reshape(1, -1)))
    else:
        assert any(len(v.shape) == 4 for v in model.base_model.trainable_variables)
        out = model(image.reshape(1, -1))
    out = out[0] if isinstance(out, tuple) else out
    assert tuple(out.shape) == (1, 2)
    for _ in range(2):
        result = algo.train()
    assert result["timesteps_total"] >= 128
    moved = algo.get_policy().get_weights()
    assert all(not np.allclose(moved[k], weights[k]) for k in kernels)
    assert algo.compute_single_action(image, explore=False) in (0, 1)
    algo.stop()


def test_conv_default_filters_and_the_error_for_other_image_sizes(tmp_path):
    algo = (PPOConfig().environment(ImageEnv, env_config={"shape": (42, 42, 1)})
            .env_runners(num_env_runners=0).training(model={"vf_share_layers": True})
            .debugging(seed=0).build())
    # RLlib's 42x42 stack: [[16, [4, 4], 2], [32, [4, 4], 2], [256, [11, 11], 1]]
    assert _conv_kernels(algo.get_policy().get_weights()) == {
        "policy/conv_0/kernel": (4, 4, 1, 16), "policy/conv_1/kernel": (4, 4, 16, 32),
        "policy/conv_2/kernel": (11, 11, 32, 256)}
    image = ImageEnv({"shape": (42, 42, 1)}).reset(seed=0)[0]
    action, _, extra = algo.get_policy().compute_single_action(image, explore=False)
    path = algo.save(str(tmp_path))
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    again, _, extra_again = restored.get_policy().compute_single_action(image, explore=False)
    assert again == action
    np.testing.assert_allclose(extra_again["action_dist_inputs"], extra["action_dist_inputs"])
    restored.stop()
    with pytest.raises(ValueError, match=r"no default conv_filters for image observations of "
                                         r"shape \[12, 12, 3\]: set model=\{'conv_filters'"):
        PPOConfig().environment(ImageEnv, env_config={"shape": (12, 12, 3)}).build()
    with pytest.raises(ValueError, match="shrink the"):
        DQNConfig().environment(ImageEnv).training(
            model={"conv_filters": [[4, [11, 11], 1]]}).build()


class ConvFeatures(TorchModelV2, torch.nn.Module):
    """A custom conv model: RLlib hands it image observations in their shape [B, H, W, C]."""

    def __init__(self, obs_space, action_space, num_outputs, model_config, name):
        TorchModelV2.__init__(self, obs_space, action_space, num_outputs, model_config, name)
        torch.nn.Module.__init__(self)
        self.conv = torch.nn.Conv2d(obs_space.shape[2], 4, 3, stride=2)
        self.fc = torch.nn.Linear(4 * 4 * 4, num_outputs)   # 10x10 -> 4x4 (3x3, stride 2)

    def forward(self, input_dict, state, seq_lens):
        obs = input_dict["obs"]
        assert tuple(obs.shape[1:]) == (10, 10, 3)
        hidden = torch.relu(self.conv(obs.permute(0, 3, 1, 2)))
        return torch.relu(self.fc(hidden.flatten(1))), state


def test_custom_models_see_images_in_their_shape_and_sac_refuses_plain_images():
    ModelCatalog.register_custom_model("conv_features", ConvFeatures)
    algo = (DQNConfig().environment(ImageEnv).env_runners(num_env_runners=0)
            .training(model={"custom_model": "conv_features", "fcnet_hiddens": [16]}, **DQN_TINY)
            .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0).build())
    assert algo.get_policy().get_weights()["q/torso/conv.weight"].shape == (4, 3, 3, 3)
    assert algo.train()["timesteps_total"] == 64
    assert algo.compute_single_action(ImageEnv().reset(seed=0)[0], explore=False) in (0, 1)
    algo.stop()

    class ImageBoxEnv(ImageEnv):
        def __init__(self, env_config=None):
            super().__init__(env_config)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

        def step(self, action):
            return super().step(int(action[0] > 0))

    with pytest.raises(NotImplementedError, match="SAC on image observations \\(10, 10, 3\\)"):
        SACConfig().environment(ImageBoxEnv).build()


@pytest.mark.parametrize("stride, padding", [((1, 1), "same"), ((2, 3), "same"),
                                             ((2, 2), "valid")])
def test_conv2d_is_one_function_on_numpy_torch_and_tf(stride, padding):
    from raylite.rllib._conv import same_padding
    from raylite.rllib._distributions import NUMPY_OPS
    from raylite.rllib._policy_torch import TORCH_OPS
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    # by hand: pad as TensorFlow does ("same"), then slide the kernel
    padded = x
    if padding == "same":
        padded = np.pad(x, ((0, 0), same_padding(7, 3, stride[0]), same_padding(6, 2, stride[1]),
                            (0, 0)))
    rows = range(0, padded.shape[1] - 3 + 1, stride[0])
    cols = range(0, padded.shape[2] - 2 + 1, stride[1])
    expected = np.array([[[np.tensordot(padded[b, i:i + 3, j:j + 2], kernel, axes=3)
                           for j in cols] for i in rows] for b in range(2)])
    np.testing.assert_allclose(NUMPY_OPS.conv2d(x, kernel, stride, padding), expected,
                               rtol=1e-5, atol=1e-5)
    out = TORCH_OPS.conv2d(torch.from_numpy(x), torch.from_numpy(kernel), stride, padding)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
    tf = pytest.importorskip("tensorflow")
    from raylite.rllib._policy_tf import TF_OPS
    out = TF_OPS.conv2d(tf.constant(x), tf.constant(kernel), stride, padding)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
