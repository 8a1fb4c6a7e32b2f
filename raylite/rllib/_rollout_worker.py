"""Rollout workers: actors that act in their envs with the latest weights and return batches.

    trainer                                        RolloutWorker actor (x num_workers)
    sync(weights, filter state) ─ one put ───────> set_state(...)
    sample(train_batch_size):  rounds of ────────> sample(): rollout_fragment_length steps of
                               sample.remote()     num_envs_per_worker envs (a VectorEnv),
                             <──────────────────── GAE done here; (batch, episodes, filter delta)
    merge filter deltas, concatenate batches

With ``num_workers: 0`` one RolloutWorker runs inside the trainer. Workers act with
``NumpyPolicy`` and never import torch or TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

import raylite
from raylite.rllib._buffer import RolloutBuffer, batch_size, concat_batches
from raylite.rllib._config import AlgorithmConfig
from raylite.rllib._envs import EnvSpec, LegacyEnv, VectorEnv, action_info, preprocessor
from raylite.rllib._filters import make_filter
from raylite.rllib._model import ActionAdapter, ModelSpec
from raylite.rllib._replay_buffer import NStepCollector


def action_adapter(action_space: Any, normalize: bool) -> ActionAdapter:
    discrete, _ = action_info(action_space)
    if discrete:
        return ActionAdapter(True)
    return ActionAdapter(False, action_space.low, action_space.high, action_space.shape, normalize)


class RolloutWorker:
    """Samples fragments of experience from a VectorEnv with a NumpyPolicy."""

    def __init__(self, env_spec: EnvSpec, config: AlgorithmConfig, model_spec: ModelSpec,
                 worker_index: int = 0):
        self.config = config
        self.worker_index = worker_index
        self._writer: Any = None
        self.env = VectorEnv(env_spec, config.num_envs_per_worker, config.seed, config.horizon,
                             worker_index)
        self.filter = make_filter(config.observation_filter, (self.env.obs_size,))
        self.policy = model_spec.acting_policy(action_adapter(self.env.action_space,
                                                              config.normalize_actions))
        self.on_policy = model_spec.on_policy
        from raylite.rllib._callbacks import make_callbacks
        self.callbacks = make_callbacks(config.callbacks)
        self.env.callbacks, self.env.worker = self.callbacks, self
        seed = None if config.seed is None else config.seed + 7919 * worker_index
        self.rng = np.random.default_rng(seed)
        self._obs: np.ndarray | None = None  # the raw observations the next step acts on
        self._n_step = None if self.on_policy else NStepCollector(config.n_step, config.gamma)

    def set_state(self, state: tuple) -> None:
        """Take the trainer's weights, observation filter and exploration state (epsilon)."""
        weights, filter_state, *exploration = state
        self.policy.set_weights(weights)
        if filter_state is not None:
            self.filter.set_state(filter_state)
        if exploration and exploration[0] is not None:
            self.policy.set_exploration(exploration[0])

    def sample(self) -> dict[str, Any]:
        """One fragment: ``rollout_fragment_length`` steps of every env (with
        ``complete_episodes``, then on until each env's episode ends); GAE done for
        on-policy learning, else n-step transitions for a replay buffer. With ``output``
        set, the batch is also appended to the JSON files there."""
        out = self._sample_fragment() if self.on_policy else self._sample_transitions()
        if self.config.output is not None:
            if self._writer is None:
                from raylite.rllib._offline import JsonWriter
                self._writer = JsonWriter(self.config.output, worker_index=self.worker_index)
            self._writer.write(out["batch"])
        return out

    def _sample_fragment(self) -> dict[str, Any]:
        config = self.config
        complete = config.batch_mode == "complete_episodes"
        buffer = RolloutBuffer(self.env.num_envs)
        raw_obs = self.env.reset() if self._obs is None else self._obs
        active = np.ones(self.env.num_envs, bool)
        while True:
            obs = self.filter(raw_obs)
            out = self.policy.compute_actions(obs, explore=True, rng=self.rng)
            next_obs, rewards, terminated, truncated, final_obs = self.env.step(
                out["env_actions"], active if complete else None)
            if truncated.any():  # a time limit is not an end of the task: bootstrap the value
                final = self.filter(final_obs[truncated], update=False)
                rewards[truncated] += config.gamma * self.policy.values(final)
            dones = terminated | truncated
            buffer.add(obs=obs, actions=out["actions"], action_logp=out["action_logp"],
                       action_dist_inputs=out["action_dist_inputs"], vf_preds=out["vf_preds"],
                       rewards=rewards, dones=dones, valid=active.copy())
            raw_obs = np.where(active[:, None], next_obs, raw_obs)
            if complete and len(buffer) >= config.rollout_fragment_length:
                active &= ~dones
                if not active.any():
                    break
            elif not complete and len(buffer) >= config.rollout_fragment_length:
                break
        self._obs = raw_obs
        last_values = self.policy.values(self.filter(raw_obs, update=False))
        batch = buffer.finish(last_values, config.gamma, config.lambda_, config.use_gae,
                              config.use_critic)
        if self.callbacks is not None:
            self.callbacks.on_sample_end(worker=self, samples=batch)
        return {"batch": batch, "episodes": self.env.take_episodes(),
                "filter_delta": self.filter.take_delta(),
                "custom_metrics": self.env.take_custom_metrics()}

    def _sample_transitions(self) -> dict[str, Any]:
        """``rollout_fragment_length`` steps of every env as n-step transitions (a step whose
        n steps run past the fragment's end becomes a row with the next fragment)."""
        config = self.config
        columns: dict[str, list[np.ndarray]] = {name: [] for name in (
            "obs", "actions", "rewards", "new_obs", "terminateds", "dones")}
        raw_obs = self.env.reset() if self._obs is None else self._obs
        for _ in range(config.rollout_fragment_length):
            obs = self.filter(raw_obs)
            out = self.policy.compute_actions(obs, explore=True, rng=self.rng)
            next_obs, rewards, terminated, truncated, final_obs = self.env.step(
                out["env_actions"])
            dones = terminated | truncated
            new_obs = np.where(dones[:, None], final_obs, next_obs)
            step = {"obs": obs, "actions": out["actions"], "rewards": rewards,
                    "new_obs": self.filter(new_obs, update=False), "terminateds": terminated,
                    "dones": dones}
            for name, value in step.items():
                columns[name].append(value)
            raw_obs = next_obs
        self._obs = raw_obs
        steps = {name: np.stack(values) for name, values in columns.items()}
        batch = self._n_step.add(steps)
        if self.callbacks is not None:
            self.callbacks.on_sample_end(worker=self, samples=batch)
        return {"batch": batch, "env_steps": config.rollout_fragment_length * self.env.num_envs,
                "episodes": self.env.take_episodes(),
                "filter_delta": self.filter.take_delta(),
                "custom_metrics": self.env.take_custom_metrics()}

    def ping(self) -> bool:
        return True

    def get_policy(self, policy_id: str = "default_policy") -> Any:
        """The worker's acting policy (numpy): get_weights, set_weights, compute_actions."""
        return self.policy

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(self, *args)`` (what ``WorkerSet.foreach_worker`` runs on each worker)."""
        return fn(self, *args)

    def foreach_env(self, fn: Callable[[Any], Any]) -> list[Any]:
        return [fn(env) for env in self.env.envs]

    def foreach_env_with_context(self, fn: Callable[[Any, Any], Any]) -> list[Any]:
        """``fn(env, env_context)`` for each of the worker's envs."""
        from raylite.rllib._envs import EnvContext
        return [fn(env, EnvContext(self.config.env_config, self.worker_index, i,
                                   self.config.num_workers))
                for i, env in enumerate(self.env.envs)]

    def set_tasks(self, env_task_fn: Callable, result: dict) -> list[Any]:
        """Curriculum: ``env.set_task(env_task_fn(result, env, env_context))`` on each env."""
        return self.foreach_env_with_context(
            lambda env, context: set_env_task(env_task_fn, result, env, context))

    def close(self) -> None:
        self.env.close()


