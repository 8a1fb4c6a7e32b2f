"""raylite.rllib's PPO end to end with tiny budgets: both frameworks and both action types,
rollout workers as actors, results, checkpoints, acting, evaluation and Tune."""

import math

import numpy as np
import pytest

pytest.importorskip("gymnasium")  # raylite[rl]
pytest.importorskip("torch")      # raylite[torch]: the default framework

from raylite import tune
from raylite.rllib import register_env
from raylite.rllib.agents.ppo import DEFAULT_CONFIG, PPOTrainer
from raylite.rllib.algorithms.ppo import PPO, PPOConfig

TINY = {"num_workers": 0, "train_batch_size": 200, "sgd_minibatch_size": 50, "num_sgd_iter": 2,
        "rollout_fragment_length": 100, "num_envs_per_worker": 2,
        "model": {"fcnet_hiddens": [16]}, "seed": 0}


def _stats(result):
    return result["info"]["learner"]["default_policy"]["learner_stats"]


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("env, discrete", [("CartPole-v1", True), ("Pendulum-v1", False)])
def test_smoke_both_frameworks_both_action_types(framework, env, discrete):
    if framework == "tf":
        pytest.importorskip("tensorflow")
    trainer = PPOTrainer(env=env, config={**TINY, "framework": framework})
    before = trainer.get_policy().get_weights()
    for iteration in (1, 2):
        result = trainer.train()
        assert result["training_iteration"] == iteration
        assert result["timesteps_total"] == 200 * iteration
    for key in ("episode_reward_mean", "episode_reward_min", "episode_reward_max",
                "episode_len_mean", "episodes_this_iter", "time_total_s"):
        assert key in result
    if env == "Pendulum-v1":
        assert result["episode_len_mean"] == 200 and -3300 < result["episode_reward_mean"] < 0
    stats = _stats(result)
    for key in ("policy_loss", "vf_loss", "entropy", "kl", "total_loss", "cur_kl_coeff"):
        assert math.isfinite(stats[key]), key
    action = trainer.compute_single_action(trainer.observation_space.sample())
    if discrete:
        assert action in (0, 1)
    else:
        assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
    after = trainer.get_policy().get_weights()
    assert any(not np.allclose(before[k], after[k]) for k in before)
    trainer.stop()


def test_cartpole_learns_within_a_tiny_budget():
    trainer = PPO(env="CartPole-v1", config={
        "num_workers": 0, "num_envs_per_worker": 4, "rollout_fragment_length": 250,
        "train_batch_size": 1000, "sgd_minibatch_size": 500, "num_sgd_iter": 8, "lr": 3e-3,
        "model": {"fcnet_hiddens": [32]}, "seed": 1})
    first = trainer.train()["episode_reward_mean"]  # a random policy: about 22
    for _ in range(7):
        last = trainer.train()["episode_reward_mean"]
    greedy = trainer.evaluate()["evaluation"]["episode_reward_mean"]
    trainer.stop()
    assert first < 40 and last > 2 * first and greedy > 100, (first, last, greedy)


def test_save_and_restore_give_identical_greedy_actions(tmp_path):
    config = {**TINY, "observation_filter": "MeanStdFilter", "env": "Pendulum-v1"}
    trainer = PPO(config=config)
    trainer.train()
    checkpoint = trainer.save(str(tmp_path / "ck"))
    assert checkpoint.endswith("checkpoint-1")
    observations = [trainer.observation_space.sample() for _ in range(20)]
    actions = [trainer.compute_single_action(o, explore=False) for o in observations]
    trainer.train()  # moves away from the checkpoint
    moved = [trainer.compute_single_action(o, explore=False) for o in observations]
    assert not np.allclose(actions, moved)
    trainer.stop()

    for restored in (PPO(config=config), PPO(config={**config, "framework": "tf"})):
        restored.restore(str(tmp_path / "ck"))  # the directory works as well as the file
        again = [restored.compute_single_action(o, explore=False) for o in observations]
        np.testing.assert_array_equal(actions, again)
        assert restored.iteration == 1 and restored.timesteps_total == 200
        restored.stop()
    resumed = PPO.from_checkpoint(checkpoint)
    assert resumed.train()["training_iteration"] == 2
    resumed.stop()


