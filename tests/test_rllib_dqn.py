"""DQN: its small parts against hand-computed values, then the algorithm end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]

from raylite.rllib._config import AlgorithmConfig
from raylite.rllib._distributions import NUMPY_OPS
from raylite.rllib._dqn import DQNConfig, make_dqn_loss
from raylite.rllib._exploration import PiecewiseSchedule, epsilon_greedy, epsilon_schedule
from raylite.rllib._model import init_weights
from raylite.rllib._q_model import QModelSpec, q_values
from raylite.rllib._replay_buffer import (
    NStepCollector,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumTree,
    make_replay_buffer,
    n_step_transitions,
)

SMALL = {"model": {"fcnet_hiddens": [16]}, "hiddens": [16],
         "min_sample_timesteps_per_iteration": 64,
         "num_steps_sampled_before_learning_starts": 32}


# ---- n-step transitions -------------------------------------------------------------------------
def _fragment(rewards, terminateds, truncateds):
    length = len(rewards)
    rewards = np.array(rewards, np.float32)[:, None]
    terminateds = np.array(terminateds)[:, None]
    dones = terminateds | np.array(truncateds)[:, None]
    return {"obs": np.arange(length, dtype=np.float32).reshape(length, 1, 1),
            "actions": np.zeros((length, 1), np.int64), "rewards": rewards,
            "new_obs": np.arange(1, length + 1, dtype=np.float32).reshape(length, 1, 1),
            "terminateds": terminateds, "dones": dones}


def test_n_step_returns_stop_at_episode_ends_and_the_fragment_end():
    gamma = 0.5
    steps = _fragment([1, 2, 4, 8, 16], [False, True, False, False, False],
                      [False, False, False, True, False])
    out = n_step_transitions(steps, 3, gamma)
    # step 0: 1 + 0.5 * 2, then the episode ended (terminated) at step 1
    # step 2: 4 + 0.5 * 8, then it was truncated at step 3 (bootstrapped, not terminated)
    # step 4: the fragment ends after one step
    assert out["rewards"].tolist() == [2.0, 2.0, 8.0, 8.0, 16.0]
    assert out["new_obs"][:, 0].tolist() == [2.0, 2.0, 4.0, 4.0, 5.0]
    assert out["terminateds"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert out["discounts"].tolist() == [0.25, 0.5, 0.25, 0.5, 0.5]


def test_one_step_transitions_are_the_steps_themselves_env_by_env():
    steps = _fragment([1, 1], [False, False], [False, False])
    two_envs = {k: np.concatenate([v, v * (10 if k in ("obs", "new_obs") else 1)], axis=1)
                for k, v in steps.items()}
    out = n_step_transitions(two_envs, 1, 0.9)
    assert out["obs"][:, 0].tolist() == [0.0, 1.0, 0.0, 10.0]
    assert out["discounts"] == pytest.approx([0.9] * 4)


def test_n_step_rows_do_not_stop_at_fragment_ends():
    """Fragments of 4 steps give the rows the whole run gives, each once, every one summing
    n steps unless its episode ended first (RLlib's episode buffers do not cut at fragments)."""
    rng = np.random.default_rng(0)
    length, num_envs, gamma = 40, 2, 0.9
    terminateds = rng.random((length, num_envs)) < 0.1
    truncateds = ~terminateds & (rng.random((length, num_envs)) < 0.05)
    steps = {"obs": rng.standard_normal((length, num_envs, 3)).astype(np.float32),
             "actions": rng.integers(0, 2, (length, num_envs)),
             "rewards": rng.standard_normal((length, num_envs)).astype(np.float32),
             "new_obs": rng.standard_normal((length, num_envs, 3)).astype(np.float32),
             "terminateds": terminateds, "dones": terminateds | truncateds}
    whole = n_step_transitions(steps, 3, gamma)
    collector = NStepCollector(3, gamma)
    parts = [collector.add({k: v[t:t + 4] for k, v in steps.items()})
             for t in range(0, length, 4)]
    got = {k: np.concatenate([part[k] for part in parts]) for k in whole}
    # a row is out once its 3 steps are in: all but each env's last 2 (unless done there)
    dones = steps["dones"]
    held = int(np.sum(~(dones[-2] | dones[-1])) + np.sum(~dones[-1]))
    assert len(got["obs"]) == length * num_envs - held
    key = [row.tobytes() for row in got["obs"]]
    assert len(set(key)) == len(key)
    expected = {row.tobytes(): i for i, row in enumerate(whole["obs"])}
    order = [expected[k] for k in key]
    for name in whole:
        np.testing.assert_allclose(got[name], whole[name][order], rtol=1e-6)
    assert parts[0]["rewards"].shape[0] < 4 * num_envs   # the first fragment's tail waited


# ---- replay buffers ------------------------------------------------------------------------------
def test_uniform_buffer_is_a_ring_of_the_latest_rows():
    buffer = ReplayBuffer(capacity=4, seed=0)
    buffer.add({"obs": np.arange(3.0)})
    buffer.add({"obs": np.arange(3.0, 6.0)})
    assert len(buffer) == 4 and buffer.added == 6
    assert sorted(buffer.columns["obs"].tolist()) == [2.0, 3.0, 4.0, 5.0]
    sample = buffer.sample(200)
    assert set(sample["obs"].tolist()) == {2.0, 3.0, 4.0, 5.0}
    assert np.all(sample["weights"] == 1.0)
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(2).sample(1)


def test_sum_tree_finds_prefix_sums():
    tree = SumTree(5)
    tree[np.arange(5)] = [1.0, 0.0, 2.0, 3.0, 4.0]
    assert tree.total() == 10.0
    assert tree.find_prefix_sum(np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])).tolist() \
        == [0, 0, 2, 2, 3, 3, 4, 4]
    tree[np.array([4, 4])] = [1.0, 1.0]  # the same leaf twice in one update
    assert tree.total() == 7.0