def set_env_task(env_task_fn: Callable, result: dict, env: Any, context: Any) -> Any:
    """Curriculum for one env: ``env.set_task(env_task_fn(result, env, context))``; the task."""
    target = env if hasattr(env, "set_task") else getattr(env, "unwrapped", env)
    if not hasattr(target, "set_task"):
        raise TypeError(f"env_task_fn needs envs with set_task (a TaskSettableEnv); "
                        f"{type(target).__name__} has none")
    task = env_task_fn(result, target, context)
    target.set_task(task)
    return task


@dataclasses.dataclass(frozen=True)
class ActingSpec:
    """What a multi-agent worker needs of a policy (not its learner)."""

    config: Any
    model_spec: Any
    observation_space: Any
    action_space: Any


class WorkerSet:
    """The trainer's rollout workers: remote actors, or one local worker (``num_workers: 0``)."""

    def __init__(self, env_spec: EnvSpec | None, config: AlgorithmConfig, model_spec: ModelSpec,
                 units: dict[str, Any] | None = None, external: bool = False):
        """``units`` (policy id -> PolicyUnit) makes the workers multi-agent ones;
        ``external`` one local worker that serves external envs' clients."""
        from raylite.rllib._multi_agent import MultiAgentWorker
        self.local: RolloutWorker | None = None
        self.remote: list[Any] = []
        self.learner_worker: Any = None   # set by the algorithm
        self.policy_returns: dict[str, list[float]] = {}
        self.custom_metrics: list[dict[str, float]] = []
        if external:
            from raylite.rllib._external import ExternalWorker
            if config.num_workers:
                raise ValueError("an external env (input_=PolicyServerInput) is served by the "
                                 "algorithm's process: set num_env_runners=0")
            self.local = ExternalWorker(config, model_spec, config.observation_space,
                                        config.action_space)
            return
        worker_class, spec = (RolloutWorker, model_spec) if units is None else (
            MultiAgentWorker, {pid: ActingSpec(unit.config, unit.model_spec,
                                               unit.observation_space, unit.action_space)
                               for pid, unit in units.items()})
        if config.num_workers == 0:
            self.local = worker_class(env_spec, config, spec, 0)
        else:
            actor = raylite.remote(worker_class).options(num_cpus=config.num_cpus_per_worker)
            self.remote = [actor.remote(env_spec, config, spec, i + 1)
                           for i in range(config.num_workers)]
            raylite.get([worker.ping.remote() for worker in self.remote])  # raise setup errors now

    def local_worker(self) -> Any:
        """The in-process worker: the sampling one (``num_workers: 0``), else the learner's
        stand-in (``get_policy()`` gives the algorithm's policy), as RLlib's local worker."""
        return self.local if self.local is not None else self.learner_worker

    def remote_workers(self) -> list[Any]:
        return list(self.remote)

    def foreach_worker(self, fn: Callable[[Any], Any], local_worker: bool = True) -> list[Any]:
        """``[fn(worker) for each worker]``: the local one first, then each remote actor's."""
        results = [fn(self.local_worker())] if local_worker else []
        if self.remote:
            results.extend(raylite.get([worker.apply.remote(fn) for worker in self.remote]))
        return results

    def set_tasks(self, env_task_fn: Callable, result: dict) -> list[Any]:
        """Curriculum: every worker's envs take their next task; the tasks set."""
        if self.local is not None:
            return self.local.set_tasks(env_task_fn, result)
        tasks = raylite.get([worker.set_tasks.remote(env_task_fn, result)
                             for worker in self.remote])
        return [task for worker_tasks in tasks for task in worker_tasks]

    def num_remote_workers(self) -> int:
        return len(self.remote)

    def sync(self, weights: dict[str, np.ndarray], filter_state: Any,
             exploration: dict | None = None) -> None:
        """Send the weights, the filter's state and the exploration state (DQN's epsilon)
        to every worker (one object for all)."""
        if self.local is not None:
            self.local.set_state((weights, filter_state, exploration))
            return
        state = raylite.put((weights, filter_state, exploration))
        for worker in self.remote:
            worker.set_state.remote(state)

    def sample(self, min_steps: int, merge_delta: Callable[[Any], None]
               ) -> tuple[dict[str, np.ndarray], list[tuple[float, int]]]:
        """Rounds of one fragment per worker until ``min_steps`` steps are in: the batch and
        the finished episodes' (return, length). Filter deltas go to ``merge_delta``."""
        batches, episodes, steps, multi_agent = [], [], 0, False
        while steps < min_steps:
            if self.local is not None:
                outs = [self.local.sample()]
            else:
                outs = raylite.get([worker.sample.remote() for worker in self.remote])
            for out in outs:
                batches.append(out["batch"])
                episodes.extend(out["episodes"])
                self.custom_metrics.extend(out.get("custom_metrics", ()))
                merge_delta(out["filter_delta"])
                if "policy_returns" in out:   # multi-agent: {policy id: batch}, env steps
                    multi_agent = True
                    steps += out["env_steps"]
                    for pid, values in out["policy_returns"].items():
                        self.policy_returns.setdefault(pid, []).extend(values)
                else:
                    steps += out["env_steps"] if "env_steps" in out else batch_size(out["batch"])
        self.last_env_steps = steps
        if multi_agent:
            pids = {pid for batch in batches for pid in batch}
            return {pid: concat_batches([b[pid] for b in batches if pid in b])
                    for pid in pids}, episodes
        return concat_batches(batches), episodes

    def take_custom_metrics(self) -> list[dict[str, float]]:
        metrics, self.custom_metrics = self.custom_metrics, []
        return metrics

    def take_policy_returns(self) -> dict[str, list[float]]:
        """Each policy's agent returns of the episodes finished since the last call."""
        returns, self.policy_returns = self.policy_returns, {}
        return returns

    def stop(self) -> None:
        if self.local is not None:
            self.local.close()
        for worker in self.remote:
            raylite.kill(worker)
        self.remote = []


