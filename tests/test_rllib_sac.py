"""SAC: the loss against numpy, each part reaching only its own parameters, the algorithm."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]

from raylite.rllib._distributions import LOG_2PI, NUMPY_OPS
from raylite.rllib._model import init_weights
from raylite.rllib._sac import SACConfig, sac_loss
from raylite.rllib._sac_model import SACModelSpec, SquashedGaussian

TINY = {"train_batch_size": 16, "num_steps_sampled_before_learning_starts": 16,
        "min_sample_timesteps_per_iteration": 40, "q_model_config": {"fcnet_hiddens": [8]},
        "policy_model_config": {"fcnet_hiddens": [8]}}


def _case(twin_q=True, seed=0):
    rng = np.random.default_rng(seed)
    spec = SACModelSpec(obs_size=3, action_size=2, policy_hiddens=(8,), q_hiddens=(8,),
                        twin_q=twin_q, initial_alpha=0.5)
    weights = {k: (v + rng.normal(0, 0.3, np.shape(v))).astype(np.float32)
               for k, v in init_weights(spec, seed).items()}
    weights["log_alpha"] = np.array(np.log(0.5), np.float32)
    target = {k: (weights[k] + rng.normal(0, 0.3, np.shape(weights[k]))).astype(np.float32)
              for k in spec.target_names()}
    n = 10
    batch = {"obs": rng.normal(size=(n, 3)).astype(np.float32),
             "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
             "rewards": rng.normal(size=n).astype(np.float32),
             "new_obs": rng.normal(size=(n, 3)).astype(np.float32),
             "terminateds": (rng.random(n) < 0.3).astype(np.float32),
             "discounts": np.full(n, 0.99, np.float32), "weights": np.ones(n, np.float32),
             "noise": rng.normal(size=(n, 2)).astype(np.float32),
             "next_noise": rng.normal(size=(n, 2)).astype(np.float32)}
    return spec, weights, target, batch


def test_squashed_gaussian_log_probability_by_hand():
    inputs = np.array([[0.5, -1.0]], np.float32)   # mean 0.5, log std -1
    noise = np.array([[0.3]], np.float32)
    action, logp = SquashedGaussian(NUMPY_OPS, inputs).sample_with_logp(noise)
    u = 0.5 + np.exp(-1.0) * 0.3
    expected = (-0.5 * 0.3 ** 2 + 1.0 - 0.5 * LOG_2PI) - np.log(1 - np.tanh(u) ** 2)
    assert action[0, 0] == pytest.approx(np.tanh(u), rel=1e-6)
    assert logp[0] == pytest.approx(expected, rel=1e-5)


def test_sac_loss_targets_by_hand():
    spec, weights, target, batch = _case(twin_q=False)
    _, stats = sac_loss(NUMPY_OPS, weights, target, batch, {"target_entropy": -2.0}, spec)
    from raylite.rllib._sac_model import policy_inputs, q_value
    next_dist = SquashedGaussian(NUMPY_OPS, policy_inputs(NUMPY_OPS, weights, batch["new_obs"], spec))
    next_actions, next_logp = next_dist.sample_with_logp(batch["next_noise"])
    q_next = q_value(NUMPY_OPS, target, "q1", batch["new_obs"], next_actions, spec)
    y = batch["rewards"] + 0.99 * (1 - batch["terminateds"]) * (q_next - 0.5 * next_logp)
    q = q_value(NUMPY_OPS, weights, "q1", batch["obs"], batch["actions"], spec)
    np.testing.assert_allclose(stats["td_error"], q - y, rtol=1e-4, atol=1e-5)
    assert float(stats["alpha_value"]) == pytest.approx(0.5)


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_learners_compute_numpys_sac_losses_and_step_each_group(framework):
    """The learners compute numpy's three losses and step every group with its own rate."""
    spec, weights, target, batch = _case()
    coeffs = {"target_entropy": -2.0}
    _, expected = sac_loss(NUMPY_OPS, weights, target, batch, coeffs, spec)
    if framework == "torch":
        pytest.importorskip("torch")
        from raylite.rllib._policy_torch import TorchPolicy as Learner
    else:
        pytest.importorskip("tensorflow")
        from raylite.rllib._policy_tf import TFPolicy as Learner
    groups = {"policy/": 1e-2, "q1/": 1e-2, "q2/": 1e-2, "log_alpha": 1e-2}
    learner = Learner(spec, weights, sac_loss, lr=groups, seed=0,
                      target_names=spec.target_names())
    learner.set_target_weights(target)
    stats = learner.learn_on_minibatch(batch, coeffs)
    for key in ("critic_loss", "actor_loss", "alpha_loss"):
        assert stats[key] == pytest.approx(float(expected[key]), rel=1e-4, abs=1e-5), key
    moved = learner.get_weights()
    assert all(not np.allclose(moved[k], weights[k]) for k in ("policy/out/kernel",
                                                               "q1/out/kernel", "q2/out/kernel",
                                                               "log_alpha"))
    learner.update_target(0.5)
    np.testing.assert_allclose(learner.get_target_weights()["q1/out/bias"],
                               0.5 * moved["q1/out/bias"] + 0.5 * target["q1/out/bias"],
                               rtol=1e-5)
    assert "policy/out/bias" not in learner.get_target_weights()


def test_actor_loss_does_not_train_the_critic():
    """With only the actor's part of the loss, the Q networks get no gradient."""
    torch = pytest.importorskip("torch")
    from raylite.rllib._policy_torch import TORCH_OPS
    spec, weights, target, batch = _case()
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    _, stats = sac_loss(TORCH_OPS, params, {k: torch.tensor(v) for k, v in target.items()},
                        tensors, {"target_entropy": -2.0}, spec)
    stats["actor_loss"].backward(retain_graph=True)
    assert params["q1/out/kernel"].grad is None and params["log_alpha"].grad is None
    assert params["policy/out/kernel"].grad.abs().sum() > 0
    for p in params.values():
        p.grad = None
    stats["critic_loss"].backward(retain_graph=True)
    assert params["policy/out/kernel"].grad is None and params["log_alpha"].grad is None
    assert params["q2/out/kernel"].grad.abs().sum() > 0
    for p in params.values():
        p.grad = None
    stats["alpha_loss"].backward()
    assert params["policy/out/kernel"].grad is None and params["q1/out/kernel"].grad is None


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_sac_trains_saves_and_restores(framework, tmp_path):
    from raylite.rllib.algorithms.algorithm import Algorithm
    algo = (SACConfig().environment("Pendulum-v1").framework(framework)
            .training(**{k: v for k, v in TINY.items() if k != "min_sample_timesteps_per_iteration"},
                      twin_q=framework == "torch", n_step=2)
            .reporting(min_sample_timesteps_per_iteration=40).debugging(seed=0).build())
    result = algo.train()
    stats = result["info"]["learner"]["default_policy"]["learner_stats"]
    assert result["timesteps_total"] == 40 and stats["num_updates"] == 25
    assert np.isfinite(stats["critic_loss"]) and stats["alpha_value"] < 1.0
    action = algo.compute_single_action(np.zeros(3, np.float32), explore=False)
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    path = algo.save(str(tmp_path))
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    assert type(restored).__name__ == "SAC"
    np.testing.assert_allclose(restored.compute_single_action(np.zeros(3, np.float32),
                                                              explore=False), action)
    restored.stop()


def test_discrete_actions_are_an_error_naming_algorithms_that_fit():
    with pytest.raises(ValueError, match="SAC needs a continuous .* use DQN or PPO"):
        SACConfig().environment("CartPole-v1").build()
