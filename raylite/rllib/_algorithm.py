"""The algorithm as a ``tune.Trainable``: what every algorithm shares around its training step.

    Algorithm(config, env)
      setup:   check the config ─> resolve the env (probe one for its spaces) ─> ModelSpec
               ─> the learner policy (torch or tf) ─> the rollout workers (WorkerSet)
      step:    training_step() (the algorithm's own: _ppo.py) ─> episode metrics ─> result
      save / restore:  _checkpoint.py (weights as numpy, so acting needs no framework)
      compute_single_action / evaluate / get_policy: act with NumpyPolicy and the filter

Run it directly (``algo.train()``) or through Tune (``tune.run(PPO, config=...)``), as RLlib.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import os
import time
from typing import Any

import numpy as np

from raylite.rllib import _checkpoint
from raylite import _registry
from raylite._suggest import did_you_mean
from raylite.rllib._callbacks import make_callbacks, summarize_custom_metrics
from raylite.rllib._config import AlgorithmConfig
from raylite.rllib._envs import EnvSpec, action_info, preprocessor, resolve_env
from raylite.rllib._filters import make_filter
from raylite.rllib._model import ModelSpec, init_weights
from raylite.rllib._multi_agent import (
    MultiAgentEnv,
    PolicySpec,
    map_agent,
    policy_specs,
    run_multi_agent_episodes,
)
from raylite.rllib._policy_view import Policy, RLModule
from raylite.rllib._rollout_worker import (
    WorkerSet,
    action_adapter,
    flattener,
    run_episodes,
)
from raylite.tune import Trainable

DEFAULT_POLICY_ID = "default_policy"


def results_root() -> str:
    """Where an algorithm run outside Tune saves: $RAYLITE_RESULTS_DIR or ~/ray_results."""
    from raylite._storage import results_dir
    return results_dir()


def env_label(env: Any) -> str:
    """The env as it appears in directory names."""
    name = env if isinstance(env, str) else getattr(env, "__name__", "env")
    return str(name).replace("/", "_").replace(":", "_")


class Algorithm(Trainable):
    """Base of the algorithms; a subclass defines ``training_step`` and its learner state."""

    _registered: dict | None = None  # what the rllib CLI ships to the trial's process
    algo_name = "PPO"                # whose config keys and defaults (AlgorithmConfig)

    def __init__(self, config: Any = None, env: Any = None, logger_creator: Any = None,
                 trial_info: dict | None = None):
        """Build the algorithm.

        Args:
            config: a dict of config keys (RLlib 1.9 names, see ``AlgorithmConfig``) or a
                ``PPOConfig``.
            env: the env, if not in ``config["env"]``.
            logger_creator, trial_info: passed by Tune; outside Tune, checkpoints go to
                ``~/ray_results/<Algo>_<env>_<date>/`` (or $RAYLITE_RESULTS_DIR).
        """
        if config is not None and not isinstance(config, dict):
            if not hasattr(config, "to_dict"):
                raise TypeError(f"config must be a dict or a PPOConfig, got {type(config).__name__}")
            config = config.to_dict()
        config = dict(config or {})
        if env is not None:
            config["env"] = env
        if trial_info is None:
            stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            name = f"{type(self).__name__}_{env_label(config.get('env'))}_{stamp}"
            trial_info = {"logdir": os.path.join(results_root(), name)}
        super().__init__(config, logger_creator, trial_info)

    # ---- setup -------------------------------------------------------------------------------
    def setup(self, config: dict) -> None:
        _registry.install(self._registered)
        self.algo_config = config = AlgorithmConfig.from_dict(config, self.algo_name)
        self._check_unimplemented(config)
        _warn_hints(config)
        self.external = callable(config.input_)   # clients act through a PolicyServerInput
        if self.external:
            if config.observation_space is None or config.action_space is None:
                raise ValueError("an external env (input_=PolicyServerInput): set "
                                 "observation_space and action_space in .environment()")
            self.env_spec: EnvSpec | None = None
            self.observation_space, self.action_space = (config.observation_space,
                                                         config.action_space)
            self.is_multi_agent = False
        else:
            self.env_spec = resolve_env(config.env, config.env_config)
            probe = self.env_spec.make()
            self.observation_space = probe.observation_space
            self.action_space = probe.action_space
            self.is_multi_agent = isinstance(probe, MultiAgentEnv)
            probe.close()
            _check_spaces(config, self.observation_space, self.action_space)
        self.units: dict[str, PolicyUnit] = self._make_units(config)
        default = self.units.get(DEFAULT_POLICY_ID) or next(iter(self.units.values()))
        self.learner, self.model_spec = default.learner, default.model_spec
        self.policies_to_train = list(config.policies_to_train or self.units)
        unknown = [pid for pid in self.policies_to_train if pid not in self.units]
        if unknown:
            raise ValueError(f"policies_to_train names {unknown}, which are not policies "
                             f"(policies: {', '.join(self.units)})")
        obs_size, self._flatten = preprocessor(self.observation_space)
        self.filter = make_filter(config.observation_filter, (obs_size,))
        self.workers = WorkerSet(self.env_spec, config, self.model_spec,
                                 self.units if self.is_multi_agent else None,
                                 external=self.external)
        self.workers.learner_worker = _LearnerWorker(self)
        self._rng = np.random.default_rng(config.seed)
        self._acting: dict[str, Any] = {}
        self._eval_env: Any = None
        self.timers: dict[str, float] = {}
        self.timesteps_total = 0
        self.episodes_total = 0
        self._recent_episodes: collections.deque = collections.deque(
            maxlen=config.metrics_smoothing_episodes)
        self.callbacks = make_callbacks(config.callbacks)
        if self.callbacks is not None:
            self.callbacks.on_algorithm_init(algorithm=self)

    @property
    def env_label(self) -> str:
        return self.env_spec.name if self.env_spec is not None else "the external env"

    def _make_units(self, config: AlgorithmConfig) -> dict[str, PolicyUnit]:
        """One policy (network, learner, config) per policy id: ``default_policy`` alone for
        a single-agent env; the ``multi_agent`` policies (with their config overrides) else."""
        if not self.is_multi_agent:
            if config.policies is not None:
                raise ValueError(f"multi_agent policies need a MultiAgentEnv; "
                                 f"{self.env_label} is a single-agent env")
            specs = {DEFAULT_POLICY_ID: PolicySpec()}
        else:
            specs = policy_specs(config.policies or {DEFAULT_POLICY_ID})
            if config.observation_filter != "NoFilter":
                raise ValueError("observation_filter: multi-agent training in raylite uses "
                                 "NoFilter only")
        units = {}
        for pid, spec in specs.items():
            unit_config = config
            if spec.config:
                unit_config = AlgorithmConfig.from_dict({**config.to_dict(), **spec.config},
                                                        self.algo_name)
            obs_space = spec.observation_space or self.observation_space
            act_space = spec.action_space or self.action_space
            if obs_space is None or act_space is None:
                raise ValueError(f"policy {pid!r}: give its observation_space and action_space "
                                 f"in its PolicySpec (the env has no common ones)")
            model_spec = self._model_spec(unit_config, obs_space, act_space)
            learner = self._make_learner(unit_config, model_spec,
                                         init_weights(model_spec, config.seed))
            units[pid] = PolicyUnit(pid, unit_config, model_spec, learner, obs_space, act_space)
        return units

    def _model_spec(self, config: AlgorithmConfig, observation_space: Any,
                    action_space: Any) -> ModelSpec:
        discrete, action_size = action_info(action_space)
        model = config.model
        if model.custom_model is not None:
            return self._custom_model_spec(config, observation_space, action_space)
        return ModelSpec(obs_size=preprocessor(observation_space)[0], discrete=discrete,
                         action_size=action_size, hiddens=tuple(model.fcnet_hiddens),
                         activation=model.fcnet_activation,
                         vf_share_layers=model.vf_share_layers, free_log_std=model.free_log_std)

    def _custom_model_spec(self, config: AlgorithmConfig, observation_space: Any,
                           action_space: Any) -> Any:
        from raylite.rllib._custom_model import (
            CustomKerasModelSpec,
            CustomTorchModelSpec,
            ModelCatalog,
        )
        from raylite.rllib.models.tf.tf_modelv2 import TFModelV2
        model_class = ModelCatalog.get_model_class(config.model.custom_model)
        keras = issubclass(model_class, TFModelV2)
        if keras == (config.framework == "torch"):
            raise ValueError(f"custom_model {config.model.custom_model!r} is a "
                             f"{'Keras (TFModelV2)' if keras else 'torch'} model: use "
                             f"framework={'tf' if keras else 'torch'}")
        discrete, action_size = action_info(action_space)
        spec_class = CustomKerasModelSpec if keras else CustomTorchModelSpec
        return spec_class(preprocessor(observation_space)[0], discrete, action_size,
                          model_class, config.model.to_dict(), observation_space, action_space)

    def _make_learner(self, config: AlgorithmConfig, model_spec: Any,
                      weights: dict[str, np.ndarray]) -> Any:
        if config.framework == "torch":
            from raylite.rllib._policy_torch import TorchPolicy as Learner
        else:
            from raylite.rllib._policy_tf import TFPolicy as Learner
        return Learner(model_spec, weights, self.loss_function(config),
                       lr=self.learning_rates(config, model_spec), grad_clip=config.grad_clip,
                       seed=config.seed, num_threads=config.num_cpus_for_driver,
                       target_names=model_spec.target_names())

    def learning_rates(self, config: AlgorithmConfig, model_spec: Any
                       ) -> float | dict[str, float]:
        """``lr``, or ``{parameter name prefix: rate}`` (SAC)."""
        return config.lr

    def _check_unimplemented(self, config: AlgorithmConfig) -> None:
        """Refuse the options raylite accepts in configs but does not implement yet."""
        if config.input_ != "sampler" and not callable(config.input_) and not self._implements(
                "input"):
            raise NotImplementedError(f"config 'input': {self.algo_name} in raylite learns "
                                      f"from its env only ('sampler')")

    def _implements(self, option: str) -> bool:
        return False

    # ---- what an algorithm defines --------------------------------------------------------------
    def loss_function(self, config: AlgorithmConfig) -> Any:
        raise NotImplementedError

    def training_step(self) -> tuple[int, list[tuple[float, int]], dict[str, dict]]:
        """One iteration: ``(env steps sampled, finished episodes, {policy id: learner
        stats})``."""
        raise NotImplementedError

    def learner_state(self, unit: PolicyUnit) -> dict[str, Any]:
        """A policy's learning state besides its weights (for checkpoints)."""
        return {}

    def set_learner_state(self, unit: PolicyUnit, state: dict[str, Any]) -> None:
        pass

    # ---- one iteration -------------------------------------------------------------------------
    def step(self) -> dict:
        start = time.perf_counter()
        steps, episodes, learner_stats = self.training_step()
        self._acting = {}
        self.timesteps_total += steps
        self.episodes_total += len(episodes)
        elapsed = time.perf_counter() - start
        result = self._episode_metrics(episodes)
        result.update(timesteps_total=self.timesteps_total, timesteps_this_iter=steps,
                      episodes_total=self.episodes_total,
                      num_env_steps_sampled=self.timesteps_total,
                      num_env_steps_trained=self.timesteps_total,
                      num_env_steps_sampled_lifetime=self.timesteps_total,
                      env_steps_per_s=steps / elapsed if elapsed > 0 else 0.0,
                      info={"learner": {pid: {"learner_stats": stats}
                                        for pid, stats in learner_stats.items()},
                            "num_steps_sampled": self.timesteps_total,
                            "num_steps_trained": self.timesteps_total},
                      timers=dict(self.timers),
                      custom_metrics=summarize_custom_metrics(self.workers.take_custom_metrics()),
                      config=self.algo_config.to_dict())
        if self.is_multi_agent:
            returns = self.workers.take_policy_returns()
            for name, reduce in (("mean", np.mean), ("min", np.min), ("max", np.max)):
                result[f"policy_reward_{name}"] = {pid: float(reduce(values))
                                                   for pid, values in returns.items() if values}
        interval = self.algo_config.evaluation_interval
        if interval and (self.iteration + 1) % interval == 0:
            result.update(self.evaluate())
        if self.callbacks is not None:
            self.callbacks.on_train_result(algorithm=self, result=result, trainer=self)
        if self.algo_config.env_task_fn is not None:  # curriculum: the next tasks
            light = {k: v for k, v in result.items() if k not in ("config", "hist_stats")}
            result["env_tasks"] = self.workers.set_tasks(self.algo_config.env_task_fn, light)
        return result

    def _episode_metrics(self, episodes: list[tuple[float, int]]) -> dict:
        """RLlib's episode metrics: over this iteration's episodes, or over the latest
        ``metrics_smoothing_episodes`` when this iteration finished fewer."""
        self._recent_episodes.extend(episodes)
        window = episodes if len(episodes) >= self._recent_episodes.maxlen else list(
            self._recent_episodes)
        metrics = summarize_episodes(window)
        metrics["episodes_this_iter"] = len(episodes)
        metrics["episode_return_mean"] = metrics["episode_reward_mean"]
        metrics["episode_return_min"] = metrics["episode_reward_min"]
        metrics["episode_return_max"] = metrics["episode_reward_max"]
        metrics["env_runners"] = {
            "episode_return_mean": metrics["episode_reward_mean"],
            "episode_return_min": metrics["episode_reward_min"],
            "episode_return_max": metrics["episode_reward_max"],
            "episode_len_mean": metrics["episode_len_mean"], "num_episodes": len(episodes)}
        return metrics

    # ---- weights and acting ------------------------------------------------------------------------
    def _unit(self, policy_id: str) -> PolicyUnit:
        if policy_id not in self.units:
            raise ValueError(f"unknown policy_id {policy_id!r}{did_you_mean(policy_id, self.units)}"
                             f" (policies: {', '.join(map(repr, self.units))})")
        return self.units[policy_id]

    def get_policy(self, policy_id: str = DEFAULT_POLICY_ID) -> Policy:
        return Policy(self, self._unit(policy_id))

    def get_module(self, module_id: str = DEFAULT_POLICY_ID) -> RLModule:
        """Ray 2.x: the RLModule view, ``get_module().forward_inference({"obs": batch})``."""
        return RLModule(self, self._unit(module_id).policy_id)

    @property
    def env_runner_group(self) -> WorkerSet:
        """Ray 2.x's name of ``workers``."""
        return self.workers

    @property
    def env_runner(self) -> Any:
        return self.workers.local_worker()

    def get_weights(self, policies: list[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
        return {pid: unit.learner.get_weights() for pid, unit in self.units.items()
                if policies is None or pid in policies}

    def set_weights(self, weights: dict) -> None:
        """Set weights: ``{name: array}`` (the default policy's), or ``{policy_id: {name:
        array}}``."""
        from raylite.rllib._model import check_weights
        by_policy = weights if set(weights) <= set(self.units) else {
            next(iter(self.units)) if DEFAULT_POLICY_ID not in self.units
            else DEFAULT_POLICY_ID: weights}
        for pid, policy_weights in by_policy.items():
            unit = self._unit(pid)
            check_weights(unit.model_spec, policy_weights)
            unit.learner.set_weights(policy_weights)
        self._acting = {}

    def _acting_policy(self, policy_id: str = DEFAULT_POLICY_ID) -> Any:
        if policy_id not in self._acting:
            unit = self._unit(policy_id)
            self._acting[policy_id] = unit.model_spec.acting_policy(action_adapter(
                unit.action_space, self.algo_config.normalize_actions), unit.learner.get_weights())
        return self._acting[policy_id]

    def compute_single_action(self, observation: Any = None, state: Any = None, *,
                              prev_action: Any = None, prev_reward: Any = None, info: Any = None,
                              policy_id: str = DEFAULT_POLICY_ID, full_fetch: bool = False,
                              explore: bool | None = None, **kwargs: Any) -> Any:
        """The action for one observation (sampled if ``explore``, default: config
        ``explore``; else the most likely / mean action). ``full_fetch=True`` returns
        ``(action, [], extra)`` with the distribution inputs, log-probability and value."""
        if observation is None:
            observation = kwargs.pop("obs", None)
        explore = self.algo_config.explore if explore is None else explore
        flat = preprocessor(self._unit(policy_id).observation_space)[1](observation)
        out = self.act_on_batch(flat[None], explore, policy_id)
        action = out["env_actions"][0]
        if not full_fetch:
            return action
        extra = {k: v[0] for k, v in out.items() if k not in ("actions", "env_actions")}
        return action, [], extra

    compute_action = compute_single_action

    def compute_actions(self, observations: dict[Any, Any], state: Any = None, *,
                        explore: bool | None = None, policy_id: str | None = None,
                        full_fetch: bool = False, **kwargs: Any) -> Any:
        """Actions for ``{agent_id: observation}``: ``{agent_id: action}``. Each agent acts
        with ``policy_id``, else the policy ``policy_mapping_fn`` maps it to."""
        if not isinstance(observations, dict):
            raise TypeError(f"compute_actions takes {{agent_id: observation}}, got "
                            f"{type(observations).__name__}; use compute_single_action for one")
        explore = self.algo_config.explore if explore is None else explore
        by_policy: dict[str, list] = {}
        for agent in observations:
            pid = policy_id or map_agent(self.algo_config.policy_mapping_fn, agent,
                                         list(self.units))
            by_policy.setdefault(pid, []).append(agent)
        actions, extra = {}, {}
        for pid, agents in by_policy.items():
            flatten = preprocessor(self._unit(pid).observation_space)[1]
            out = self.act_on_batch(np.stack([flatten(observations[a]) for a in agents]),
                                    explore, pid)
            for i, agent in enumerate(agents):
                actions[agent] = out["env_actions"][i]
                extra[agent] = {k: v[i] for k, v in out.items()
                                if k not in ("actions", "env_actions")}
        return (actions, [], extra) if full_fetch else actions

    def act_on_batch(self, flat_obs: np.ndarray, explore: bool,
                     policy_id: str = DEFAULT_POLICY_ID) -> dict[str, np.ndarray]:
        """The acting policy's outputs for a batch of flat observations (filtered here)."""
        obs = np.asarray(flat_obs, np.float32)
        if not self.is_multi_agent:
            obs = self.filter(obs, update=False)
        return self._acting_policy(policy_id).compute_actions(obs, explore, self._rng)

    def evaluate(self) -> dict:
        """``{"evaluation": metrics}`` of ``evaluation_num_episodes`` episodes on a fresh env,
        greedy unless ``evaluation_config`` has ``explore: true``."""
        if self.env_spec is None:
            raise ValueError("evaluate(): this algorithm learns from an external env and has "
                             "no env of its own to evaluate in")
        if self._eval_env is None:
            self._eval_env = self.env_spec.make()
            if not self.is_multi_agent:
                self._eval_env.reset(seed=self.algo_config.seed)  # later resets go on from here
        explore = bool(self.algo_config.evaluation_config.get("explore", False))
        if self.is_multi_agent:
            episodes = run_multi_agent_episodes(
                self._eval_env, lambda obs: self.compute_actions(obs, explore=explore),
                self.algo_config.evaluation_num_episodes)
            metrics = summarize_episodes(episodes)
            metrics["episodes_this_iter"] = len(episodes)
            return {"evaluation": metrics}
        acting = self._acting_policy()

        def act(flat_obs: np.ndarray) -> Any:
            obs = self.filter(flat_obs[None], update=False)
            return acting.compute_actions(obs, explore, self._rng)["env_actions"][0]

        episodes = run_episodes(self._eval_env, act, flattener(self._eval_env),
                                max_episodes=self.algo_config.evaluation_num_episodes)
        metrics = summarize_episodes([(ret, length) for ret, length, _ in episodes])
        metrics["episodes_this_iter"] = len(episodes)
        return {"evaluation": metrics}

    # ---- checkpoints ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Everything a checkpoint holds: the default (or first) policy at the top level, as
        ``rllib rollout`` reads it, and every policy under ``policies``."""
        default = self.units.get(DEFAULT_POLICY_ID) or next(iter(self.units.values()))
        policies = {pid: {"weights": unit.learner.get_weights(),
                          "optimizer": unit.learner.get_optimizer_state(),
                          "learner_state": self.learner_state(unit),
                          "model_spec": dataclasses.asdict(unit.model_spec),
                          "model_spec_type": type(unit.model_spec).__name__}
                    for pid, unit in self.units.items()}
        return {"algorithm": self.algo_name, "config": self.algo_config.to_dict(),
                "env_name": self.env_spec.name if self.env_spec else "external",
                **policies[default.policy_id],
                "policies": policies, "filter": self.filter.get_state(),
                "counters": {"iteration": self.iteration, "timesteps_total": self.timesteps_total,
                             "episodes_total": self.episodes_total},
                "spaces": (self.observation_space, self.action_space)}

    def set_state(self, state: dict) -> None:
        """Take up the state that :meth:`get_state` returned."""
        policies = state.get("policies") or {DEFAULT_POLICY_ID: state}
        for pid, unit in self.units.items():
            if pid not in policies:
                raise ValueError(f"the checkpoint has no policy {pid!r} (it has: "
                                 f"{', '.join(policies)})")
            policy = policies[pid]
            unit.learner.set_weights(policy["weights"])
            unit.learner.set_optimizer_state(policy["optimizer"])
            self.set_learner_state(unit, policy["learner_state"])
        self.filter.set_state(state["filter"])
        self.timesteps_total = state["counters"]["timesteps_total"]
        self.episodes_total = state["counters"]["episodes_total"]
        self._acting = {}

    def save_checkpoint(self, checkpoint_dir: str) -> str:
        return _checkpoint.write(checkpoint_dir, self.iteration, self.get_state())

    def load_checkpoint(self, checkpoint: str | dict) -> None:
        state = checkpoint if isinstance(checkpoint, dict) else _checkpoint.read(checkpoint)
        framework = state["config"]["framework"]
        if (framework == "torch") != (self.algo_config.framework == "torch"):
            # weights are framework-neutral; the optimizer state is not
            state = {**state, "optimizer": None, "policies": {
                pid: {**policy, "optimizer": None}
                for pid, policy in (state.get("policies") or {}).items()} or None}
        self.set_state(state)

    def save(self, checkpoint_dir: str | None = None) -> str:
        """Save a checkpoint; returns the path of its ``checkpoint-N`` file (as RLlib 1.9)."""
        directory = super().save(checkpoint_dir)
        return _checkpoint.find(directory)

    def restore(self, checkpoint_path: str) -> None:
        """Load a checkpoint: its ``checkpoint-N`` file, its directory or a trial directory."""
        file = _checkpoint.find(checkpoint_path)
        super().restore(os.path.dirname(file))

    @classmethod
    def from_checkpoint(cls, checkpoint_path: str, **config_overrides: Any) -> Algorithm:
        """A new algorithm with a checkpoint's config (updated by ``config_overrides``) and
        state (Ray 2.x). Called on ``Algorithm``, it builds the algorithm that wrote it."""
        state = _checkpoint.read(checkpoint_path)
        target = cls
        if cls is Algorithm or cls.algo_name != state["algorithm"]:
            from raylite.rllib import get_algorithm_class
            target = get_algorithm_class(state["algorithm"])
            if cls is not Algorithm and not issubclass(target, cls):
                raise ValueError(f"{checkpoint_path} was written by {state['algorithm']}, not "
                                 f"{cls.algo_name}; use {state['algorithm']}.from_checkpoint or "
                                 f"Algorithm.from_checkpoint")
        algorithm = target(config={**state["config"], **config_overrides})
        algorithm.restore(checkpoint_path)
        return algorithm

    def save_to_path(self, path: str | None = None) -> str:
        """Ray 2.x: save a checkpoint into directory ``path``; returns the directory."""
        return os.path.dirname(self.save(path))

    def restore_from_path(self, path: str) -> None:
        """Ray 2.x: take up the checkpoint in ``path``."""
        self.restore(path)

    def cleanup(self) -> None:
        workers = getattr(self, "workers", None)
        if workers is not None:
            workers.stop()
        if getattr(self, "_eval_env", None) is not None:
            self._eval_env.close()

    @classmethod
    def default_resource_request(cls, config: dict) -> dict[str, float]:
        """The trial's resources for ``tune.run(resources_per_trial=...)``: the learner's
        ``num_cpus_for_driver`` plus ``num_cpus_per_worker`` per rollout worker."""
        merged = AlgorithmConfig.from_dict(config, cls.algo_name)
        return {"cpu": merged.num_cpus_for_driver + merged.num_workers * merged.num_cpus_per_worker,
                "gpu": merged.num_gpus}



@dataclasses.dataclass
class PolicyUnit:
    """One policy: its id, config (the algorithm's with the policy's overrides), network spec,
    learner, spaces, and the algorithm's learning state for it (PPO's KL coefficient, DQN's
    replay buffer and target counters)."""

    policy_id: str
    config: AlgorithmConfig
    model_spec: Any
    learner: Any
    observation_space: Any
    action_space: Any
    state: dict = dataclasses.field(default_factory=dict)


class _LearnerWorker:
    """The local worker of an algorithm whose sampling happens in rollout worker actors."""

    env = None  # it samples nothing

    def __init__(self, algorithm: Algorithm):
        self._algorithm = algorithm

    def get_policy(self, policy_id: str = DEFAULT_POLICY_ID) -> Policy:
        return self._algorithm.get_policy(policy_id)

    def get_weights(self) -> dict:
        return self._algorithm.get_weights()

    def set_weights(self, weights: dict) -> None:
        self._algorithm.set_weights(weights)

    def foreach_env(self, fn: Any) -> list:
        return []


def refuse_custom_model(config: AlgorithmConfig, algo_name: str) -> None:
    if config.model.custom_model is not None:
        raise NotImplementedError(f"custom_model with {algo_name}: raylite runs custom models "
                                  f"for PPO (and its multi-agent and offline forms) only")


_WARNED: set[str] = set()


def _warn_hints(config: AlgorithmConfig) -> None:
    """Once per process, for the options Ray treats as hints that raylite does not follow."""
    import warnings
    for name, used, what in (
            ("num_gpus", config.num_gpus > 0, "raylite learns on the CPU"),
            ("evaluation_num_workers", config.evaluation_num_workers > 0,
             "evaluation runs in the algorithm's process")):
        if used and name not in _WARNED:
            _WARNED.add(name)
            warnings.warn(f"config {name}: {what}; the setting is a hint raylite does not "
                          f"follow", stacklevel=3)


def _check_spaces(config: AlgorithmConfig, observation_space: Any, action_space: Any) -> None:
    for name, given, actual in (("observation_space", config.observation_space, observation_space),
                                ("action_space", config.action_space, action_space)):
        if given is not None and given != actual:
            raise ValueError(f"config {name} {given} differs from the env's {actual}; leave it "
                             f"out (raylite takes the env's) or make them equal")


def summarize_episodes(episodes: list[tuple[float, int]]) -> dict:
    """episode_reward_mean/min/max and episode_len_mean (NaN when there are none)."""
    returns = [float(r) for r, _ in episodes]
    lengths = [int(n) for _, n in episodes]
    nan = float("nan")
    return {"episode_reward_mean": float(np.mean(returns)) if returns else nan,
            "episode_reward_min": float(np.min(returns)) if returns else nan,
            "episode_reward_max": float(np.max(returns)) if returns else nan,
            "episode_len_mean": float(np.mean(lengths)) if lengths else nan,
            "hist_stats": {"episode_reward": returns, "episode_lengths": lengths}}