def run_episodes(env: Any, act: Callable[[np.ndarray], Any], flatten: Callable[[Any], np.ndarray],
                 *, max_episodes: int | None = None, max_steps: int | None = None,
                 render: bool = False, on_step: Callable[..., None] | None = None,
                 on_episode: Callable[[int, float, int, bool], None] | None = None
                 ) -> list[tuple[float, int, bool]]:
    """Run ``env`` with ``act(flat obs) -> env action`` until ``max_episodes`` episodes or
    ``max_steps`` steps; returns each episode's (return, length, finished). ``on_step(obs,
    action, next_obs, reward, done)`` sees every step and ``on_episode(number, return, length,
    finished)`` every episode; envs on the old API are rendered here (Gymnasium envs made with
    render_mode="human" render themselves)."""
    episodes: list[tuple[float, int, bool]] = []
    steps = 0
    render_by_hand = render and isinstance(env, LegacyEnv)
    while (max_episodes is None or len(episodes) < max_episodes) and (
            max_steps is None or steps < max_steps):
        obs, _ = env.reset()
        total, length, done = 0.0, 0, False
        while not done and (max_steps is None or steps < max_steps):
            action = act(flatten(obs))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            done = bool(terminated or truncated)
            total, length, steps = total + float(reward), length + 1, steps + 1
            if render_by_hand:
                env.render()
            if on_step is not None:
                on_step(obs, action, next_obs, float(reward), done)
            obs = next_obs
        episodes.append((total, length, done))
        if on_episode is not None:
            on_episode(len(episodes), total, length, done)
    return episodes


def flattener(env: Any) -> Callable[[Any], np.ndarray]:
    return preprocessor(env.observation_space)[1]
