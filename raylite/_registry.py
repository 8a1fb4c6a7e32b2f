"""Names for environments and trainables: ``register_env`` and ``register_trainable``.

A registry lives in one process. Trials and rollout workers run in other processes, so what
was registered travels with the work: ``snapshot()`` in the driver, ``install(snapshot)`` in
the process that runs the trial (``tune.run`` ships it to every trial actor; the ``rllib``
CLI also puts it on the algorithm class). The
creators are pickled by value when they are not importable (lambdas, ``__main__``
functions), by cloudpickle, as raylite pickles every task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_ENVS: dict[str, Callable[[dict], Any]] = {}
_TRAINABLES: dict[str, Any] = {}


def register_env(name: str, env_creator: Callable[[dict], Any]) -> None:
    """Make ``name`` usable as ``config["env"]``: ``env_creator(env_config)`` returns the env.

    Args:
        name: the name to use in configs and on the command line.
        env_creator: a function of the ``env_config`` dict returning a Gymnasium env (or an
            env written to the old gym API: it is wrapped).

    Example:
        >>> import gymnasium as gym
        >>> register_env("short_cartpole", lambda cfg: gym.make("CartPole-v1", max_episode_steps=50))
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_env needs a name (a non-empty str), got {name!r}")
    if not callable(env_creator):
        raise TypeError(f"register_env({name!r}, ...) needs a function env_config -> env, got "
                        f"{type(env_creator).__name__}")
    _ENVS[name] = env_creator


def register_trainable(name: str, trainable: Any) -> None:
    """Give a trainable (a tune.Trainable class or a function) a name, as ``"PPO"`` has."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_trainable needs a name (a non-empty str), got {name!r}")
    if not callable(trainable):
        raise TypeError(f"register_trainable({name!r}, ...) needs a class or a function, got "
                        f"{type(trainable).__name__}")
    _TRAINABLES[name] = trainable


def env_creator(name: str) -> Callable[[dict], Any] | None:
    return _ENVS.get(name)


def registered_envs() -> list[str]:
    return sorted(_ENVS)


def trainable(name: str) -> Any:
    return _TRAINABLES.get(name)


def registered_trainables() -> list[str]:
    return sorted(_TRAINABLES)


def resolve_trainable(name: str) -> Any:
    """The trainable called ``name``: one given to :func:`register_trainable`, else an RLlib
    algorithm (``"PPO"``, any case); ValueError with a "did you mean" otherwise."""
    from raylite._suggest import did_you_mean
    found = _TRAINABLES.get(name)
    if found is not None:
        return found
    algorithms: list[str] = []
    try:
        from raylite import rllib
        algorithms = list(rllib.ALGORITHMS)
        return rllib.get_algorithm_class(name)
    except ImportError:
        pass
    except ValueError:
        pass
    known = sorted(_TRAINABLES) + algorithms
    hint = did_you_mean(name, known, n=1, cutoff=0.5)
    raise ValueError(f"unknown trainable {name!r}{hint} (registered: {', '.join(known) or 'none'}). "
                     "Register it first with tune.register_trainable(name, trainable), or pass "
                     "the function or class itself")


def snapshot() -> dict[str, dict[str, Any]]:
    """Everything registered in this process, to :func:`install` in another."""
    return {"envs": dict(_ENVS), "trainables": dict(_TRAINABLES)}


def install(registered: dict[str, dict[str, Any]] | None) -> None:
    """Register here what :func:`snapshot` took elsewhere (names already here are kept)."""
    for name, creator in (registered or {}).get("envs", {}).items():
        _ENVS.setdefault(name, creator)
    for name, value in (registered or {}).get("trainables", {}).items():
        _TRAINABLES.setdefault(name, value)
