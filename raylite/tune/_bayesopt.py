"""BayesOptSearch: Gaussian-process Bayesian optimization (the ``bayesian-optimization``
package, 3.x API) behind the Searcher contract.

bayes_opt optimizes a function of bounded floats, and maximizes. Every Tune domain is mapped
onto one float and back (``_Axis``):

    uniform(a, b) / quniform      x in [a, b]                (rounded to q after)
    loguniform(a, b) / qlog...    log(x) in [log a, log b]   (exp after)
    randint(a, b) / qrandint ...  x in [a, b)                (floor after, then to a multiple of q)
    choice([...])                 index in [0, n)            (floor after)

``suggest`` draws ``random_search_steps`` random points first, then asks the optimizer
(``BayesianOptimization.suggest``); ``on_trial_complete`` registers the point with the metric
(negated for mode="min"). bayes_opt is imported on first use.
"""

from __future__ import annotations

import math
import random
from typing import Any

from raylite.tune import _search_space as space_mod
from raylite.tune._searcher import Searcher

_ACQUISITION_KINDS = ("ucb", "ei", "poi")


class _Axis:
    """One searched hyperparameter as a float interval for bayes_opt, and back."""

    def __init__(self, name: str, path: tuple, domain: space_mod.Domain):
        self.name, self.path, self.domain = name, path, domain
        if isinstance(domain, space_mod.Float):
            self.log = domain.log_base is not None
            low, high = float(domain.lower), float(domain.upper)
            self.bounds = (math.log(low), math.log(high)) if self.log else (low, high)
        elif isinstance(domain, space_mod.Integer):
            self.log = domain.log_base is not None
            low, high = float(domain.lower), float(domain.upper)
            self.bounds = (math.log(low), math.log(high)) if self.log else (low, high)
        elif isinstance(domain, space_mod.Categorical):
            self.log = False
            self.bounds = (0.0, float(len(domain.categories)))
        else:
            raise ValueError(f"config key {name!r}: BayesOptSearch cannot search a {domain!r} "
                             "domain; use uniform/loguniform/randint/choice and friends")

    def decode(self, x: float) -> Any:
        domain = self.domain
        x = min(max(x, self.bounds[0]), self.bounds[1])
        value = math.exp(x) if self.log else x
        if isinstance(domain, space_mod.Float):
            value = min(max(value, domain.lower), domain.upper)
            if domain.q is not None:
                value = space_mod._quantize(value, domain.q, domain.lower, domain.upper)
            return float(value)
        if isinstance(domain, space_mod.Integer):
            value = min(max(int(math.floor(value)), domain.lower), domain.upper - 1)
            if domain.q is not None:
                multiples = range(-(-domain.lower // domain.q) * domain.q, domain.upper, domain.q)
                value = min(multiples, key=lambda m: abs(m - value))
            return value
        index = min(int(math.floor(value)), len(domain.categories) - 1)
        return domain.categories[index]

    def encode(self, value: Any) -> float:
        """The float that decodes to ``value`` (for points_to_evaluate)."""
        domain = self.domain
        if isinstance(domain, space_mod.Categorical):
            categories = list(domain.categories)
            if value not in categories:
                raise ValueError(f"points_to_evaluate: {value!r} is not one of the choices "
                                 f"{categories!r} of {self.name!r}")
            return categories.index(value) + 0.5
        if isinstance(domain, space_mod.Integer):
            return math.log(value + 0.5) if self.log else value + 0.5
        return math.log(value) if self.log else float(value)


class BayesOptSearch(Searcher):
    """Search with Bayesian optimization (a Gaussian process and an acquisition function).

    Args:
        space: a Tune search space dict (leave it out to use ``tune.run``'s ``config``).
        metric, mode: what to optimize; may instead come from ``tune.run``.
        points_to_evaluate: configs to try first.
        utility_kwargs: the acquisition function, as in Ray 1.x: ``{"kind": "ucb" | "ei" |
            "poi", "kappa": 2.576, "xi": 0.0}``.
        random_state: seed of the random steps and of the optimizer.
        random_search_steps: random configs before the Gaussian process takes over.
        verbose: bayes_opt's own printing (0: none).
        analysis: an earlier ExperimentAnalysis whose trials are registered as evaluated.
        patience, skip_duplicate: accepted for Ray 1.x code; duplicates are allowed here.
        gp_params: passed to ``BayesianOptimization.set_gp_params`` (e.g.
            ``{"n_restarts_optimizer": 0}`` fits the Gaussian process several times faster).

    Example:
        >>> from raylite import tune
        >>> search = BayesOptSearch({"x": tune.uniform(0, 1)}, metric="loss", mode="min",
        ...                         random_state=1)
        >>> 0 <= search.suggest("trial_1")["x"] <= 1
        True
    """

    def __init__(self, space: dict | None = None, metric: str | None = None,
                 mode: str | None = None, points_to_evaluate: list[dict] | None = None,
                 utility_kwargs: dict | None = None, random_state: int = 42,
                 random_search_steps: int = 10, verbose: int = 0, patience: int = 5,
                 skip_duplicate: bool = True, analysis: Any = None,
                 gp_params: dict | None = None):
        super().__init__(metric, mode)
        kind = (utility_kwargs or {}).get("kind", "ucb")
        if kind not in _ACQUISITION_KINDS:
            raise ValueError(f"BayesOptSearch: utility_kwargs['kind'] must be one of "
                             f"{_ACQUISITION_KINDS}, got {kind!r}")
        self._utility = {"kind": kind, "kappa": 2.576, "xi": 0.0, **(utility_kwargs or {})}
        self._points = list(points_to_evaluate or [])
        self._seed = random_state
        self._random_steps = random_search_steps
        self._verbose = verbose
        self._gp_params = dict(gp_params or {})
        self._axes: list[_Axis] = []
        self._live: dict[str, dict[str, float]] = {}
        self._registered: list[tuple[dict[str, float], float]] = []
        self._suggested = 0
        self._rng = random.Random(random_state)
        self._optimizer = None
        self._has_space = False
        if space:
            self._set_space(space)
        if analysis is not None:
            self._register_analysis(analysis)

    def _register_analysis(self, analysis: Any) -> None:
        if not self._has_space or not self._metric or not self._mode:
            raise ValueError("BayesOptSearch(analysis=...) needs the space, metric and mode too")
        for trial in analysis.trials:
            value = trial.last_result.get(self._metric)
            if isinstance(value, (int, float)):
                self.add_evaluated_point(trial.config, value)

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list | None = None) -> None:
        """Tell the optimizer the metric of a config evaluated elsewhere."""
        if error or not math.isfinite(value):
            return
        encoded = {a.name: a.encode(space_mod.get_path(parameters, a.path)) for a in self._axes}
        target = float(value) if self._mode == "max" else -float(value)
        self._registered.append((encoded, target))
        if self._optimizer is not None:
            self._optimizer.register(params=encoded, target=target)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if self._has_space:
            return not space_mod.contains_search(config or {})
        super().set_search_properties(metric, mode, config)
        self._set_space(config or {})
        return True

    def _set_space(self, space: dict) -> None:
        space_mod.validate_space(space, "BayesOptSearch space")
        _, domains = space_mod.split_space(space)
        if not domains:
            raise ValueError("BayesOptSearch has an empty search space: give it tune.uniform(...) "
                             "style domains, in BayesOptSearch(space=...) or tune.run(config=...)")
        self._axes = [_Axis(space_mod.path_name(path), path, domain)
                      for path, domain in domains.items()]
        self._has_space = True
        self._optimizer = None

    def _make_optimizer(self) -> Any:
        from bayes_opt import BayesianOptimization, acquisition
        kind = self._utility["kind"]
        if kind == "ucb":
            function = acquisition.UpperConfidenceBound(kappa=self._utility["kappa"])
        elif kind == "ei":
            function = acquisition.ExpectedImprovement(xi=self._utility["xi"])
        else:
            function = acquisition.ProbabilityOfImprovement(xi=self._utility["xi"])
        optimizer = BayesianOptimization(
            f=None, pbounds={a.name: a.bounds for a in self._axes}, acquisition_function=function,
            random_state=self._seed, verbose=self._verbose, allow_duplicate_points=True)
        if self._gp_params:
            optimizer.set_gp_params(**self._gp_params)
        for params, target in self._registered:
            optimizer.register(params=params, target=target)
        return optimizer

    def suggest(self, trial_id: str) -> dict | None | str:
        if not self._has_space:
            raise RuntimeError("BayesOptSearch has no search space: pass BayesOptSearch(space=...) "
                               "or tune.run(config=...)")
        if not self._metric or not self._mode:
            raise ValueError("BayesOptSearch needs a metric and a mode: pass them to "
                             "BayesOptSearch(...) or to tune.run(metric=..., mode=...)")
        if self._suggested < len(self._points):
            point = self._points[self._suggested]
            encoded = {a.name: a.encode(space_mod.get_path(point, a.path)) for a in self._axes}
        elif self._suggested < len(self._points) + self._random_steps or not self._registered:
            encoded = {a.name: self._rng.uniform(*a.bounds) for a in self._axes}
        else:
            if self._optimizer is None:
                self._optimizer = self._make_optimizer()
            encoded = {k: float(v) for k, v in self._optimizer.suggest().items()}
        self._suggested += 1
        self._live[trial_id] = encoded
        config: dict = {}
        for axis in self._axes:
            _nested_set(config, axis.path, axis.decode(encoded[axis.name]))
        return config

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        encoded = self._live.pop(trial_id, None)
        value = self._metric_value(result)
        if encoded is None or error or value is None or not math.isfinite(value):
            return
        target = float(value) if self._mode == "max" else -float(value)
        self._registered.append((encoded, target))
        if self._optimizer is not None:
            self._optimizer.register(params=encoded, target=target)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_optimizer"] = None  # rebuilt from _registered on first use
        return state


def _nested_set(config: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value
