"""raylite.rllib's units against hand-computed values: GAE, the rollout buffer, the action
distributions, the PPO loss (numpy, torch and TensorFlow give the same numbers), the
observation filter, the config and the naming of environments. No runtime needed."""

import math

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]

from raylite.rllib import _envs
from raylite import _registry
from raylite.rllib._buffer import (
    RolloutBuffer,
    concat_batches,
    minibatches,
    standardize,
)
from raylite.rllib._config import AlgorithmConfig
from raylite.rllib._distributions import NUMPY_OPS, Categorical, DiagGaussian
from raylite.rllib._filters import MeanStdFilter
from raylite.rllib._gae import compute_gae
from raylite.rllib._model import ModelSpec, forward, init_weights
from raylite.rllib._ppo import PPOConfig, ppo_loss, update_kl_coeff

# ---- GAE ------------------------------------------------------------------------------------------
GAMMA, LAMBDA = 0.9, 0.8


@pytest.mark.parametrize("dones, last_value, advantages", [
    # episode ends at the last step: the bootstrap value is ignored
    ([False, False, True], 10.0, [3.8696, 3.43, 1.5]),
    # fragment cut mid-episode: bootstrapped by the last value
    ([False, False, False], 10.0, [8.5352, 9.91, 10.5]),
    # an episode ends in the middle: nothing flows across it
    ([False, True, False], 10.0, [2.12, 1.0, 10.5]),
])
def test_gae_against_hand_computed_values(dones, last_value, advantages):
    rewards, values = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 1.5])
    adv, ret = compute_gae(rewards, values, np.array(dones), np.array(last_value), GAMMA, LAMBDA)
    np.testing.assert_allclose(adv, advantages, rtol=1e-5)
    np.testing.assert_allclose(ret, np.array(advantages) + values, rtol=1e-5)


def test_gae_vectorised_over_envs_equals_one_env_at_a_time():
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    dones, last = rng.random((7, 3)) < 0.3, rng.normal(size=3)
    adv, ret = compute_gae(rewards, values, dones, last, 0.99, 0.95)
    for env in range(3):
        one_adv, one_ret = compute_gae(rewards[:, env], values[:, env], dones[:, env], last[env],
                                       0.99, 0.95)
        np.testing.assert_allclose(adv[:, env], one_adv, rtol=1e-5)
        np.testing.assert_allclose(ret[:, env], one_ret, rtol=1e-5)


def test_gae_with_lambda_one_and_zero_values_is_the_discounted_return():
    adv, _ = compute_gae(np.ones(3), np.zeros(3), np.zeros(3, bool), np.array(0.0), 0.5, 1.0)
    np.testing.assert_allclose(adv, [1.75, 1.5, 1.0])


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        compute_gae(np.ones(3), np.ones(2), np.zeros(3, bool), np.array(0.0), 0.9, 0.9)


# ---- the rollout buffer ------------------------------------------------------------------------------
def _fill(buffer, steps, valid=None):
    for t in range(steps):
        n = buffer.num_envs
        buffer.add(obs=np.full((n, 2), t, np.float32), actions=np.arange(n),
                   action_logp=np.zeros(n), action_dist_inputs=np.zeros((n, 2)),
                   vf_preds=np.zeros(n, np.float32), rewards=np.ones(n, np.float32),
                   dones=np.zeros(n, bool), valid=None if valid is None else valid[t])


def test_buffer_flattens_env_by_env_in_time_order_with_gae_done():
    buffer = RolloutBuffer(num_envs=2)
    _fill(buffer, 3)
    batch = buffer.finish(last_values=np.array([0.0, 10.0]), gamma=0.5, lambda_=1.0)
    assert batch["obs"][:, 0].tolist() == [0, 1, 2, 0, 1, 2]
    assert batch["actions"].tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(batch["value_targets"], [1.75, 1.5, 1.0, 3.0, 4.0, 6.0])
    assert len(buffer) == 0  # emptied


def test_buffer_keeps_only_valid_steps():
    buffer = RolloutBuffer(num_envs=2)
    _fill(buffer, 3, valid=[[True, True], [True, False], [True, False]])
    batch = buffer.finish(last_values=np.zeros(2), gamma=0.9, lambda_=0.9)
    assert batch["actions"].tolist() == [0, 0, 0, 1]


