"""Deep Q-Networks (Mnih et al. 2015) with double Q (van Hasselt et al. 2016), dueling heads
(Wang et al. 2016), prioritized replay (Schaul et al. 2016) and n-step returns, as RLlib runs it.

One training iteration, top to bottom (``DQN.training_step``), repeated until
``min_sample_timesteps_per_iteration`` env steps are in:

    1. rollouts   the workers act epsilon-greedily (epsilon from its schedule) for
                  rollout_fragment_length steps; their steps become n-step transitions
    2. replay     the transitions go into the replay buffer
    3. learning   once num_steps_sampled_before_learning_starts steps are in: gradient steps on
                  dqn_loss over train_batch_size transitions drawn from the buffer (one per
                  round, or training_intensity x the sampled steps); prioritized replay gets each
                  transition's |TD error| back as its new priority
    4. target     every target_network_update_freq env steps, the target network moves to
                  the online one (tau 1: a copy)

``dqn_loss`` is written once against an ``ops`` namespace and runs on torch, TensorFlow and
(in the tests) numpy.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from raylite.rllib._algorithm import DEFAULT_POLICY_ID, Algorithm
from raylite.rllib._builder import ConfigBuilder
from raylite.rllib._config import ALGORITHM_DEFAULTS, AlgorithmConfig
from raylite.rllib._envs import preprocessor
from raylite.rllib._exploration import epsilon_schedule
from raylite.rllib._model import model_loss
from raylite.rllib._q_model import QModelSpec, q_model_body, q_values
from raylite.rllib._replay_buffer import (
    ACTIONS,
    BATCH_INDEXES,
    DISCOUNTS,
    NEW_OBS,
    OBS,
    REWARDS,
    TERMINATEDS,
    WEIGHTS,
    make_replay_buffer,
)


def huber(x: Any, ops: Any, delta: float = 1.0) -> Any:
    """0.5 x**2 for |x| <= delta, else delta (|x| - 0.5 delta)."""
    quadratic = ops.clip(ops.abs(x), 0.0, delta)
    return 0.5 * quadratic * quadratic + delta * (ops.abs(x) - quadratic)


def make_dqn_loss(double_q: bool, td_error_loss_fn: str) -> Any:
    """DQN's loss with its two switches fixed (they choose the graph, not its inputs)."""

    @model_loss
    def dqn_loss(ops: Any, params: dict, target_params: dict, batch: dict, coeffs: dict,
                 spec: QModelSpec) -> tuple[Any, dict[str, Any]]:
        """The TD error of Q(s, a) against r + discount * (1 - terminated) * Q_target(s', a*),
        a* = argmax_a Q(s', a) (double Q) or argmax_a Q_target(s', a); Huber or squared,
        weighted by the replay's importance weights.

        Returns ``(loss, stats)``; stats hold the per-row ``td_error`` for the priorities.
        """
        q_t = q_values(ops, params, batch[OBS], spec)
        q_t_selected = ops.sum(q_t * ops.one_hot(batch[ACTIONS], spec.action_size), -1)

        q_tp1_target = q_values(ops, target_params, batch[NEW_OBS], spec)
        if double_q:
            q_tp1_online = ops.stop_gradient(q_values(ops, params, batch[NEW_OBS], spec))
            best_actions = ops.argmax(q_tp1_online)
        else:
            best_actions = ops.argmax(q_tp1_target)
        q_tp1_best = ops.sum(q_tp1_target * ops.one_hot(best_actions, spec.action_size), -1)
        not_terminated = 1.0 - batch[TERMINATEDS]
        q_t_selected_target = ops.stop_gradient(
            batch[REWARDS] + batch[DISCOUNTS] * not_terminated * q_tp1_best)

        td_error = q_t_selected - q_t_selected_target
        errors = huber(td_error, ops) if td_error_loss_fn == "huber" else 0.5 * td_error * td_error
        loss = ops.mean(batch[WEIGHTS] * errors)
        stats = {"loss": loss, "mean_q": ops.mean(q_t_selected),
                 "mean_td_error": ops.mean(td_error), "td_error": td_error}
        return loss, stats

    return dqn_loss