def test_weights_can_be_set_and_full_fetch_returns_extras():
    trainer = PPO(env="CartPole-v1", config=TINY)
    policy = trainer.get_policy()
    weights = policy.get_weights()
    zeros = {k: np.zeros_like(v) for k, v in weights.items()}
    policy.set_weights(zeros)
    action, state, extra = trainer.compute_single_action([0.0] * 4, full_fetch=True,
                                                         explore=False)
    assert action == 0 and state == [] and extra["action_dist_inputs"].tolist() == [0.0, 0.0]
    assert extra["vf_preds"] == 0.0
    with pytest.raises(ValueError, match="missing"):
        policy.set_weights({"policy/out/kernel": weights["policy/out/kernel"]})
    trainer.stop()


def test_rollout_workers_as_actors_with_a_synchronised_filter(ray):
    config = (PPOConfig().environment("CartPole-v1")
              .env_runners(num_env_runners=2, num_envs_per_env_runner=2,
                           rollout_fragment_length=50, observation_filter="MeanStdFilter")
              .training(train_batch_size=300, minibatch_size=100, num_epochs=1,
                        model={"fcnet_hiddens": [16]}))
    algo = config.build()
    result = algo.train()
    # two rounds of 2 workers x 2 envs x 50 steps
    assert result["timesteps_total"] == 400
    assert algo.filter.running.count == 400  # every observation the workers saw, merged
    assert algo.train()["timesteps_total"] == 800
    workers = algo.workers.remote
    assert len(workers) == 2
    algo.stop()


def test_complete_episodes_batches_end_on_episode_boundaries():
    trainer = PPO(env="maze", config={**TINY, "batch_mode": "complete_episodes",
                                      "env_config": {"max_steps": 30}})
    result = trainer.train()
    assert result["timesteps_total"] == result["episodes_this_iter"] * result["episode_len_mean"]
    trainer.stop()


def test_evaluation_interval_adds_greedy_evaluation():
    trainer = PPO(env="CartPole-v1", config={**TINY, "evaluation_interval": 1,
                                             "evaluation_num_episodes": 3})
    evaluation = trainer.train()["evaluation"]
    assert evaluation["episodes_this_iter"] == 3
    trainer.stop()


def test_custom_env_through_register_env():
    import gymnasium as gym
    register_env("short_pendulum", lambda cfg: gym.make("Pendulum-v1",
                                                        max_episode_steps=cfg["steps"]))
    trainer = PPO(env="short_pendulum", config={**TINY, "env_config": {"steps": 20}})
    assert trainer.train()["episode_len_mean"] == 20
    trainer.stop()


def test_trainer_runs_under_tune(ray, tmp_path):
    analysis = tune.run(PPOTrainer, config={**TINY, "env": "CartPole-v1"},
                        stop={"training_iteration": 2}, checkpoint_freq=1,
                        storage_path=str(tmp_path), name="ppo", verbose=0)
    [trial] = analysis.trials
    assert trial.last_result["training_iteration"] == 2
    assert trial.checkpoint.endswith("checkpoint_000002/checkpoint-2")


def test_1_9_and_2_x_entry_points():
    assert DEFAULT_CONFIG["lambda"] == 1.0 and DEFAULT_CONFIG["framework"] == "torch"
    assert PPOTrainer is PPO
    with pytest.raises(ValueError, match="unknown config key 'lamda'; did you mean 'lambda'"):
        PPO(env="CartPole-v1", config={"lamda": 0.9})
    with pytest.raises(ValueError, match="did you mean Pendulum-v0 / Pendulum-v1"):
        PPO(env="Pendulumv0")