def test_buffer_checks_rows_per_env():
    buffer = RolloutBuffer(num_envs=2)
    with pytest.raises(ValueError, match="one per env"):
        buffer.add(obs=np.zeros((3, 2)), actions=np.zeros(2), action_logp=np.zeros(2),
                   action_dist_inputs=np.zeros((2, 2)), vf_preds=np.zeros(2),
                   rewards=np.zeros(2), dones=np.zeros(2, bool))


def test_minibatches_cover_rows_once_per_epoch_and_standardize():
    rng = np.random.default_rng(1)
    chunks = list(minibatches(10, 3, rng))
    assert [len(c) for c in chunks] == [3, 3, 3]
    assert len(set(np.concatenate(chunks).tolist())) == 9
    assert [len(c) for c in minibatches(2, 3, rng)] == [2]
    values = standardize(np.array([1.0, 2.0, 3.0]))
    assert abs(values.mean()) < 1e-6 and abs(values.std() - 1) < 1e-6
    merged = concat_batches([{"a": np.zeros(2)}, {"a": np.ones(3)}])
    assert merged["a"].tolist() == [0, 0, 1, 1, 1]


# ---- distributions ---------------------------------------------------------------------------------
def test_categorical_against_hand_computed_values():
    dist = Categorical(NUMPY_OPS, np.array([[0.0, 0.0], [math.log(3), 0.0]]))
    np.testing.assert_allclose(dist.logp(np.array([0, 0])), [math.log(0.5), math.log(0.75)])
    np.testing.assert_allclose(dist.entropy(), [math.log(2), 0.5623351446], rtol=1e-6)
    uniform = Categorical(NUMPY_OPS, np.zeros((2, 2)))
    np.testing.assert_allclose(uniform.kl(dist), [0.0, 0.1438410362], atol=1e-7)
    assert dist.deterministic().tolist() == [0, 0]
    draws = Categorical(NUMPY_OPS, np.tile([[math.log(3), 0.0]], (4000, 1))).sample(
        np.random.default_rng(0))
    assert abs((draws == 0).mean() - 0.75) < 0.03


def test_diag_gaussian_against_hand_computed_values():
    p = DiagGaussian(NUMPY_OPS, np.array([[0.0, 0.0]]))            # N(0, 1)
    q = DiagGaussian(NUMPY_OPS, np.array([[1.0, math.log(2.0)]]))  # N(1, 2^2)
    np.testing.assert_allclose(p.logp(np.array([[1.0]])), [-0.5 - 0.5 * math.log(2 * math.pi)])
    np.testing.assert_allclose(p.entropy(), [0.5 * math.log(2 * math.pi * math.e)])
    np.testing.assert_allclose(p.kl(q), [math.log(2) + 2 / 8 - 0.5])
    assert q.deterministic().tolist() == [[1.0]]


# ---- the PPO loss ---------------------------------------------------------------------------------
HAND_BATCH = {
    "actions": np.array([0, 0]),
    "action_logp": np.log(np.array([0.5, 0.5])),
    "action_dist_inputs": np.zeros((2, 2)),
    "vf_preds": np.array([0.0, 0.0]),
    "advantages": np.array([1.0, 2.0]),
    "value_targets": np.array([2.0, 1.0]),
}
HAND_COEFFS = {"clip_param": 0.2, "vf_clip_param": 1.5, "vf_loss_coeff": 0.1,
               "entropy_coeff": 0.01, "kl_coeff": 0.5}


def test_ppo_loss_against_hand_computed_values():
    """New policy [0.5, 0.5] and [0.75, 0.25] against old [0.5, 0.5]: ratios 1 and 1.5,
    the second clipped at 1.2; values 1 and 3 against targets 2 and 1, from old values 0."""
    logits = np.array([[0.0, 0.0], [math.log(3), 0.0]])
    total, stats = ppo_loss(NUMPY_OPS, Categorical, logits, np.array([1.0, 3.0]), HAND_BATCH,
                            HAND_COEFFS)
    assert stats["policy_loss"] == pytest.approx(-(1.0 + 2.0 * 1.2) / 2)
    assert stats["approx_kl"] == pytest.approx((0.5 - math.log(1.5)) / 2)
    assert stats["kl"] == pytest.approx(0.1438410362 / 2)
    assert stats["entropy"] == pytest.approx((math.log(2) + 0.5623351446) / 2)
    assert stats["vf_loss"] == pytest.approx((1.0 + 4.0) / 2)   # max(clipped, unclipped)
    assert stats["vf_explained_var"] == pytest.approx(1 - 2.25 / 0.25)
    expected = -1.7 + 0.5 * 0.0719205181 + 0.1 * 2.5 - 0.01 * 0.6277411
    assert total == pytest.approx(expected, rel=1e-6)