def test_prioritized_sampling_follows_priorities_and_weights_correct_for_it():
    alpha, beta = 0.5, 0.4
    buffer = PrioritizedReplayBuffer(8, alpha=alpha, beta=beta, eps=0.0, seed=1)
    buffer.add({"obs": np.arange(4.0)})
    td_errors = np.array([1.0, 4.0, 9.0, 16.0])
    buffer.update_priorities(np.arange(4), td_errors)
    expected = td_errors ** alpha / np.sum(td_errors ** alpha)  # 1, 2, 3, 4 over 10
    counts = np.zeros(4)
    for _ in range(200):
        counts += np.bincount(buffer.sample(50)["batch_indexes"], minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), expected, atol=0.01)
    sample = buffer.sample(50)
    probabilities = expected[sample["batch_indexes"]]
    weights = (4 * probabilities) ** -beta / (4 * expected.min()) ** -beta
    np.testing.assert_allclose(sample["weights"], weights, rtol=1e-5)
    assert buffer.max_priority == 16.0
    slot = buffer.add({"obs": np.array([9.0])})  # new rows get the highest priority
    assert buffer.sums[slot][0] == pytest.approx(16.0 ** alpha)


def test_replay_buffer_config_and_ray_1_9_keys_choose_the_buffer():
    dqn = AlgorithmConfig.for_algorithm("DQN")
    defaults = dqn.replay_buffer_config
    assert isinstance(make_replay_buffer(dqn, defaults), PrioritizedReplayBuffer)
    dqn.replay_buffer_config = {"type": "ReplayBuffer", "capacity": 7}
    buffer = make_replay_buffer(dqn, defaults)
    assert type(buffer) is ReplayBuffer and buffer.capacity == 7
    legacy = AlgorithmConfig.from_dict({"buffer_size": 9, "prioritized_replay": True,
                                        "prioritized_replay_alpha": 0.3}, "DQN")
    buffer = make_replay_buffer(legacy, defaults)
    assert (type(buffer), buffer.capacity, buffer.alpha) == (PrioritizedReplayBuffer, 9, 0.3)
    with pytest.raises(ValueError, match="did you mean 'PrioritizedReplayBuffer'"):
        AlgorithmConfig.from_dict({"replay_buffer_config": {"type": "PrioritisedReplayBuffer"}},
                                  "DQN")


# ---- exploration ------------------------------------------------------------------------------
def test_epsilon_schedules_of_both_apis():
    config = AlgorithmConfig.for_algorithm("DQN")
    defaults = config.exploration_config
    config.exploration_config = {"type": "EpsilonGreedy", "initial_epsilon": 1.0,
                                 "final_epsilon": 0.1, "epsilon_timesteps": 100}
    schedule = epsilon_schedule(config, defaults)
    assert [schedule(t) for t in (0, 50, 100, 10**6)] == [1.0, 0.55, 0.1, 0.1]
    config.epsilon = [[0, 0.5], [10, 0.0]]
    assert epsilon_schedule(config, defaults)(5) == 0.25
    config.epsilon = 0.3
    assert epsilon_schedule(config, defaults)(10**6) == 0.3
    assert PiecewiseSchedule([(10, 2.0), (0, 0.0)])(5) == 1.0
    with pytest.raises(ValueError, match="does not fit DQN, which explores by EpsilonGreedy"):
        AlgorithmConfig.from_dict({"exploration_config": {"type": "StochasticSampling"}}, "DQN")


