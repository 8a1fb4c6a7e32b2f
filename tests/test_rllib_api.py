"""The config builders of RLlib 2.2 and 2.x and the Algorithm API, across algorithms."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")

import gymnasium as gym

from raylite.rllib.algorithms.dqn import DQNConfig
from raylite.rllib.algorithms.ppo import PPOConfig

PPO_TINY = dict(train_batch_size=64, sgd_minibatch_size=32, num_sgd_iter=1,
                model={"fcnet_hiddens": [8]})
DQN_TINY = dict(model={"fcnet_hiddens": [8]}, hiddens=[8],
                num_steps_sampled_before_learning_starts=16)


def test_every_builder_method_of_ray_2_2():
    def on_task(result, env, ctx):
        return 0

    config = (PPOConfig()
              .environment(env="CartPole-v1", env_config={"a": 1},
                           observation_space=gym.spaces.Box(-1, 1, (4,)),
                           action_space=gym.spaces.Discrete(2), env_task_fn=on_task,
                           render_env=False)
              .rollouts(num_rollout_workers=0, num_envs_per_worker=2,
                        create_env_on_local_worker=True, rollout_fragment_length=32,
                        batch_mode="complete_episodes")
              .training(gamma=0.9, lr=1e-3, model={"fcnet_hiddens": [8]})
              .evaluation(evaluation_interval=2, evaluation_duration=3,
                          evaluation_num_workers=1, evaluation_config={"explore": True})
              .exploration(explore=False, exploration_config={"type": "StochasticSampling"})
              .resources(num_gpus=0).framework("torch")
              .offline_data(input_="sampler", output=None)
              .multi_agent(policies={"a", "b"}, policy_mapping_fn=lambda agent, *a, **k: agent,
                           policies_to_train=["a"])
              .debugging(seed=1, log_level="ERROR")
              .reporting(metrics_num_episodes_for_smoothing=5))
    as_dict = config.to_dict()
    assert (as_dict["num_workers"], as_dict["num_envs_per_worker"], as_dict["batch_mode"]) == (
        0, 2, "complete_episodes")
    assert (as_dict["evaluation_num_episodes"], as_dict["evaluation_num_workers"]) == (3, 1)
    assert as_dict["env_task_fn"] is on_task and as_dict["policies_to_train"] == ["a"]
    assert config["gamma"] == 0.9 and config.seed == 1


def test_todays_names_and_build_algo():
    config = (DQNConfig().environment("CartPole-v1")
              .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
              .training(train_batch_size_per_learner=16, **DQN_TINY)
              .reporting(min_sample_timesteps_per_iteration=32)
              .learners(num_learners=0).api_stack(enable_rl_module_and_learner=True))
    assert config.algo_class.__name__ == "DQN"
    assert config.train_batch_size == 16 and config.num_envs_per_worker == 2
    ppo = PPOConfig().training(minibatch_size=16, num_epochs=2, train_batch_size_per_learner=64)
    assert (ppo.sgd_minibatch_size, ppo.num_sgd_iter, ppo.train_batch_size) == (16, 2, 64)
    algo = config.build_algo()
    result = algo.train()
    assert result["config"]["train_batch_size"] == 16
    np.testing.assert_equal(result["env_runners"]["episode_return_mean"],
                            result["episode_reward_mean"])  # NaN alike when none finished
    np.testing.assert_equal(result["episode_return_mean"], result["episode_reward_mean"])
    algo.stop()


@pytest.mark.parametrize("builder, call, message", [
    (PPOConfig, lambda c: c.training(lambda_=0.9, clipparam=0.1), "did you mean 'clip_param'"),
    (PPOConfig, lambda c: c.env_runners(num_env_runner=1), "did you mean 'num_env_runners'"),
    (PPOConfig, lambda c: c.evaluation(evaluation_intervall=1),
     "did you mean 'evaluation_interval'"),
    (PPOConfig, lambda c: c.environment("CartPole-v1", env_confg={}), "did you mean 'env_config'"),
    (PPOConfig, lambda c: c.debugging(sed=1), "did you mean 'seed'"),
    (PPOConfig, lambda c: c.training(gamma=0.9).rollouts(lr=1), r"set it with .training\(lr="),
    (DQNConfig, lambda c: c.training(n_steps=3), "did you mean 'n_step'"),
    (DQNConfig, lambda c: c.training(num_epochs=3), "setting of PPO, which DQN does not use"),
    (DQNConfig, lambda c: c.learners(num_learners=2), "num_learners=2"),
])
def test_unknown_arguments_say_what_was_meant(builder, call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(builder())


def test_unknown_attribute_and_dict_keys():
    with pytest.raises(AttributeError, match="did you mean 'train_batch_size'"):
        PPOConfig().train_batchsize
    from raylite.rllib.algorithms.dqn import DQN
    with pytest.raises(ValueError, match="unknown config key 'targt_network_update_freq'; did "
                                         "you mean 'target_network_update_freq'"):
        DQN(env="CartPole-v1", config={"targt_network_update_freq": 5})


def test_options_not_implemented_are_refused_by_name():
    with pytest.raises(ValueError, match="'render_env' must be one of False"):
        PPOConfig().environment(render_env=True)
    with pytest.raises(ValueError, match="evaluation_duration_unit' must be one of 'episodes'"):
        PPOConfig().evaluation(evaluation_duration_unit="timesteps")
    with pytest.raises(ValueError, match="observation_space .* differs from the env's"):
        (PPOConfig().environment("CartPole-v1", observation_space=gym.spaces.Box(-1, 1, (3,)))
         .training(**PPO_TINY).env_runners(num_env_runners=0).build())


@pytest.fixture(scope="module")
def ppo():
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
            .training(**PPO_TINY).debugging(seed=0).build())
    algo.train()
    yield algo
    algo.stop()


def test_algorithm_api_train_save_restore_evaluate(ppo, tmp_path):
    path = ppo.save(str(tmp_path / "a"))
    assert path.endswith("checkpoint-1")
    directory = ppo.save_to_path(str(tmp_path / "b"))
    assert directory == str(tmp_path / "b")
    obs = np.array([0.01, 0.02, -0.03, 0.04], np.float32)
    before = ppo.compute_single_action(obs, explore=False)
    ppo.train()
    ppo.restore_from_path(directory)
    assert ppo.compute_single_action(obs, explore=False) == before
    actions = ppo.compute_actions({"agent_0": obs, "agent_1": -obs}, explore=False)
    assert set(actions) == {"agent_0", "agent_1"} and actions["agent_0"] == before
    evaluation = ppo.evaluate()["evaluation"]
    assert evaluation["episodes_this_iter"] == 10 and evaluation["episode_reward_mean"] > 0


def test_policy_weights_model_and_dist_class(ppo):
    import torch
    from raylite.rllib._distributions import Categorical
    policy = ppo.get_policy()
    weights = policy.get_weights()
    assert policy.dist_class is Categorical
    model = policy.model
    assert isinstance(model, torch.nn.Module) and model.base_model is model
    assert "RayliteTorchModel" in repr(model)
    assert sum(p.numel() for p in model.parameters()) == sum(w.size for w in weights.values())
    logits, values = model(torch.zeros((1, 4)))
    assert logits.shape == (1, 2) and values.shape == (1,)
    changed = {k: v + 1.0 for k, v in weights.items()}
    policy.set_weights(changed)
    np.testing.assert_allclose(ppo.get_policy().get_weights()["policy/out/bias"],
                               changed["policy/out/bias"])
    policy.set_weights(weights)
    with pytest.raises(ValueError, match="unknown policy_id 'other'"):
        ppo.get_policy("other")


def test_workers_foreach_worker_and_local_worker(ppo):
    weights = ppo.workers.foreach_worker(lambda w: w.get_policy().get_weights())
    assert len(weights) == 1 and set(weights[0]) == set(ppo.get_policy().get_weights())
    assert ppo.workers.local_worker().get_policy() is not None
    assert ppo.env_runner_group is ppo.workers


def test_remote_workers_answer_foreach_worker(ray):
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=2)
            .training(**PPO_TINY).build())
    algo.train()
    sizes = algo.workers.foreach_worker(lambda w: w.env and w.env.num_envs)
    assert sizes == [None, 1, 1]  # the local worker samples nothing here, as in RLlib
    assert algo.workers.local_worker().get_policy().get_weights().keys() == \
        algo.get_policy().get_weights().keys()
    algo.stop()


def test_rl_module_forward_inference_on_torch_and_numpy(ppo):
    import torch
    module = ppo.get_module()
    obs = np.zeros((3, 4), np.float32)
    out = module.forward_inference({"obs": torch.from_numpy(obs)})
    assert isinstance(out["action_dist_inputs"], torch.Tensor)
    greedy = np.argmax(out["action_dist_inputs"][0].numpy())
    assert greedy == ppo.compute_single_action(obs[0], explore=False)
    assert module.forward_inference({"obs": obs})["action_dist_inputs"].shape == (3, 2)


def test_tf_policy_model_is_a_keras_model_that_summarizes(capsys):
    pytest.importorskip("tensorflow")
    algo = (DQNConfig().environment("CartPole-v1").framework("tf")
            .training(**DQN_TINY).reporting(min_sample_timesteps_per_iteration=16).build())
    model = algo.get_policy().model
    model.base_model.summary()
    out = capsys.readouterr().out
    params = sum(w.size for w in algo.get_policy().get_weights().values())
    assert f"Total params: {params:,}" in out
    q = np.asarray(model(np.zeros((2, 4), np.float32)))
    assert q.shape == (2, 2)
    algo.stop()


def test_get_preprocessor_flattens_dict_tuple_and_discrete_spaces():
    from raylite.rllib.models.preprocessors import get_preprocessor
    space = gym.spaces.Dict({"a": gym.spaces.Discrete(3),
                             "b": gym.spaces.Tuple((gym.spaces.Box(0, 1, (2,)),
                                                    gym.spaces.Discrete(2)))})
    prep = get_preprocessor(space)(space)
    assert prep.shape == (7,)
    vector = prep.transform({"a": 2, "b": (np.array([0.5, 0.25], np.float32), 1)})
    assert vector.tolist() == [0.0, 0.0, 1.0, 0.5, 0.25, 0.0, 1.0]


class DictObs(gym.Env):
    """Dict and Tuple observations (flattened by the preprocessor): find the marked slot."""

    observation_space = gym.spaces.Dict({
        "slot": gym.spaces.Discrete(3),
        "extra": gym.spaces.Tuple((gym.spaces.Box(-1, 1, (2,), np.float32),
                                   gym.spaces.Discrete(2)))})
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.slot = int(self.np_random.integers(3))
        return self._obs(), {}

    def _obs(self):
        return {"slot": self.slot, "extra": (np.zeros(2, np.float32), 1)}

    def step(self, action):
        return self._obs(), float(action == self.slot), True, False, {}


@pytest.mark.parametrize("config_class", [PPOConfig, DQNConfig])
def test_dict_and_tuple_observations_are_flattened_for_training(config_class):
    config = config_class().environment(DictObs).debugging(seed=0)
    if config_class is PPOConfig:
        config = config.env_runners(num_env_runners=0).training(**PPO_TINY)
    else:
        config = config.training(**DQN_TINY).reporting(min_sample_timesteps_per_iteration=32)
    algo = config.build()
    result = algo.train()
    assert result["timesteps_total"] >= 32
    obs = {"slot": 2, "extra": (np.zeros(2, np.float32), 0)}
    assert algo.compute_single_action(obs, explore=False) in (0, 1, 2)
    assert algo.get_policy().get_weights()  # the first layer takes the 7 flattened inputs
    first = [w for name, w in algo.get_policy().get_weights().items()
             if name.endswith("hidden_0/kernel")][0]
    assert first.shape[0] == 3 + 2 + 2
    algo.stop()


def test_custom_torch_model_from_the_model_catalog(tmp_path):
    import torch
    from raylite.rllib.algorithms.algorithm import Algorithm
    from raylite.rllib.models import ModelCatalog
    from raylite.rllib.models.torch.torch_modelv2 import TorchModelV2

    ModelCatalog.register_custom_model("tiny_net", TinyNet)
    algo = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
            .training(train_batch_size=64, sgd_minibatch_size=32, num_sgd_iter=2,
                      model={"custom_model": "tiny_net", "custom_model_config": {"width": 5}})
            .debugging(seed=0).build())
    weights = algo.get_policy().get_weights()
    assert weights["torso.weight"].shape == (5, 4)  # the module's own parameter names
    algo.train()
    moved = algo.get_policy().get_weights()
    assert not np.allclose(moved["torso.weight"], weights["torso.weight"])
    obs = np.array([0.0, 0.1, 0.02, -0.1], np.float32)
    action = algo.compute_single_action(obs, explore=False)
    path = algo.save(str(tmp_path))
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    assert restored.compute_single_action(obs, explore=False) == action
    restored.stop()
    with pytest.raises(ValueError, match="unknown custom_model 'tiny_nett'; did you mean"):
        PPOConfig().environment("CartPole-v1").training(
            model={"custom_model": "tiny_nett"}).build()
    with pytest.raises(TypeError, match="is not a torch.nn.Module"):
        ModelCatalog.register_custom_model("bad", dict)
    with pytest.raises(ValueError, match="'conv_filters' must be None or a list of"):
        PPOConfig().training(model={"conv_filters": [[16, "3x3"]]})
    assert issubclass(TinyNet, TorchModelV2) and issubclass(TinyNet, torch.nn.Module)


def _tiny_net_class():
    import torch
    from raylite.rllib.models.torch.torch_modelv2 import TorchModelV2

    class TinyNetImpl(TorchModelV2, torch.nn.Module):
        def __init__(self, obs_space, action_space, num_outputs, model_config, name):
            TorchModelV2.__init__(self, obs_space, action_space, num_outputs, model_config, name)
            torch.nn.Module.__init__(self)
            width = model_config["custom_model_config"]["width"]
            self.torso = torch.nn.Linear(obs_space.shape[0], width)
            self.logits = torch.nn.Linear(width, num_outputs)
            self.value = torch.nn.Linear(width, 1)

        def forward(self, input_dict, state, seq_lens):
            hidden = torch.tanh(self.torso(input_dict["obs"]))
            self._value = self.value(hidden)
            return self.logits(hidden), state

        def value_function(self):
            return self._value.reshape(-1)

    return TinyNetImpl


try:
    TinyNet = _tiny_net_class()
except ImportError:  # pragma: no cover - torch is missing: the test is skipped above
    TinyNet = None


def test_hints_warn_once():
    from raylite.rllib import _algorithm
    _algorithm._WARNED.discard("evaluation_num_workers")
    config = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
              .training(**PPO_TINY).evaluation(evaluation_num_workers=2))
    with pytest.warns(UserWarning, match="evaluation_num_workers: evaluation runs in the "):
        config.build().stop()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config.build().stop()  # once only


def test_custom_keras_model_from_the_model_catalog():
    tf = pytest.importorskip("tensorflow")
    from raylite.rllib.models import ModelCatalog
    from raylite.rllib.models.tf.tf_modelv2 import TFModelV2

    class KerasTiny(TFModelV2):
        def __init__(self, obs_space, action_space, num_outputs, model_config, name):
            super().__init__(obs_space, action_space, num_outputs, model_config, name)
            inputs = tf.keras.layers.Input(shape=obs_space.shape)
            hidden = tf.keras.layers.Dense(6, activation="tanh")(inputs)
            logits = tf.keras.layers.Dense(num_outputs)(hidden)
            value = tf.keras.layers.Dense(1)(hidden)
            self.base_model = tf.keras.Model(inputs, [logits, value])

    ModelCatalog.register_custom_model("keras_tiny", KerasTiny)
    with pytest.raises(ValueError, match="is a Keras \\(TFModelV2\\) model: use framework=tf"):
        PPOConfig().environment("CartPole-v1").training(
            model={"custom_model": "keras_tiny"}).build()
    algo = (PPOConfig().environment("CartPole-v1").framework("tf")
            .env_runners(num_env_runners=0)
            .training(train_batch_size=64, sgd_minibatch_size=32, num_sgd_iter=2,
                      model={"custom_model": "keras_tiny"}).debugging(seed=0).build())
    weights = algo.get_policy().get_weights()
    assert [w.shape for w in weights.values()] == [(4, 6), (6,), (6, 2), (2,), (6, 1), (1,)]
    algo.train()
    moved = algo.get_policy().get_weights()
    assert any(not np.allclose(moved[k], weights[k]) for k in weights)
    assert algo.compute_single_action(np.zeros(4, np.float32), explore=False) in (0, 1)
    algo.stop()
