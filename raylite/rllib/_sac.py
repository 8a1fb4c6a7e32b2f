"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications":
twin Q networks, automatic entropy tuning), for continuous actions, as RLlib runs it.

The training iteration is DQN's (``_dqn.DQN.training_step``): sample, store in the replay
buffer, learn on replayed minibatches, move the target networks (here softly, every step,
by ``tau``). What is SAC's own is the loss, top to bottom in ``sac_loss``:

    critic   y = r + discount * (1 - terminated) * (min_i Q_target_i(s', a') - alpha log pi(a'|s'))
             with a' ~ pi(.|s'); loss 0.5 (Q_i(s, a) - y)^2 for each Q network
    actor    alpha log pi(a~|s) - min_i Q_i(s, a~), a~ ~ pi(.|s) reparameterized (the Q
             networks held fixed)
    alpha    -log_alpha (log pi(a~|s) + target_entropy)       (target_entropy "auto": -dims)

One Adam per parameter group (actor_lr, critic_lr, alpha_lr); each part of the loss reaches
only its own group's parameters (``stop_gradient`` elsewhere). The sampling noise comes with
the minibatch, so the loss is the same function on numpy, torch and TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raylite.rllib._builder import ConfigBuilder
from raylite.rllib._config import ALGORITHM_DEFAULTS, AlgorithmConfig
from raylite.rllib._dqn import DQN
from raylite.rllib._conv import is_image
from raylite.rllib._envs import preprocessor
from raylite.rllib._model import model_loss
from raylite.rllib._replay_buffer import (
    ACTIONS,
    DISCOUNTS,
    NEW_OBS,
    OBS,
    REWARDS,
    TERMINATEDS,
    WEIGHTS,
)
from raylite.rllib._sac_model import SACModelSpec, SquashedGaussian, min_q, policy_inputs, q_value

NOISE, NEXT_NOISE = "noise", "next_noise"


@model_loss
def sac_loss(ops: Any, params: dict, target_params: dict, batch: dict, coeffs: dict,
             spec: SACModelSpec) -> tuple[Any, dict[str, Any]]:
    """SAC's three losses as one sum whose parts reach disjoint parameters.

    Returns ``(loss, stats)``; stats hold the per-row ``td_error`` for prioritized replay.
    """
    log_alpha = params["log_alpha"]
    alpha = ops.exp(log_alpha)

    # critic: soft Bellman targets from the target Q networks
    next_pi = SquashedGaussian(ops, policy_inputs(ops, params, batch[NEW_OBS], spec))
    next_actions, next_logp = next_pi.sample_with_logp(batch[NEXT_NOISE])
    q_next = min_q(ops, target_params, batch[NEW_OBS], next_actions, spec) - alpha * next_logp
    q_target = ops.stop_gradient(
        batch[REWARDS] + batch[DISCOUNTS] * (1.0 - batch[TERMINATEDS]) * q_next)
    q_values = [q_value(ops, params, name, batch[OBS], batch[ACTIONS], spec)
                for name in spec.q_names]
    critic_loss = sum(ops.mean(batch[WEIGHTS] * 0.5 * (q - q_target) * (q - q_target))
                      for q in q_values)

    # actor: maximize min Q - alpha log pi with the Q networks held fixed
    pi = SquashedGaussian(ops, policy_inputs(ops, params, batch[OBS], spec))
    actions, logp = pi.sample_with_logp(batch[NOISE])
    fixed_q = {name: ops.stop_gradient(value) for name, value in params.items()
               if name.startswith(spec.q_names)}
    actor_loss = ops.mean(ops.stop_gradient(alpha) * logp - min_q(ops, fixed_q, batch[OBS],
                                                                  actions, spec))

    # alpha: towards the target entropy
    alpha_loss = -ops.mean(log_alpha * ops.stop_gradient(logp + coeffs["target_entropy"]))

    td_error = q_values[0] - q_target
    stats = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss,
             "alpha_value": alpha, "log_alpha_value": log_alpha, "mean_q": ops.mean(q_values[0]),
             "entropy": -ops.mean(logp), "td_error": td_error}
    return critic_loss + actor_loss + alpha_loss, stats