class DQN(Algorithm):
    """DQN: ``DQN(config={...}, env="CartPole-v1")`` (also ``DQNTrainer``), or
    ``DQNConfig().environment("CartPole-v1").build()``.

    Example:
        >>> from raylite.rllib.algorithms.dqn import DQN
        >>> algo = DQN(env="CartPole-v1", config={"min_sample_timesteps_per_iteration": 100,
        ...            "num_steps_sampled_before_learning_starts": 50, "model": {
        ...            "fcnet_hiddens": [16]}, "hiddens": [16]})
        >>> algo.train()["timesteps_total"]
        100
    """

    algo_name = "DQN"

    def loss_function(self, config: AlgorithmConfig) -> Any:
        return make_dqn_loss(config.double_q, config.td_error_loss_fn)

    def _model_spec(self, config: AlgorithmConfig, observation_space: Any,
                    action_space: Any) -> QModelSpec:
        from gymnasium import spaces
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space; {self.env_label} has "
                             f"{action_space}: use SAC (continuous actions) or PPO")
        return QModelSpec(obs_size=preprocessor(observation_space)[0],
                          action_size=int(action_space.n),
                          hiddens=tuple(config.model.fcnet_hiddens),
                          activation=config.model.fcnet_activation,
                          q_hiddens=tuple(config.hiddens), dueling=config.dueling,
                          **q_model_body(config, observation_space, action_space))

    def setup(self, config: dict) -> None:
        super().setup(config)
        self.reader = None
        if self.algo_config.input_ != "sampler" and not self.external:
            from raylite.rllib._offline import JsonReader
            self.reader = JsonReader(self.algo_config.input_)
        defaults = ALGORITHM_DEFAULTS[self.algo_name]
        for unit in self.units.values():
            unit.state.update(
                replay_buffer=make_replay_buffer(unit.config, defaults["replay_buffer_config"]),
                epsilon=epsilon_schedule(unit.config,
                                         ALGORITHM_DEFAULTS["DQN"]["exploration_config"]),
                last_target_update=0, num_updates=0)
            unit.learner.update_target(1.0)

    @property
    def replay_buffer(self) -> Any:
        """The (first) policy's replay buffer."""
        return next(iter(self.units.values())).state["replay_buffer"]

    def training_step(self) -> tuple[int, list[tuple[float, int]], dict[str, dict]]:
        config = self.algo_config
        steps, episodes, learn_time = 0, [], 0.0
        stats: dict[str, dict] = {pid: {} for pid in self.policies_to_train}
        start = time.perf_counter()
        while True:
            # 1. rollouts, epsilon-greedy with the current weights
            if self.reader is not None:  # offline: logged transitions instead of rollouts
                batches, logged_steps = self._offline_transitions()
                steps, new_episodes = steps + logged_steps, []
            else:
                batches, new_episodes = self._sample_round(self.timesteps_total + steps)
                steps += self.workers.last_env_steps
            episodes.extend(new_episodes)
            lifetime = self.timesteps_total + steps
            learn_start = time.perf_counter()
            for pid, policy_batch in batches.items():
                unit = self.units[pid]
                # 2. into the policy's replay buffer
                unit.state["replay_buffer"].add(policy_batch)
                if pid in self.policies_to_train:
                    stats[pid] = self.learn_from_replay(unit, len(policy_batch[OBS]), lifetime) \
                        or stats[pid]
            learn_time += time.perf_counter() - learn_start
            if steps >= config.min_sample_timesteps_per_iteration:
                break
        elapsed = time.perf_counter() - start
        self.timers = {"learn_time_ms": 1000 * learn_time,
                       "sample_time_ms": 1000 * (elapsed - learn_time)}
        for pid, policy_stats in stats.items():
            unit = self.units[pid]
            policy_stats.update(num_updates=unit.state["num_updates"],
                                replay_buffer_size=len(unit.state["replay_buffer"]))
            explore = self.exploration_state(unit, self.timesteps_total + steps)
            if explore is not None:
                policy_stats["cur_epsilon"] = explore["epsilon"]
        return steps, episodes, stats

    def _sample_round(self, lifetime: int) -> tuple[dict[str, dict], list]:
        """One round of rollouts with the current weights and exploration."""
        weights = {pid: unit.learner.get_weights() for pid, unit in self.units.items()}
        exploration = {pid: self.exploration_state(unit, lifetime)
                       for pid, unit in self.units.items()}
        if self.is_multi_agent:
            self.workers.sync(weights, None, exploration)
        else:
            self.workers.sync(weights[DEFAULT_POLICY_ID], self.filter.get_state(),
                              exploration[DEFAULT_POLICY_ID])
        batch, episodes = self.workers.sample(1, self.filter.merge_delta)
        return (batch if self.is_multi_agent else {DEFAULT_POLICY_ID: batch}), episodes

    def _implements(self, option: str) -> bool:
        return option == "input"

    def _offline_transitions(self) -> tuple[dict[str, dict[str, np.ndarray]], int]:
        """The next logged batch as ``{policy_id: transitions}`` and its env steps (written
        by DQN or SAC with output=DIR; a multi-agent run's by policy)."""
        from raylite.rllib._offline import MultiAgentBatch
        batch = self.reader.next()
        if isinstance(batch, MultiAgentBatch) != self.is_multi_agent:
            kinds = ("multi-agent", "single-agent")[::1 if self.is_multi_agent else -1]
            raise ValueError(f"offline data at {self.algo_config.input_} is {kinds[1]}, this "
                             f"{self.algo_name} {kinds[0]}: train on data of its own kind")
        if not self.is_multi_agent:
            rows = self._transitions(batch)
            return {DEFAULT_POLICY_ID: rows}, len(rows[OBS])
        unknown = [pid for pid in batch if pid not in self.units]
        if unknown:
            raise ValueError(f"offline data holds policies {unknown} this {self.algo_name} "
                             f"does not have (policies: {', '.join(self.units)})")
        return {pid: self._transitions(rows) for pid, rows in batch.items()}, batch.count

    def _transitions(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [c for c in (OBS, ACTIONS, REWARDS, NEW_OBS, TERMINATEDS) if c not in batch]
        if missing:
            raise ValueError(f"offline data for {self.algo_name} needs transitions; these "
                             f"batches lack {', '.join(missing)} (write them with "
                             f"{self.algo_name} or DQN and output=DIR)")
        rows = len(batch[OBS])
        discounts = batch.get(DISCOUNTS, np.full(rows, self.algo_config.gamma, np.float32))
        return {OBS: batch[OBS].astype(np.float32), ACTIONS: batch[ACTIONS],
                REWARDS: batch[REWARDS].astype(np.float32),
                NEW_OBS: batch[NEW_OBS].astype(np.float32),
                TERMINATEDS: batch[TERMINATEDS].astype(np.float32),
                DISCOUNTS: np.asarray(discounts, np.float32)}

    def learn_from_replay(self, unit: Any, sampled: int, lifetime: int) -> dict[str, float]:
        """Steps 3 and 4 for one policy, once enough steps are in."""
        config = unit.config
        if lifetime < config.num_steps_sampled_before_learning_starts or \
                not len(unit.state["replay_buffer"]):
            return {}
        # 3. gradient steps on replayed transitions
        stats = {}
        for _ in range(self._updates_per_round(unit, sampled)):
            minibatch = unit.state["replay_buffer"].sample(config.train_batch_size)
            indices = minibatch.pop(BATCH_INDEXES)
            stats = self.learn_on_minibatch(unit, minibatch)
            unit.state["replay_buffer"].update_priorities(indices, stats.pop("td_error"))
            unit.state["num_updates"] += 1
        # 4. the target network follows
        if lifetime - unit.state["last_target_update"] >= config.target_network_update_freq:
            unit.learner.update_target(config.tau)
            unit.state["last_target_update"] = lifetime
        return stats

    def exploration_state(self, unit: Any, timestep: int) -> dict | None:
        """What the workers explore with: epsilon at ``timestep`` env steps."""
        return {"epsilon": unit.state["epsilon"](timestep)}

    @staticmethod
    def _updates_per_round(unit: Any, sampled: int) -> int:
        """One train batch per round, or as many as keep the replayed steps at
        training_intensity times the sampled ones (fractions carry over, so a low intensity
        trains once every few rounds, as RLlib's round-robin weights do)."""
        config = unit.config
        if config.training_intensity is None:
            return 1
        owed = unit.state.get("owed_updates", 0.0) + (
            sampled * config.training_intensity / config.train_batch_size)
        updates = int(owed + 1e-9)
        unit.state["owed_updates"] = owed - updates
        return updates

    def learn_on_minibatch(self, unit: Any, minibatch: dict[str, np.ndarray]) -> dict[str, Any]:
        return unit.learner.learn_on_minibatch(minibatch, {})

    # ---- checkpoints: the target network and counters (the buffer when asked) ---------------
    def learner_state(self, unit: Any) -> dict[str, Any]:
        state = {"target_weights": unit.learner.get_target_weights(),
                 "last_target_update": unit.state["last_target_update"],
                 "num_updates": unit.state["num_updates"]}
        if unit.config.store_buffer_in_checkpoints:
            state["replay_buffer"] = unit.state["replay_buffer"].get_state()
        return state

    def set_learner_state(self, unit: Any, state: dict[str, Any]) -> None:
        unit.learner.set_target_weights(state["target_weights"])
        unit.state["last_target_update"] = state["last_target_update"]
        unit.state["num_updates"] = state["num_updates"]
        if "replay_buffer" in state:
            unit.state["replay_buffer"].set_state(state["replay_buffer"])


DQNTrainer = DQN


class DQNConfig(ConfigBuilder):
    """Ray 2.x's builder for DQN's config.

    Example:
        >>> config = (DQNConfig().environment("CartPole-v1")
        ...           .training(lr=1e-3, n_step=3, epsilon=[[0, 1.0], [5000, 0.05]],
        ...                     replay_buffer_config={"capacity": 10000}))
        >>> config.to_dict()["n_step"], config.algo_class.__name__
        (3, 'DQN')
    """

    algo_name = "DQN"

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class or DQN)


DEFAULT_CONFIG: dict[str, Any] = AlgorithmConfig.for_algorithm("DQN").to_dict()