def test_ppo_loss_value_clipping_limits_the_step_from_the_old_value():
    # moving the value from 0 to 3 towards a target of 5: the clipped value (1.5) counts
    batch = {**HAND_BATCH, "value_targets": np.array([5.0, 5.0])}
    _, stats = ppo_loss(NUMPY_OPS, Categorical, np.zeros((2, 2)), np.array([3.0, 3.0]), batch,
                        HAND_COEFFS)
    assert stats["vf_loss"] == pytest.approx((5.0 - 1.5) ** 2)


def test_kl_coefficient_adapts_towards_the_target():
    assert update_kl_coeff(0.2, 0.05, 0.01) == pytest.approx(0.3)
    assert update_kl_coeff(0.2, 0.001, 0.01) == pytest.approx(0.1)
    assert update_kl_coeff(0.2, 0.01, 0.01) == 0.2


def _random_case(discrete: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    spec = ModelSpec(obs_size=3, discrete=discrete, action_size=2, hiddens=(8, 8),
                     activation="tanh", vf_share_layers=not discrete, free_log_std=not discrete)
    weights = init_weights(spec, seed)
    for name in weights:  # make every output matter
        weights[name] = weights[name] + rng.normal(0, 0.3, weights[name].shape).astype(np.float32)
    n = 16
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    old_inputs, old_values = forward(NUMPY_OPS, weights, obs, spec)
    old_inputs = old_inputs + rng.normal(0, 0.2, old_inputs.shape).astype(np.float32)
    old = spec.dist_class(NUMPY_OPS, old_inputs)
    actions = old.sample(rng)
    batch = {"obs": obs, "actions": actions, "action_logp": old.logp(actions).astype(np.float32),
             "action_dist_inputs": old_inputs.astype(np.float32),
             "vf_preds": (old_values + rng.normal(0, 1, n)).astype(np.float32),
             "advantages": rng.normal(size=n).astype(np.float32),
             "value_targets": rng.normal(size=n).astype(np.float32)}
    return spec, weights, batch


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("discrete", [True, False])
def test_frameworks_compute_the_numpy_loss_and_step(framework, discrete):
    """One loss, three backends: the learner's stats before its step equal numpy's."""
    spec, weights, batch = _random_case(discrete)
    dist_inputs, values = forward(NUMPY_OPS, weights, batch["obs"], spec)
    _, expected = ppo_loss(NUMPY_OPS, spec.dist_class, dist_inputs, values, batch, HAND_COEFFS)
    if framework == "torch":
        pytest.importorskip("torch")
        from raylite.rllib._policy_torch import TorchPolicy as Learner
    else:
        pytest.importorskip("tensorflow")
        from raylite.rllib._policy_tf import TFPolicy as Learner
    learner = Learner(spec, weights, ppo_loss, lr=1e-3, grad_clip=0.5, seed=0, num_threads=1)
    stats = learner.learn_on_minibatch(batch, HAND_COEFFS)
    for key, value in expected.items():
        assert stats[key] == pytest.approx(float(value), rel=1e-4, abs=1e-5), key
    moved = learner.get_weights()
    assert set(moved) == set(weights)
    assert any(not np.allclose(moved[k], weights[k]) for k in weights)
    learner.set_weights(weights)
    assert all(np.allclose(learner.get_weights()[k], weights[k]) for k in weights)


# ---- observation filter -----------------------------------------------------------------------------
def test_mean_std_filter_merges_worker_deltas_exactly():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(300, 2))
    workers = [MeanStdFilter((2,)), MeanStdFilter((2,))]
    workers[0](data[:100])
    workers[1](data[100:250])
    trainer = MeanStdFilter((2,))
    for worker in workers:
        trainer.merge_delta(worker.take_delta())
    assert trainer.running.count == 250
    np.testing.assert_allclose(trainer.running.mean, data[:250].mean(axis=0))
    np.testing.assert_allclose(trainer.running.std, data[:250].std(axis=0, ddof=1))
    workers[0].set_state(trainer.get_state())
    out = workers[0](data[250:], update=False)
    np.testing.assert_allclose(out, (data[250:] - data[:250].mean(0)) / data[:250].std(0, ddof=1),
                               rtol=1e-4)
    assert workers[0].running.count == 250  # update=False leaves the stats alone
    assert np.abs(workers[0](np.full((1, 2), 1e6), update=False)).max() == 10.0  # clipped