def test_epsilon_greedy_acts_randomly_at_rate_epsilon():
    rng = np.random.default_rng(0)
    q = np.tile(np.array([[0.0, 1.0, 0.0, 0.0]]), (20000, 1))
    assert np.all(epsilon_greedy(q, 0.0, rng) == 1)
    actions = epsilon_greedy(q, 0.4, rng)
    # random actions land on the best one a quarter of the time
    assert np.mean(actions != 1) == pytest.approx(0.4 * 0.75, abs=0.02)


# ---- the loss and the learners ------------------------------------------------------------------
def _case(dueling=True, seed=0):
    rng = np.random.default_rng(seed)
    spec = QModelSpec(obs_size=3, action_size=2, hiddens=(8,), activation="tanh",
                      q_hiddens=(8,), dueling=dueling)
    weights = {k: v + rng.normal(0, 0.3, v.shape).astype(np.float32)
               for k, v in init_weights(spec, seed).items()}
    target = {k: v + rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in weights.items()}
    n = 12
    batch = {"obs": rng.normal(size=(n, 3)).astype(np.float32),
             "actions": rng.integers(0, 2, n), "rewards": rng.normal(size=n).astype(np.float32),
             "new_obs": rng.normal(size=(n, 3)).astype(np.float32),
             "terminateds": (rng.random(n) < 0.3).astype(np.float32),
             "discounts": np.full(n, 0.9, np.float32),
             "weights": rng.uniform(0.5, 1.0, n).astype(np.float32)}
    return spec, weights, target, batch


@pytest.mark.parametrize("double_q", [True, False])
def test_dqn_loss_against_hand_computed_targets(double_q):
    spec, weights, target, batch = _case()
    loss, stats = make_dqn_loss(double_q, "mse")(NUMPY_OPS, weights, target, batch, {}, spec)
    q = q_values(NUMPY_OPS, weights, batch["obs"], spec)
    q_next_target = q_values(NUMPY_OPS, target, batch["new_obs"], spec)
    chooser = q_values(NUMPY_OPS, weights, batch["new_obs"], spec) if double_q else q_next_target
    best = q_next_target[np.arange(12), chooser.argmax(1)]
    y = batch["rewards"] + 0.9 * (1 - batch["terminateds"]) * best
    td = q[np.arange(12), batch["actions"]] - y
    np.testing.assert_allclose(stats["td_error"], td, rtol=1e-5)
    assert float(loss) == pytest.approx(np.mean(batch["weights"] * 0.5 * td ** 2), rel=1e-5)


def test_dueling_q_is_value_plus_centred_advantages():
    spec, weights, _, batch = _case(dueling=True)
    q = q_values(NUMPY_OPS, weights, batch["obs"], spec)
    plain = q_values(NUMPY_OPS, weights, batch["obs"], QModelSpec(3, 2, (8,), "tanh", (8,), False))
    np.testing.assert_allclose(q - q.mean(1, keepdims=True), plain - plain.mean(1, keepdims=True),
                               rtol=1e-4, atol=1e-6)  # the value shifts all actions alike


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_learners_compute_numpys_dqn_loss_and_move_their_targets(framework):
    spec, weights, target, batch = _case()
    loss = make_dqn_loss(True, "huber")
    _, expected = loss(NUMPY_OPS, weights, target, batch, {}, spec)
    if framework == "torch":
        pytest.importorskip("torch")
        from raylite.rllib._policy_torch import TorchPolicy as Learner
    else:
        pytest.importorskip("tensorflow")
        from raylite.rllib._policy_tf import TFPolicy as Learner
    learner = Learner(spec, weights, loss, lr=1e-2, grad_clip=None, seed=0,
                      target_names=spec.target_names())
    learner.set_target_weights(target)
    stats = learner.learn_on_minibatch(batch, {})
    np.testing.assert_allclose(stats["td_error"], expected["td_error"], rtol=1e-4, atol=1e-5)
    assert stats["loss"] == pytest.approx(float(expected["loss"]), rel=1e-4)
    online = learner.get_weights()
    assert any(not np.allclose(online[k], weights[k]) for k in weights)
    learner.update_target(0.25)  # soft: a quarter of the way to the online network
    moved = learner.get_target_weights()
    for name in target:
        np.testing.assert_allclose(moved[name], 0.25 * online[name] + 0.75 * target[name],
                                   rtol=1e-5, atol=1e-6)
    learner.update_target(1.0)  # hard: a copy
    assert all(np.allclose(learner.get_target_weights()[k], online[k]) for k in online)