class SAC(DQN):
    """SAC: ``SAC(config={...}, env="Pendulum-v1")`` (also ``SACTrainer``), or
    ``SACConfig().environment("Pendulum-v1").build()``.

    Example:
        >>> from raylite.rllib.algorithms.sac import SAC
        >>> algo = SAC(env="Pendulum-v1", config={"num_steps_sampled_before_learning_starts": 8,
        ...            "train_batch_size": 8, "q_model_config": {"fcnet_hiddens": [8]},
        ...            "policy_model_config": {"fcnet_hiddens": [8]}})
        >>> algo.train()["timesteps_total"]
        100
    """

    algo_name = "SAC"

    def loss_function(self, config: AlgorithmConfig) -> Any:
        return sac_loss

    def _model_spec(self, config: AlgorithmConfig, observation_space: Any,
                    action_space: Any) -> SACModelSpec:
        from gymnasium import spaces
        if config.model.custom_model is not None:
            raise ValueError("SAC's networks take custom models through policy_model_config "
                             "and q_model_config ({'custom_model': NAME}), not model")
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"SAC needs a continuous (Box) action space; {self.env_label} "
                             f"has {action_space}: use DQN or PPO")
        if not config.normalize_actions:
            raise ValueError("SAC acts in [-1, 1] (tanh) and rescales to the action bounds: "
                             "normalize_actions must be true")
        defaults = ALGORITHM_DEFAULTS["SAC"]
        policy = {**defaults["policy_model_config"], **config.policy_model_config}
        q = {**defaults["q_model_config"], **config.q_model_config}
        if is_image(observation_space) and not (policy.get("custom_model")
                                                and q.get("custom_model")):
            raise NotImplementedError(
                f"SAC on image observations {observation_space.shape}: raylite's SAC builds no "
                f"conv nets; give policy_model_config and q_model_config a custom_model, or "
                f"flatten the observations (gymnasium.wrappers.FlattenObservation)")
        return SACModelSpec(
            obs_size=preprocessor(observation_space)[0],
            action_size=int(np.prod(action_space.shape)),
            policy_hiddens=tuple(policy["fcnet_hiddens"]),
            policy_activation=policy["fcnet_activation"], q_hiddens=tuple(q["fcnet_hiddens"]),
            q_activation=q["fcnet_activation"], twin_q=config.twin_q,
            initial_alpha=config.initial_alpha,
            **custom_networks(config, policy, q, observation_space, action_space))

    def learning_rates(self, config: AlgorithmConfig, model_spec: Any) -> dict[str, float]:
        rates = {**ALGORITHM_DEFAULTS["SAC"]["optimization_config"], **config.optimization_config}
        actor = config.actor_lr or rates["actor_learning_rate"]
        critic = config.critic_lr or rates["critic_learning_rate"]
        alpha = config.alpha_lr or rates["entropy_learning_rate"]
        return {"policy/": actor, **{f"{q}/": critic for q in model_spec.q_names},
                "log_alpha": alpha}

    def setup(self, config: dict) -> None:
        super().setup(config)
        for unit in self.units.values():
            target = unit.config.target_entropy
            unit.state["target_entropy"] = float(
                -unit.model_spec.action_size if target == "auto" else target)
        self.noise_rng = np.random.default_rng(None if self.algo_config.seed is None
                                               else self.algo_config.seed + 1)

    def exploration_state(self, unit: Any, timestep: int) -> dict | None:
        return None  # SAC explores by sampling its policy

    def learn_on_minibatch(self, unit: Any, minibatch: dict[str, np.ndarray]) -> dict[str, Any]:
        shape = minibatch[ACTIONS].shape
        minibatch[NOISE] = self.noise_rng.standard_normal(shape).astype(np.float32)
        minibatch[NEXT_NOISE] = self.noise_rng.standard_normal(shape).astype(np.float32)
        return unit.learner.learn_on_minibatch(
            minibatch, {"target_entropy": unit.state["target_entropy"]})


def custom_networks(config: AlgorithmConfig, policy: dict, q: dict, observation_space: Any,
                    action_space: Any) -> dict[str, Any]:
    """The custom models of ``policy_model_config`` / ``q_model_config`` (RLlib's SAC model):
    the policy's maps observations to 2 * action dims outputs; the Q networks' see a Box of
    the flat observation and the action concatenated, and output one value."""
    from gymnasium import spaces

    from raylite.rllib._custom_model import custom_net
    networks: dict[str, Any] = {}
    obs_size = preprocessor(observation_space)[0]
    action_size = int(np.prod(action_space.shape))
    if policy.get("custom_model") is not None:
        networks["custom_policy"] = custom_net(policy, config.framework, observation_space,
                                               action_space, 2 * action_size,
                                               "policy_model_config")
    if q.get("custom_model") is not None:
        q_space = spaces.Box(-np.inf, np.inf, (obs_size + action_size,), np.float32)
        networks["custom_q"] = custom_net(q, config.framework, q_space, action_space, 1,
                                          "q_model_config")
    return networks


SACTrainer = SAC


class SACConfig(ConfigBuilder):
    """Ray 2.x's builder for SAC's config.

    Example:
        >>> config = SACConfig().environment("Pendulum-v1").training(tau=0.01, actor_lr=1e-3)
        >>> config.to_dict()["tau"], config.algo_class.__name__
        (0.01, 'SAC')
    """

    algo_name = "SAC"

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class or SAC)


DEFAULT_CONFIG: dict[str, Any] = AlgorithmConfig.for_algorithm("SAC").to_dict()
