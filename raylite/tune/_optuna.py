"""OptunaSearch: Optuna's samplers (TPE by default) behind the Searcher contract.

Optuna is imported on first use. Trials map one to one onto Optuna trials through Optuna's
ask-and-tell interface: ``suggest`` asks, ``on_trial_result`` reports intermediate values
(for Optuna pruners), ``on_trial_complete`` tells the final value, or FAIL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raylite.tune import _search_space as space_mod
from raylite.tune._searcher import Searcher

_PRIMITIVES = (type(None), bool, int, float, str)


class OptunaSearch(Searcher):
    """Search with Optuna.

    Args:
        space: a Tune search space dict, a dict of Optuna distributions, or a define-by-run
            function ``space(optuna_trial) -> dict | None``. Leave it out to use ``tune.run``'s
            ``config``.
        metric, mode: what to optimize; may instead come from ``tune.run``.
        points_to_evaluate: configs to try first.
        sampler: an ``optuna.samplers.BaseSampler`` (default: TPESampler(seed=seed)).
        seed: seed for the default sampler.
        evaluated_rewards: rewards of ``points_to_evaluate`` already known (told, not run).

    Example:
        >>> from raylite import tune
        >>> search = OptunaSearch({"x": tune.uniform(0, 1)}, metric="loss", mode="min", seed=1)
        >>> config = search.suggest("trial_1")
        >>> 0 <= config["x"] <= 1
        True
    """

    def __init__(self, space: dict | Callable | None = None, metric: str | None = None,
                 mode: str | None = None, points_to_evaluate: list[dict] | None = None,
                 sampler: Any = None, seed: int | None = None,
                 evaluated_rewards: list | None = None):
        super().__init__(metric, mode)
        self._space = space
        self._points = list(points_to_evaluate or [])
        self._sampler = sampler
        self._seed = seed
        self._evaluated_rewards = evaluated_rewards
        self._study = None
        self._distributions: dict[str, Any] | None = None
        self._paths: dict[str, tuple] = {}
        self._decoders: dict[str, list] = {}
        self._live: dict[str, Any] = {}
        self._last_step: dict[str, int] = {}
        if space is not None:
            self._setup()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if self._space is not None:
            return not space_mod.contains_search(config or {})
        super().set_search_properties(metric, mode, config)
        self._space = config
        self._setup()
        return True

    def _setup(self) -> None:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if callable(self._space):
            self._distributions = None
        elif isinstance(self._space, dict) and self._space and _all_optuna(self._space, optuna):
            self._distributions = dict(self._space)
            self._paths = {name: (name,) for name in self._space}
        else:
            space_mod.validate_space(self._space, "OptunaSearch space")
            self._distributions = self._convert(self._space or {}, optuna)
        if self._mode is None and self._metric is None:
            return  # set_search_properties will bring them
        self._create_study(optuna)

    def _create_study(self, optuna) -> None:
        sampler = self._sampler or optuna.samplers.TPESampler(seed=self._seed)
        direction = "maximize" if self._mode == "max" else "minimize"
        self._study = optuna.create_study(sampler=sampler, direction=direction)
        rewards = self._evaluated_rewards
        if rewards is not None and len(rewards) != len(self._points):
            raise ValueError(f"evaluated_rewards has {len(rewards)} values for "
                             f"{len(self._points)} points_to_evaluate; give one per point")
        for i, point in enumerate(self._points):
            params = {space_mod.path_name(p): v for p, v in space_mod.flatten(point).items()}
            if rewards is not None and self._distributions is not None:
                trial = optuna.trial.create_trial(params=params, distributions={
                    k: d for k, d in self._distributions.items() if k in params}, value=rewards[i])
                self._study.add_trial(trial)
            else:
                self._study.enqueue_trial(params)

    def _convert(self, space: dict, optuna) -> dict[str, Any]:
        dist = optuna.distributions
        out = {}
        _, domains = space_mod.split_space(space)
        for path, domain in domains.items():
            name = space_mod.path_name(path)
            self._paths[name] = path
            if isinstance(domain, space_mod.Float):
                log = domain.log_base is not None
                out[name] = dist.FloatDistribution(domain.lower, domain.upper, log=log,
                                                   step=None if log else domain.q)
            elif isinstance(domain, space_mod.Integer):
                step = domain.q or 1
                low = -(-domain.lower // step) * step
                high = low + (domain.upper - 1 - low) // step * step
                out[name] = dist.IntDistribution(low, high, log=domain.log_base is not None and step == 1,
                                                 step=step)
            elif isinstance(domain, space_mod.Categorical):
                choices = list(domain.categories)
                if all(isinstance(c, _PRIMITIVES) for c in choices):
                    out[name] = dist.CategoricalDistribution(choices)
                else:
                    self._decoders[name] = choices
                    out[name] = dist.CategoricalDistribution(list(range(len(choices))))
            else:
                raise ValueError(f"config key {name!r}: OptunaSearch cannot search a {domain!r} "
                                 "domain; use uniform/loguniform/randint/choice and friends")
        return out

    def suggest(self, trial_id: str) -> dict | None | str:
        if self._study is None:
            if self._space is None:
                raise RuntimeError("OptunaSearch has no search space: pass OptunaSearch(space=...) "
                                   "or tune.run(config=...)")
            if self._metric is None or self._mode is None:
                raise ValueError("OptunaSearch needs a metric and a mode: pass them to "
                                 "OptunaSearch(...) or to tune.run(metric=..., mode=...)")
            import optuna
            self._create_study(optuna)
        if self._distributions is None:  # define-by-run
            ot_trial = self._study.ask()
            config = self._space(ot_trial) or dict(ot_trial.params)
        else:
            ot_trial = self._study.ask(self._distributions)
            config = {}
            for name, value in ot_trial.params.items():
                if name in self._decoders:
                    value = self._decoders[name][value]
                _nested_set(config, self._paths.get(name, (name,)), value)
        self._live[trial_id] = ot_trial
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        ot_trial = self._live.get(trial_id)
        value = self._metric_value(result)
        if ot_trial is None or value is None:
            return
        step = result.get("training_iteration")
        if isinstance(step, int) and step > self._last_step.get(trial_id, -1):
            self._last_step[trial_id] = step
            ot_trial.report(float(value), step)

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        ot_trial = self._live.pop(trial_id, None)
        self._last_step.pop(trial_id, None)
        if ot_trial is None:
            return
        import optuna
        value = self._metric_value(result)
        if error or value is None:
            self._study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(ot_trial, float(value))

    def add_evaluated_point(self, parameters, value, error=False, pruned=False,
                            intermediate_values=None) -> None:
        import optuna
        state = (optuna.trial.TrialState.FAIL if error else
                 optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE)
        params = {space_mod.path_name(p): v for p, v in space_mod.flatten(parameters).items()}
        trial = optuna.trial.create_trial(
            params=params, distributions={k: d for k, d in (self._distributions or {}).items() if k in params},
            value=None if state != optuna.trial.TrialState.COMPLETE else value, state=state,
            intermediate_values=dict(enumerate(intermediate_values or [])))
        self._study.add_trial(trial)


def _nested_set(config: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def _all_optuna(space: dict, optuna) -> bool:
    return all(isinstance(v, optuna.distributions.BaseDistribution) for v in space.values())
