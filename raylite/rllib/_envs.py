"""Environments: from what a config names to Gymnasium envs, and envs stepped together.

    config["env"] ──resolve_env──> EnvSpec          (in the driver: errors and notices here)
        a register_env name     its creator(env_config)
        a Gymnasium id          gymnasium.make; a legacy id (Pendulum-v0) runs today's version
                                (Pendulum-v1) after a one-line notice
        "module.Class"          that class, imported
        an env class            the class, called with env_config (or without arguments)
        anything else           ValueError naming the closest ids
    EnvSpec.make() ──> a Gymnasium env; envs written to the old gym API (reset returns obs,
                       step returns 4 values, spaces with just .n) are wrapped in LegacyEnv
    VectorEnv(spec, n) ──> steps n envs together, resets finished ones, flattens observations
                           and counts episode returns

The book's chapter 3 maze is registered as ``"maze"``. Gymnasium is imported on first use.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raylite._suggest import close_matches, did_you_mean
from raylite import _registry

_NOTICED: set[str] = set()
_ID = re.compile(r"^(?:(?P<namespace>[\w:.-]+)/)?(?P<name>[\w:.-]+?)(?:-v(?P<version>\d+))?$")

# Per-step reward bounds of Gymnasium's classic-control envs (their docs), for the stop check.
_STEP_REWARD_BOUNDS = {
    "Pendulum": (-(math.pi ** 2 + 0.1 * 8 ** 2 + 0.001 * 2 ** 2), 0.0),
    "CartPole": (1.0, 1.0),
    "Acrobot": (-1.0, 0.0),
    "MountainCar": (-1.0, -1.0),
}
_EPISODE_RETURN_BOUNDS = {"MountainCarContinuous": (-0.1 * 999, 100.0)}


class EnvContext(dict):
    """The ``env_config`` dict a creator receives, plus ``worker_index`` and ``vector_index``."""

    def __init__(self, env_config: dict, worker_index: int = 0, vector_index: int = 0,
                 num_workers: int = 0):
        super().__init__(env_config)
        self.worker_index, self.vector_index, self.num_workers = worker_index, vector_index, num_workers


@dataclass
class EnvSpec:
    """How to make one env: a Gymnasium id, a creator function or a class (picklable)."""

    name: str
    kind: str                     # "gymnasium", "creator" or "class"
    target: Any                   # the id, the function or the class
    env_config: dict = field(default_factory=dict)

    def make(self, render_mode: str | None = None, worker_index: int = 0,
             vector_index: int = 0) -> Any:
        """A new env following the Gymnasium API."""
        if self.kind == "gymnasium":
            import gymnasium
            return gymnasium.make(self.target, disable_env_checker=True, render_mode=render_mode,
                                  **self.env_config)
        context = EnvContext(self.env_config, worker_index, vector_index)
        env = self.target(context) if self.kind == "creator" else _instantiate(self.target, context)
        if render_mode is not None:
            _ask_to_render(env, render_mode)
        return as_gymnasium(env, self.name)


_CONFIG_NAMES = {"config", "env_config", "cfg", "context", "env_context"}


def _instantiate(cls: Any, context: EnvContext) -> Any:
    """``cls(env_config)`` as RLlib calls env classes, when the class takes a config
    (``__init__(self, config)`` or ``*args``); else ``cls(**env_config)`` (Gymnasium's
    keyword style, e.g. ``PendulumEnv(g=9.81)``)."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return cls(context)
    first = next((p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                   p.VAR_POSITIONAL)), None)
    if first is not None and (first.kind == first.VAR_POSITIONAL or first.name in _CONFIG_NAMES):
        return cls(context)
    return cls(**context)


def _ask_to_render(env: Any, render_mode: str) -> None:
    """Set ``render_mode`` on an env made without it (classic-control envs draw in step())."""
    for target in (env, getattr(env, "unwrapped", env)):
        if getattr(target, "render_mode", "absent") is None:
            try:
                target.render_mode = render_mode
                return
            except AttributeError:
                continue