# ---- the algorithm --------------------------------------------------------------------------------
def test_cartpole_greedy_returns_rise_far_above_random_within_seconds():
    config = (DQNConfig().environment("CartPole-v1")
              .training(lr=1e-3, train_batch_size=64, target_network_update_freq=250, n_step=3,
                        num_steps_sampled_before_learning_starts=500,
                        epsilon=[[0, 1.0], [3000, 0.02]], hiddens=[64],
                        model={"fcnet_hiddens": [64], "fcnet_activation": "relu"})
              .reporting(min_sample_timesteps_per_iteration=1000)
              .evaluation(evaluation_duration=5).debugging(seed=0))
    algo = config.build()
    for _ in range(7):
        result = algo.train()
    evaluation = algo.evaluate()["evaluation"]
    algo.stop()
    assert result["timesteps_total"] == 7000
    # a random policy lasts ~22 steps; the greedy policy learned here lasts many times longer
    assert evaluation["episode_reward_mean"] > 100, evaluation
    assert result["info"]["learner"]["default_policy"]["learner_stats"]["cur_epsilon"] == 0.02


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_dqn_trains_checkpoints_and_restores_identically(framework, tmp_path):
    from raylite.rllib.agents.dqn import DQNTrainer
    from raylite.rllib.algorithms.algorithm import Algorithm
    algo = DQNTrainer(env="CartPole-v1", config={**SMALL, "framework": framework, "seed": 1,
                                                 "n_step": 2, "dueling": False})
    algo.train()
    result = algo.train()
    assert result["timesteps_total"] == 128 and result["info"]["learner"]["default_policy"][
        "learner_stats"]["num_updates"] > 0
    path = algo.save(str(tmp_path))
    observations = [np.random.default_rng(i).normal(size=4).astype(np.float32) for i in range(8)]
    before = [algo.compute_single_action(obs, explore=False) for obs in observations]
    algo.stop()
    restored = Algorithm.from_checkpoint(path)
    assert type(restored).__name__ == "DQN" and restored.iteration == 2
    assert [restored.compute_single_action(obs, explore=False) for obs in observations] == before
    np.testing.assert_allclose(restored.learner.get_target_weights()["q/advantage/out/bias"],
                               algo.learner.get_target_weights()["q/advantage/out/bias"])
    restored.stop()


def test_continuous_actions_are_an_error_naming_algorithms_that_fit():
    with pytest.raises(ValueError, match=r"DQN needs a Discrete action space.*use SAC .* or PPO"):
        DQNConfig().environment("Pendulum-v1").build()


def test_dqn_config_refuses_other_algorithms_keys_and_unimplemented_options():
    with pytest.raises(TypeError, match="'clip_param' is a setting of PPO, which DQN does not"):
        DQNConfig().training(clip_param=0.2)
    with pytest.raises(TypeError, match="did you mean 'double_q'"):
        DQNConfig().training(doubleq=True)
    with pytest.raises(ValueError, match="'num_atoms' must be one of 1"):
        DQNConfig().training(num_atoms=51)
    assert math.isclose(DQNConfig().to_dict()["lr"], 5e-4)


def test_dqn_through_tune_by_name(ray, tmp_path):
    from raylite import tune
    analysis = tune.run("DQN", config={**SMALL, "env": "CartPole-v1"},
                        stop={"training_iteration": 2}, storage_path=str(tmp_path), verbose=0)
    trial = analysis.trials[0]
    assert trial.last_result["training_iteration"] == 2
    assert trial.last_result["timesteps_total"] == 128


def test_rollout_fragment_length_auto_resolves_as_rllib_2x():
    assert AlgorithmConfig.from_dict({"rollout_fragment_length": "auto", "n_step": 3},
                                     "DQN").rollout_fragment_length == 3
    ppo = AlgorithmConfig.from_dict({"rollout_fragment_length": "auto", "num_workers": 2,
                                     "num_envs_per_worker": 2, "train_batch_size": 1001})
    assert ppo.rollout_fragment_length == 251
    with pytest.raises(ValueError, match="'auto' or a whole number"):
        AlgorithmConfig.from_dict({"rollout_fragment_length": "four"}, "DQN")


@pytest.mark.parametrize("intensity, updates", [(None, 16), (4, 8), (64, 128)])
def test_training_intensity_sets_replayed_per_sampled_steps(intensity, updates):
    """16 rounds of 4 steps, 32-row batches: one batch a round by default; intensity 4 is
    half a batch a round (one every other round), 64 is 8 batches a round."""
    algo = (DQNConfig().environment("CartPole-v1").env_runners(rollout_fragment_length=4)
            .training(model={"fcnet_hiddens": [16]}, hiddens=[16], train_batch_size=32,
                      num_steps_sampled_before_learning_starts=0,
                      training_intensity=intensity)
            .reporting(min_sample_timesteps_per_iteration=64).build())
    result = algo.train()
    assert result["info"]["learner"]["default_policy"]["learner_stats"]["num_updates"] == updates
    algo.stop()
