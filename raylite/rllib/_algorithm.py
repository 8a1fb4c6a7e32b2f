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
from raylite.rllib._config import AlgorithmConfig
from raylite.rllib._envs import EnvSpec, action_info, preprocessor, resolve_env
from raylite.rllib._filters import make_filter
from raylite.rllib._model import ModelSpec, NumpyPolicy, init_weights
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
        self.env_spec: EnvSpec = resolve_env(config.env, config.env_config)
        probe = self.env_spec.make()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        _check_spaces(config, self.observation_space, self.action_space)
        self.model_spec = self._model_spec(config)
        weights = init_weights(self.model_spec, config.seed)
        self.learner = self._make_learner(weights)
        obs_size, self._flatten = preprocessor(self.observation_space)
        self.filter = make_filter(config.observation_filter, (obs_size,))
        self.workers = WorkerSet(self.env_spec, config, self.model_spec)
        self.workers.learner_worker = _LearnerWorker(self)
        self._rng = np.random.default_rng(config.seed)
        self._acting: NumpyPolicy | None = None
        self._eval_env: Any = None
        self.timers: dict[str, float] = {}
        self.timesteps_total = 0
        self.episodes_total = 0
        self._recent_episodes: collections.deque = collections.deque(
            maxlen=config.metrics_smoothing_episodes)

    def _model_spec(self, config: AlgorithmConfig) -> ModelSpec:
        discrete, action_size = action_info(self.action_space)
        model = config.model
        return ModelSpec(obs_size=preprocessor(self.observation_space)[0], discrete=discrete,
                         action_size=action_size, hiddens=tuple(model.fcnet_hiddens),
                         activation=model.fcnet_activation,
                         vf_share_layers=model.vf_share_layers, free_log_std=model.free_log_std)

    def _make_learner(self, weights: dict[str, np.ndarray]) -> Any:
        config = self.algo_config
        if config.framework == "torch":
            from raylite.rllib._policy_torch import TorchPolicy as Learner
        else:
            from raylite.rllib._policy_tf import TFPolicy as Learner
        return Learner(self.model_spec, weights, self.loss_function(), lr=self.learning_rates(),
                       grad_clip=config.grad_clip, seed=config.seed,
                       num_threads=config.num_cpus_for_driver,
                       target_names=self.model_spec.target_names())

    def learning_rates(self) -> float | dict[str, float]:
        """``lr``, or ``{parameter name prefix: rate}`` (SAC)."""
        return self.algo_config.lr

    def _check_unimplemented(self, config: AlgorithmConfig) -> None:
        """Refuse the options raylite accepts in configs but does not implement yet."""
        for name in ("env_task_fn", "policies", "policy_mapping_fn", "output", "callbacks"):
            value = getattr(config, name)
            if value is not None and not self._implements(name):
                raise NotImplementedError(f"config {name!r}: not implemented by raylite's "
                                          f"{self.algo_name} yet; remove it")
        if config.input_ != "sampler" and not self._implements("input"):
            raise NotImplementedError(f"config 'input': {self.algo_name} in raylite learns "
                                      f"from its env only ('sampler')")

    def _implements(self, option: str) -> bool:
        return False

    # ---- what an algorithm defines --------------------------------------------------------------
    @staticmethod
    def loss_function() -> Any:
        raise NotImplementedError

    def training_step(self) -> tuple[int, list[tuple[float, int]], dict[str, float]]:
        """One iteration: ``(env steps sampled, finished episodes, learner stats)``."""
        raise NotImplementedError

    def learner_state(self) -> dict[str, Any]:
        return {}

    def set_learner_state(self, state: dict[str, Any]) -> None:
        pass

    # ---- one iteration -------------------------------------------------------------------------
    def step(self) -> dict:
        start = time.perf_counter()
        steps, episodes, learner_stats = self.training_step()
        self._acting = None
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
                      info={"learner": {DEFAULT_POLICY_ID: {"learner_stats": learner_stats}},
                            "num_steps_sampled": self.timesteps_total,
                            "num_steps_trained": self.timesteps_total},
                      timers=dict(self.timers), custom_metrics={},
                      config=self.algo_config.to_dict())
        interval = self.algo_config.evaluation_interval
        if interval and (self.iteration + 1) % interval == 0:
            result.update(self.evaluate())
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
    def get_policy(self, policy_id: str = DEFAULT_POLICY_ID) -> Policy:
        if policy_id != DEFAULT_POLICY_ID:
            raise ValueError(f"unknown policy_id {policy_id!r}; this algorithm has one policy, "
                             f"{DEFAULT_POLICY_ID!r}")
        return Policy(self)

    def get_module(self, module_id: str = DEFAULT_POLICY_ID) -> RLModule:
        """Ray 2.x: the RLModule view, ``get_module().forward_inference({"obs": batch})``."""
        self.get_policy(module_id)  # checks the id
        return RLModule(self)

    @property
    def env_runner_group(self) -> WorkerSet:
        """Ray 2.x's name of ``workers``."""
        return self.workers

    @property
    def env_runner(self) -> Any:
        return self.workers.local_worker()

    def get_weights(self) -> dict[str, dict[str, np.ndarray]]:
        return {DEFAULT_POLICY_ID: self.learner.get_weights()}

    def set_weights(self, weights: dict) -> None:
        """Set the policy's weights (``{name: array}``, or ``{policy_id: {name: array}}``)."""
        if DEFAULT_POLICY_ID in weights:
            weights = weights[DEFAULT_POLICY_ID]
        from raylite.rllib._model import check_weights
        check_weights(self.model_spec, weights)
        self.learner.set_weights(weights)
        self._acting = None

    def _acting_policy(self) -> Any:
        if self._acting is None:
            self._acting = self.model_spec.acting_policy(action_adapter(
                self.action_space, self.algo_config.normalize_actions), self.learner.get_weights())
        return self._acting

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
        out = self.act_on_batch(self._flatten(observation)[None], explore)
        action = out["env_actions"][0]
        if not full_fetch:
            return action
        extra = {k: v[0] for k, v in out.items() if k not in ("actions", "env_actions")}
        return action, [], extra

    compute_action = compute_single_action

    def compute_actions(self, observations: dict[Any, Any], state: Any = None, *,
                        explore: bool | None = None, policy_id: str = DEFAULT_POLICY_ID,
                        full_fetch: bool = False, **kwargs: Any) -> Any:
        """Actions for ``{agent_id: observation}``: ``{agent_id: action}`` (one batch)."""
        if not isinstance(observations, dict):
            raise TypeError(f"compute_actions takes {{agent_id: observation}}, got "
                            f"{type(observations).__name__}; use compute_single_action for one")
        self.get_policy(policy_id)
        explore = self.algo_config.explore if explore is None else explore
        agents = list(observations)
        if not agents:
            return {}
        flat = np.stack([self._flatten(observations[agent]) for agent in agents])
        out = self.act_on_batch(flat, explore)
        actions = dict(zip(agents, out["env_actions"]))
        if not full_fetch:
            return actions
        extra = {agent: {k: v[i] for k, v in out.items() if k not in ("actions", "env_actions")}
                 for i, agent in enumerate(agents)}
        return actions, [], extra

    def act_on_batch(self, flat_obs: np.ndarray, explore: bool) -> dict[str, np.ndarray]:
        """The acting policy's outputs for a batch of flat observations (filtered here)."""
        obs = self.filter(np.asarray(flat_obs, np.float32), update=False)
        return self._acting_policy().compute_actions(obs, explore, self._rng)

    def evaluate(self) -> dict:
        """``{"evaluation": metrics}`` of ``evaluation_num_episodes`` episodes on a fresh env,
        greedy unless ``evaluation_config`` has ``explore: true``."""
        if self._eval_env is None:
            self._eval_env = self.env_spec.make()
            self._eval_env.reset(seed=self.algo_config.seed)  # later resets go on from here
        explore = bool(self.algo_config.evaluation_config.get("explore", False))
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
        """Everything a checkpoint holds."""
        return {"algorithm": self.algo_name, "config": self.algo_config.to_dict(),
                "env_name": self.env_spec.name, "model_spec": dataclasses.asdict(self.model_spec),
                "model_spec_type": type(self.model_spec).__name__,
                "weights": self.learner.get_weights(),
                "optimizer": self.learner.get_optimizer_state(),
                "filter": self.filter.get_state(), "learner_state": self.learner_state(),
                "counters": {"iteration": self.iteration, "timesteps_total": self.timesteps_total,
                             "episodes_total": self.episodes_total},
                "spaces": (self.observation_space, self.action_space)}

    def set_state(self, state: dict) -> None:
        """Take up the state that :meth:`get_state` returned."""
        self.learner.set_weights(state["weights"])
        self.learner.set_optimizer_state(state["optimizer"])
        self.filter.set_state(state["filter"])
        self.set_learner_state(state["learner_state"])
        self.timesteps_total = state["counters"]["timesteps_total"]
        self.episodes_total = state["counters"]["episodes_total"]
        self._acting = None

    def save_checkpoint(self, checkpoint_dir: str) -> str:
        return _checkpoint.write(checkpoint_dir, self.iteration, self.get_state())

    def load_checkpoint(self, checkpoint: str | dict) -> None:
        state = checkpoint if isinstance(checkpoint, dict) else _checkpoint.read(checkpoint)
        framework = state["config"]["framework"]
        if (framework == "torch") != (self.algo_config.framework == "torch"):
            # weights are framework-neutral; the optimizer state is not
            state = {**state, "optimizer": None}
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
