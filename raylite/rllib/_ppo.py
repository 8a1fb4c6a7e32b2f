"""Proximal Policy Optimization (Schulman et al. 2017), as RLlib 1.9 runs it.

One training iteration, top to bottom (``PPO.training_step``):

    1. rollouts   every worker acts with the current weights for rollout_fragment_length steps
                  of each of its envs, in rounds, until train_batch_size steps are in; the
                  workers compute GAE advantages and value targets (_gae.py)
    2. advantages are standardized over the whole train batch
    3. learning   num_sgd_iter epochs over shuffled minibatches of sgd_minibatch_size, each a
                  gradient step on ppo_loss: the clipped surrogate objective, the clipped
                  value loss, an adaptive KL penalty and an entropy bonus
    4. KL penalty kl_coeff grows (x1.5) when the policy moved more than 2 x kl_target in the
                  last epoch, shrinks (x0.5) below kl_target / 2

``ppo_loss`` is written once against an ``ops`` namespace and runs on torch, TensorFlow and
(in the tests) numpy.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from raylite.rllib._algorithm import DEFAULT_POLICY_ID, Algorithm
from raylite.rllib._buffer import (
    ACTION_DIST_INPUTS,
    ACTION_LOGP,
    ACTIONS,
    ADVANTAGES,
    TRAIN_COLUMNS,
    VALUE_TARGETS,
    VF_PREDS,
    batch_size,
    minibatches,
    standardize,
)
from raylite.rllib._builder import ConfigBuilder
from raylite.rllib._config import AlgorithmConfig


def ppo_loss(ops: Any, dist_class: type, dist_inputs: Any, values: Any, batch: dict[str, Any],
             coeffs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """PPO's loss on a minibatch, and its parts.

    Args:
        ops: the framework's ops namespace (NumpyOps, torch's, tf's).
        dist_class: Categorical or DiagGaussian.
        dist_inputs, values: the network's outputs on ``batch["obs"]``.
        batch: the minibatch columns (actions, action_logp, action_dist_inputs, vf_preds,
            advantages, value_targets).
        coeffs: clip_param, vf_clip_param, vf_loss_coeff, entropy_coeff, kl_coeff.

    Returns:
        ``(total_loss, stats)`` with stats policy_loss, vf_loss, entropy, kl, approx_kl,
        vf_explained_var, total_loss.
    """
    new_dist = dist_class(ops, dist_inputs)
    old_dist = dist_class(ops, batch[ACTION_DIST_INPUTS])
    newlogprob = new_dist.logp(batch[ACTIONS])
    logratio = newlogprob - batch[ACTION_LOGP]
    ratio = ops.exp(logratio)
    approx_kl = ops.mean((ratio - 1.0) - logratio)        # the k3 estimator of KL(old || new)
    kl = ops.mean(old_dist.kl(new_dist))                    # exact, for the penalty
    entropy = ops.mean(new_dist.entropy())

    # the clipped surrogate objective, as a loss
    advantages = batch[ADVANTAGES]
    clip = coeffs["clip_param"]
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ops.clip(ratio, 1.0 - clip, 1.0 + clip)
    pg_loss = ops.mean(ops.maximum(pg_loss1, pg_loss2))

    # the value loss, its update clipped around the values the batch was sampled with
    returns, old_values = batch[VALUE_TARGETS], batch[VF_PREDS]
    vf_clip = coeffs["vf_clip_param"]
    v_loss_unclipped = (values - returns) * (values - returns)
    v_clipped = old_values + ops.clip(values - old_values, -vf_clip, vf_clip)
    v_loss_clipped = (v_clipped - returns) * (v_clipped - returns)
    v_loss = ops.mean(ops.maximum(v_loss_unclipped, v_loss_clipped))

    loss = (pg_loss + coeffs["kl_coeff"] * kl + coeffs["vf_loss_coeff"] * v_loss
            - coeffs["entropy_coeff"] * entropy)
    error = returns - values
    centered_error = error - ops.mean(error)
    centered_returns = returns - ops.mean(returns)
    explained_var = 1.0 - ops.mean(centered_error * centered_error) / (
        ops.mean(centered_returns * centered_returns) + 1e-8)
    stats = {"total_loss": loss, "policy_loss": pg_loss, "vf_loss": v_loss, "entropy": entropy,
             "kl": kl, "approx_kl": approx_kl, "vf_explained_var": explained_var}
    return loss, stats


def update_kl_coeff(kl_coeff: float, kl: float, kl_target: float) -> float:
    """RLlib's adaptive KL coefficient."""
    if kl > 2.0 * kl_target:
        return kl_coeff * 1.5
    if kl < 0.5 * kl_target:
        return kl_coeff * 0.5
    return kl_coeff