# ---- naming an env ------------------------------------------------------------------------
def resolve_env(env: Any, env_config: dict | None = None) -> EnvSpec:
    """The EnvSpec of ``config["env"]``; raises ValueError/TypeError saying what would be right.

    Example:
        >>> resolve_env("CartPole-v1").kind
        'gymnasium'
    """
    env_config = dict(env_config or {})
    if env is None:
        raise ValueError("no environment: set config['env'] to a Gymnasium id such as "
                         "'CartPole-v1', a register_env name, 'module.Class' or an env class")
    if not isinstance(env, str):
        if not callable(env):
            raise TypeError(f"env must be an id, a registered name, 'module.Class' or an env "
                            f"class, got {type(env).__name__}")
        return EnvSpec(getattr(env, "__name__", type(env).__name__), "class", env, env_config)
    creator = _registry.env_creator(env)
    if creator is not None:
        return EnvSpec(env, "creator", creator, env_config)
    gym_id = gymnasium_id(env)
    if gym_id is not None:
        return EnvSpec(gym_id, "gymnasium", gym_id, env_config)
    if "." in env and not env.startswith(".") and ":" not in env:
        cls = _import_class(env)
        if cls is not None:
            return EnvSpec(env, "class", cls, env_config)
    raise ValueError(unknown_env_message(env))


def gymnasium_id(env: str) -> str | None:
    """``env`` if Gymnasium knows it; today's version of a legacy id (with a notice); else None."""
    import gymnasium
    registry = gymnasium.registry
    if ":" in env:  # "module:EnvId": importing the module registers its envs
        module, _, env_part = env.partition(":")
        try:
            importlib.import_module(module)
        except ImportError:
            return None
        env = env_part
    if env in registry:
        return env
    match = _ID.match(env)
    if not match or match["version"] is None:
        return None
    versions = sorted((spec.version, spec.id) for spec in registry.values()
                      if spec.name == match["name"] and spec.namespace == match["namespace"]
                      and spec.version is not None)
    if not versions:
        return None
    current = versions[-1][1]
    if env not in _NOTICED:
        _NOTICED.add(env)
        print(f"rllib: notice: {env} is not in Gymnasium {gymnasium.__version__}; using "
              f"{current}, its current version", file=sys.stderr, flush=True)
    return current


def unknown_env_message(env: str) -> str:
    """The error for an env nobody knows, with the closest ids, legacy ids included."""
    import gymnasium
    candidates = set(_registry.registered_envs())
    for spec in gymnasium.registry.values():
        candidates.add(spec.id)
        for version in range(spec.version or 0):  # the ids that map to this one
            candidates.add(f"{spec.namespace + '/' if spec.namespace else ''}{spec.name}-v{version}")
    by_lower = {c.lower(): c for c in sorted(candidates)}
    close = close_matches(env.lower(), by_lower, n=3, cutoff=0.75)
    hint = f"; did you mean {' / '.join(by_lower[c] for c in close)}?" if close else ""
    return (f"unknown environment {env!r}{hint} (an env is a Gymnasium id such as "
            f"'Pendulum-v1', a name given to register_env, 'module.Class' or an env class)")