# ---- config -------------------------------------------------------------------------------------
def test_config_keys_and_aliases():
    config = AlgorithmConfig.from_dict({"lambda": 0.1, "num_epochs": 6, "model": {
        "fcnet_hiddens": [64]}})
    assert (config.lambda_, config.num_sgd_iter, config.model.fcnet_hiddens) == (0.1, 6, [64])
    assert config.to_dict()["lambda"] == 0.1
    assert AlgorithmConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("config, message", [
    ({"lamda": 0.1}, "unknown config key 'lamda'; did you mean 'lambda'"),
    ({"num_sgd_iters": 3}, "did you mean 'num_sgd_iter'"),
    ({"model": {"fcnet_hidden": [8]}}, "unknown model key 'fcnet_hidden'; did you mean 'fcnet_hiddens'"),
    ({"framework": "pytorch"}, "'framework' must be one of 'torch', 'tf'"),
    ({"gamma": 1.5}, "'gamma' must be a number between 0 and 1"),
    ({"num_workers": -1}, "'num_workers' must be a whole number >= 0"),
    ({"train_batch_size": 100, "sgd_minibatch_size": 200}, "must not exceed train_batch_size"),
    ({"observation_filter": "MeanStd"}, "'NoFilter', 'MeanStdFilter'"),
])
def test_bad_config_is_an_error_saying_what_would_be_right(config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        AlgorithmConfig.from_dict(config)


def test_ppo_config_builder_sets_the_same_fields():
    config = (PPOConfig().environment("Pendulum-v1").framework("tf")
              .env_runners(num_env_runners=1, num_envs_per_env_runner=10)
              .training(lr=3e-4, gamma=0.95, lambda_=0.1, num_epochs=6, minibatch_size=64,
                        train_batch_size_per_learner=2000, model={"fcnet_activation": "relu"})
              .rl_module(model_config={"fcnet_hiddens": [32, 32]}).debugging(seed=3))
    as_dict = config.to_dict()
    assert (as_dict["env"], as_dict["framework"], as_dict["num_workers"]) == ("Pendulum-v1", "tf", 1)
    assert (as_dict["lambda"], as_dict["num_sgd_iter"], as_dict["sgd_minibatch_size"]) == (0.1, 6, 64)
    assert as_dict["model"]["fcnet_activation"] == "relu"
    assert as_dict["model"]["fcnet_hiddens"] == [32, 32]
    assert config.lambda_ == 0.1 and config.seed == 3
    with pytest.raises(TypeError, match=r"does not take 'lr'; set it with .training\(lr=...\)"):
        config.env_runners(lr=0.1)
    with pytest.raises(TypeError, match="did you mean 'lambda_'"):
        config.training(lambd=0.1)
    with pytest.raises(ValueError, match="'lr' must be a number > 0"):
        config.training(lr=-1)


# ---- environments ------------------------------------------------------------------------------
def test_unknown_env_names_the_closest_ids_including_legacy_ones():
    with pytest.raises(ValueError, match=r"did you mean Pendulum-v0 / Pendulum-v1\?"):
        _envs.resolve_env("Pendulumv0")
    with pytest.raises(ValueError, match="CartPole-v1"):
        _envs.resolve_env("Cartpole-v1x")
    with pytest.raises(ValueError, match="unknown environment 'NoSuchEnv-v0'"):
        _envs.resolve_env("NoSuchEnv-v0")


def test_legacy_id_runs_todays_version_after_a_one_line_notice(capsys):
    _envs._NOTICED.discard("Pendulum-v0")
    spec = _envs.resolve_env("Pendulum-v0")
    assert (spec.kind, spec.name) == ("gymnasium", "Pendulum-v1")
    _envs.resolve_env("Pendulum-v0")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Pendulum-v0" in err and "using Pendulum-v1" in err


def test_book_maze_is_registered_and_wrapped_from_the_old_gym_api():
    spec = _envs.resolve_env("maze", {"max_steps": 3})
    env = spec.make()
    assert isinstance(env, _envs.LegacyEnv)
    obs, info = env.reset(seed=0)
    assert (obs, info, env.observation_space.n, env.action_space.n) == (0, {}, 25, 4)
    assert env.step(3)[:4] == (1, 0, False, False)
    env.step(3)
    assert env.step(3)[2:4] == (False, True)  # the step limit truncates, old-gym style
    size, flatten = _envs.preprocessor(env.observation_space)
    assert size == 25 and flatten(7).argmax() == 7


def test_env_classes_module_strings_and_registered_creators():
    from raylite.rllib.examples.maze import StepLimitedMaze
    by_string = _envs.resolve_env("raylite.rllib.examples.maze.StepLimitedMaze")
    assert by_string.kind == "class" and by_string.target is StepLimitedMaze
    assert _envs.resolve_env(StepLimitedMaze).make().reset()[0] == 0
    seen = {}

    def creator(env_config):
        seen.update(env_config, index=env_config.vector_index)
        return StepLimitedMaze(2)

    _registry.register_env("tiny_maze_for_test", creator)
    env = _envs.resolve_env("tiny_maze_for_test", {"a": 1}).make(vector_index=3)
    assert seen == {"a": 1, "index": 3} and env.reset()[0] == 0
    keyword_style = _envs.resolve_env("gymnasium.envs.classic_control.PendulumEnv", {"g": 9.0})
    assert keyword_style.make().unwrapped.g == 9.0  # Gymnasium classes take keywords
    with pytest.raises(ValueError, match="has no attribute 'Nope'"):
        _envs.resolve_env("raylite.rllib.examples.maze.Nope")
    with pytest.raises(TypeError, match="needs a function"):
        _registry.register_env("bad", 3)


def test_vector_env_resets_finished_episodes_and_counts_returns():
    env = _envs.VectorEnv(_envs.resolve_env("maze", {"max_steps": 2}), num_envs=2, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 25)
    env.step([0, 3])
    next_obs, _, terminated, truncated, final = env.step([0, 3])
    assert truncated.tolist() == [True, True] and not terminated.any()
    assert next_obs.argmax(1).tolist() == [0, 0]      # reset
    assert final.argmax(1).tolist() == [10, 2]        # where the episodes ended
    assert env.take_episodes() == [(0.0, 2), (0.0, 2)]


def test_unreachable_stop_criterion_is_named_with_the_reward_range():
    spec = _envs.resolve_env("Pendulum-v1")
    [warning] = _envs.check_stop_criteria({"episode_reward_mean": 800}, spec)
    assert "can never be reached" in warning and "[-3254.7, 0]" in warning
    assert "did you mean -800" in warning
    assert _envs.check_stop_criteria({"episode_reward_mean": -800}, spec) == []
    cartpole = _envs.resolve_env("CartPole-v1")
    assert "[1, 500]" in _envs.check_stop_criteria({"episode_reward_mean": 600}, cartpole)[0]
    assert _envs.check_stop_criteria({"episode_reward_mean": 1e9}, _envs.resolve_env("maze")) == []


def test_builder_checks_one_call_as_a_whole():
    """Keys of one .training() call may depend on each other (a smaller batch and minibatch
    together); the call is validated once, after all its keys are set."""
    config = PPOConfig().training(train_batch_size=64, sgd_minibatch_size=32).to_dict()
    assert (config["train_batch_size"], config["sgd_minibatch_size"]) == (64, 32)
    with pytest.raises(ValueError, match="must not exceed train_batch_size"):
        PPOConfig().training(train_batch_size=64, sgd_minibatch_size=128)