class PPO(Algorithm):
    """PPO: ``PPO(config={...}, env="CartPole-v1")`` (also ``PPOTrainer``), or
    ``PPOConfig().environment("CartPole-v1").build()``.

    Example:
        >>> from raylite.rllib.algorithms.ppo import PPO
        >>> algo = PPO(env="CartPole-v1", config={"num_workers": 0, "train_batch_size": 200,
        ...                                       "sgd_minibatch_size": 50, "num_sgd_iter": 1})
        >>> algo.train()["timesteps_total"]
        200
    """

    algo_name = "PPO"

    def loss_function(self, config: AlgorithmConfig) -> Any:
        return ppo_loss

    def setup(self, config: dict) -> None:
        super().setup(config)
        for unit in self.units.values():
            unit.state["kl_coeff"] = unit.config.kl_coeff

    def learner_state(self, unit: Any) -> dict[str, Any]:
        return {"kl_coeff": unit.state["kl_coeff"]}

    def set_learner_state(self, unit: Any, state: dict[str, Any]) -> None:
        unit.state["kl_coeff"] = state.get("kl_coeff", unit.config.kl_coeff)

    @property
    def kl_coeff(self) -> float:
        return self.units[next(iter(self.units))].state["kl_coeff"]

    def training_step(self) -> tuple[int, list[tuple[float, int]], dict[str, dict]]:
        config = self.algo_config
        # 1. rollouts with the current weights (GAE is computed on the workers)
        start = time.perf_counter()
        weights = {pid: unit.learner.get_weights() for pid, unit in self.units.items()}
        self.workers.sync(weights if self.is_multi_agent else weights[DEFAULT_POLICY_ID],
                          self.filter.get_state())
        batch, episodes = self.workers.sample(config.train_batch_size, self.filter.merge_delta)
        batches = batch if self.is_multi_agent else {DEFAULT_POLICY_ID: batch}
        sampled = time.perf_counter()
        # 2.-4. each policy that trains learns on its own agents' steps
        learner_stats = {pid: self.learn_on_batch(self.units[pid], policy_batch)
                         for pid, policy_batch in batches.items()
                         if pid in self.policies_to_train}
        learned = time.perf_counter()
        steps = self.workers.last_env_steps
        self.timers = {"sample_time_ms": 1000 * (sampled - start),
                       "learn_time_ms": 1000 * (learned - sampled),
                       "sample_throughput": steps / max(sampled - start, 1e-9),
                       "learn_throughput": steps / max(learned - sampled, 1e-9)}
        return steps, episodes, learner_stats

    def learn_on_batch(self, unit: Any, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """Steps 2-4 for one policy: standardize, SGD epochs, adapt the KL penalty."""
        config = unit.config
        # 2. advantages standardized over the train batch
        batch[ADVANTAGES] = standardize(batch[ADVANTAGES])
        batch = {name: batch[name] for name in TRAIN_COLUMNS}
        # 3. epochs of minibatch gradient steps on the PPO loss
        coeffs = self._loss_coefficients(unit)
        num_rows = batch_size(batch)
        epoch_stats: list[dict[str, float]] = []
        for _ in range(config.num_sgd_iter):
            epoch_stats = []
            for indices in minibatches(num_rows, config.sgd_minibatch_size, self._rng):
                minibatch = {name: column[indices] for name, column in batch.items()}
                epoch_stats.append(unit.learner.learn_on_minibatch(minibatch, coeffs))
        learner_stats = {key: float(np.mean([s[key] for s in epoch_stats]))
                         for key in epoch_stats[0]}
        # 4. adapt the KL penalty to how far the last epoch moved the policy
        learner_stats.update(cur_kl_coeff=unit.state["kl_coeff"], cur_lr=config.lr,
                             entropy_coeff=config.entropy_coeff)
        unit.state["kl_coeff"] = update_kl_coeff(unit.state["kl_coeff"], learner_stats["kl"],
                                                 config.kl_target)
        return learner_stats

    def _loss_coefficients(self, unit: Any) -> dict[str, float]:
        config = unit.config
        return {"clip_param": config.clip_param, "vf_clip_param": config.vf_clip_param,
                "vf_loss_coeff": config.vf_loss_coeff if config.use_critic else 0.0,
                "entropy_coeff": config.entropy_coeff, "kl_coeff": unit.state["kl_coeff"]}


PPOTrainer = PPO


class PPOConfig(ConfigBuilder):
    """Ray 2.x's builder for PPO's config.

    Example:
        >>> config = (PPOConfig().environment("Pendulum-v1")
        ...           .env_runners(num_env_runners=1, num_envs_per_env_runner=10)
        ...           .training(lr=3e-4, gamma=0.95, lambda_=0.1, num_epochs=6))
        >>> config.to_dict()["lambda"], config.num_envs_per_worker
        (0.1, 10)
    """

    algo_name = "PPO"

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class or PPO)


DEFAULT_CONFIG: dict[str, Any] = AlgorithmConfig.for_algorithm("PPO").to_dict()