def _import_class(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    value = getattr(module, attribute, None)
    if value is None:
        raise ValueError(f"env {path!r}: module {module_name!r} has no attribute {attribute!r}"
                         f"{_close(attribute, dir(module))}")
    return value


def _close(word: str, choices: list[str]) -> str:
    return did_you_mean(word, choices)


# ---- old gym API ----------------------------------------------------------------------------
def as_gymnasium(env: Any, name: str = "env") -> Any:
    """``env`` if it follows Gymnasium's API, else wrapped in :class:`LegacyEnv`."""
    import gymnasium

    from raylite.rllib._multi_agent import MultiAgentEnv
    if isinstance(env, MultiAgentEnv) or (
            isinstance(env, gymnasium.Env) and "seed" in _parameters(env.reset)):
        return env
    return LegacyEnv(env, name)


def _parameters(function: Callable) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()


def to_gymnasium_space(space: Any, what: str) -> Any:
    """A Gymnasium space from a Gymnasium, old-gym or duck-typed one (``.n``; ``low/high``)."""
    from gymnasium import spaces
    if isinstance(space, spaces.Space):
        return space
    if isinstance(getattr(space, "n", None), (int, np.integer)):
        return spaces.Discrete(int(space.n))
    if all(hasattr(space, a) for a in ("low", "high", "shape")):
        return spaces.Box(np.asarray(space.low, np.float32), np.asarray(space.high, np.float32),
                          dtype=np.float32)
    raise TypeError(f"the env's {what} {space!r} is not a space raylite knows: give it an int "
                    f"attribute n (discrete) or low, high and shape (continuous), or use "
                    f"gymnasium.spaces")


class LegacyEnv:
    """An env written to the old gym API, seen through Gymnasium's: ``reset`` returns
    ``(obs, info)``, ``step`` returns ``(obs, reward, terminated, truncated, info)``."""

    def __init__(self, env: Any, name: str = "env"):
        self.env = env
        self.observation_space = to_gymnasium_space(env.observation_space, "observation_space")
        self.action_space = to_gymnasium_space(env.action_space, "action_space")
        self.render_mode = getattr(env, "render_mode", None)
        self.spec = None
        self.name = name
        self._reset_takes_seed = "seed" in _parameters(env.reset)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if self._reset_takes_seed:
            out = self.env.reset(seed=seed)
        else:
            if seed is not None and callable(getattr(self.env, "seed", None)):
                self.env.seed(seed)
            out = self.env.reset()
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
            return out
        return out, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        out = self.env.step(action)
        if len(out) == 5:
            return out
        if len(out) != 4:
            raise ValueError(f"{self.name}.step() returned {len(out)} values; expected 4 (old gym "
                             f"API: obs, reward, done, info) or 5 (Gymnasium)")
        obs, reward, done, info = out
        info = info if isinstance(info, dict) else {}
        truncated = bool(info.get("TimeLimit.truncated", False))
        return obs, reward, bool(done) and not truncated, truncated, info

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        if callable(getattr(self.env, "close", None)):
            self.env.close()

    @property
    def unwrapped(self) -> Any:
        return self.env


# ---- observations and actions -------------------------------------------------------------
def preprocessor(space: Any) -> tuple[int, Callable[[Any], np.ndarray]]:
    """``(size, fn)``: fn turns one observation into a flat float32 vector (one-hot for
    Discrete, as RLlib does)."""
    from gymnasium import spaces
    if isinstance(space, spaces.Box):
        size = int(np.prod(space.shape))
        return size, lambda obs: np.asarray(obs, dtype=np.float32).reshape(size)
    if isinstance(space, spaces.Discrete):
        eye = np.eye(space.n, dtype=np.float32)
        return int(space.n), lambda obs: eye[int(obs) - int(space.start)]
    try:
        flat = spaces.flatten_space(space)
    except NotImplementedError:
        raise TypeError(f"observation space {space} cannot be flattened into a vector") from None
    size = int(np.prod(flat.shape))
    return size, lambda obs: np.asarray(spaces.flatten(space, obs), dtype=np.float32).reshape(size)


def action_info(space: Any) -> tuple[bool, int]:
    """``(discrete, size)`` of an action space PPO can act in."""
    from gymnasium import spaces
    if isinstance(space, spaces.Discrete):
        return True, int(space.n)
    if isinstance(space, spaces.Box):
        return False, int(np.prod(space.shape))
    raise TypeError(f"action space {space} is not supported: PPO here acts in Discrete "
                    f"(categorical) and Box (Gaussian) spaces")


# ---- many envs at once ----------------------------------------------------------------------
class VectorEnv:
    """``num_envs`` envs stepped together; a finished episode's env is reset at once, and its
    return and length are kept for :meth:`take_episodes`."""

    def __init__(self, spec: EnvSpec, num_envs: int, seed: int | None = None,
                 horizon: int | None = None, worker_index: int = 0):
        self.envs = [spec.make(worker_index=worker_index, vector_index=i) for i in range(num_envs)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.obs_size, self._flatten = preprocessor(self.observation_space)
        self.num_envs = num_envs
        self.horizon = horizon
        self._seeds = [None if seed is None else seed + 1000 * worker_index + i
                       for i in range(num_envs)]
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._episodes: list[tuple[float, int]] = []
        self.callbacks: Any = None      # DefaultCallbacks, set by the rollout worker
        self.worker: Any = None
        self._episode_objects: list[Any] = []
        self._custom_metrics: list[dict[str, float]] = []

    def reset(self) -> np.ndarray:
        rows = []
        for env, seed in zip(self.envs, self._seeds):
            rows.append(self._flatten(env.reset(seed=seed)[0]))
        self._seeds = [None] * self.num_envs  # seed once; later resets continue the env's RNG
        self._returns[:], self._lengths[:] = 0.0, 0
        if self.callbacks is not None:
            self._episode_objects = [self._start_episode(i) for i in range(self.num_envs)]
        return np.stack(rows)

    def _start_episode(self, index: int) -> Any:
        from raylite.rllib._callbacks import Episode
        episode = Episode(index)
        self.callbacks.on_episode_start(worker=self.worker, base_env=self, policies={},
                                        episode=episode, env_index=index)
        return episode

    def _episode_callbacks(self, index: int, obs: Any, reward: float, info: dict,
                           done: bool) -> None:
        episode = self._episode_objects[index]
        episode.length += 1
        episode.total_reward += float(reward)
        episode._last_obs, episode._last_info = obs, info
        self.callbacks.on_episode_step(worker=self.worker, base_env=self, policies={},
                                       episode=episode, env_index=index)
        if done:
            self.callbacks.on_episode_end(worker=self.worker, base_env=self, policies={},
                                          episode=episode, env_index=index)
            self._custom_metrics.append(dict(episode.custom_metrics))
            self._episode_objects[index] = self._start_episode(index)

    def take_custom_metrics(self) -> list[dict[str, float]]:
        metrics, self._custom_metrics = self._custom_metrics, []
        return metrics

    def step(self, env_actions: list[Any], active: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env (those with ``active`` True, if given) and return ``(next_obs,
        rewards, terminated, truncated, final_obs)``; for an env whose episode ended,
        next_obs is the first of its next episode and final_obs the last of this one."""
        n = self.num_envs
        next_obs = np.empty((n, self.obs_size), np.float32)
        final_obs = np.zeros((n, self.obs_size), np.float32)
        rewards = np.zeros(n, np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        for i, env in enumerate(self.envs):
            if active is not None and not active[i]:
                next_obs[i] = final_obs[i]
                continue
            obs, reward, term, trunc, info = env.step(env_actions[i])
            rewards[i] = reward
            self._returns[i] += reward
            self._lengths[i] += 1
            trunc = bool(trunc) or (self.horizon is not None and self._lengths[i] >= self.horizon)
            terminated[i], truncated[i] = term, trunc and not term
            next_obs[i] = self._flatten(obs)
            if self.callbacks is not None:
                self._episode_callbacks(i, obs, reward, info, bool(term or trunc))
            if term or trunc:
                final_obs[i] = next_obs[i]
                self._episodes.append((float(self._returns[i]), int(self._lengths[i])))
                self._returns[i], self._lengths[i] = 0.0, 0
                next_obs[i] = self._flatten(env.reset()[0])
        return next_obs, rewards, terminated, truncated, final_obs

    def take_episodes(self) -> list[tuple[float, int]]:
        """(return, length) of the episodes finished since the last call."""
        episodes, self._episodes = self._episodes, []
        return episodes

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---- stop criteria ----------------------------------------------------------------------------
RETURN_KEYS = ("episode_reward_mean", "episode_reward_max", "episode_reward_min",
               "episode_return_mean", "episode_return_max", "episode_return_min",
               "env_runners/episode_return_mean", "env_runners/episode_return_max",
               "env_runners/episode_return_min", "evaluation/episode_reward_mean")


def episode_return_bounds(spec: EnvSpec, horizon: int | None = None
                          ) -> tuple[float, float, str] | None:
    """``(lowest, highest, how we know)`` of one episode's return, when known."""
    steps = horizon
    bounds = None
    if spec.kind == "gymnasium":
        import gymnasium
        gym_spec = gymnasium.spec(spec.target)
        steps = min(s for s in (horizon, gym_spec.max_episode_steps) if s) if (
            horizon or gym_spec.max_episode_steps) else None
        if gym_spec.name in _EPISODE_RETURN_BOUNDS:
            low, high = _EPISODE_RETURN_BOUNDS[gym_spec.name]
            return low, high, "its documented rewards"
        bounds = _STEP_REWARD_BOUNDS.get(gym_spec.name)
    if bounds is None:
        return None
    low, high = bounds
    lowest = low * steps if (low < 0 and steps) else (-math.inf if low < 0 else low)
    highest = high * steps if (high > 0 and steps) else (math.inf if high > 0 else high)
    how = f"per step [{_fmt(low)}, {_fmt(high)}]" + (f" x {steps} steps" if steps else "")
    return lowest, highest, how


def check_stop_criteria(stop: Any, spec: EnvSpec, horizon: int | None = None) -> list[str]:
    """Warnings for stop criteria on episode returns that no run can reach."""
    if not isinstance(stop, dict):
        return []
    bounds = episode_return_bounds(spec, horizon)
    if bounds is None:
        return []
    lowest, highest, how = bounds
    warnings = []
    for key, value in stop.items():
        if key not in RETURN_KEYS or not isinstance(value, (int, float)) or value <= highest:
            continue
        hint = f"; did you mean {_fmt(-value)}?" if lowest <= -value <= highest else ""
        warnings.append(f"stop criterion {key}: {_fmt(value)} can never be reached: {spec.name}'s "
                        f"episode returns lie in [{_fmt(lowest)}, {_fmt(highest)}] ({how}), so "
                        f"this run only ends by another criterion or by hand{hint}")
    return warnings


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.1f}" if value != int(value) else str(int(value))


def make_maze(env_config: dict) -> Any:
    """The book's chapter 3 maze (registered as ``"maze"``)."""
    from raylite.rllib.examples.maze import make_maze as make
    return make(env_config)


_registry.register_env("maze", make_maze)
