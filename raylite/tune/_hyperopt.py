"""HyperOptSearch: HyperOpt's Tree-structured Parzen Estimator behind the Searcher contract.

HyperOpt is imported on first use. Each Tune trial is one HyperOpt trial document in a
``hyperopt.Trials`` store: ``suggest`` asks ``tpe.suggest`` for a new document and evaluates the
space with its values; ``on_trial_complete`` marks the document done with a loss (the metric,
negated for mode="max") or as an error.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

from raylite.tune import _search_space as space_mod
from raylite.tune._searcher import Searcher


class HyperOptSearch(Searcher):
    """Search with HyperOpt (TPE).

    Args:
        space: a Tune search space dict or a HyperOpt space (``hp.*`` expressions); leave it
            out to use ``tune.run``'s ``config``.
        metric, mode: what to optimize; may instead come from ``tune.run``.
        points_to_evaluate: configs to try first.
        n_initial_points: random trials before TPE takes over.
        random_state_seed: seed, for reproducible suggestions.
        gamma: TPE's quantile splitting good from bad trials.

    Example:
        >>> from raylite import tune
        >>> search = HyperOptSearch({"x": tune.uniform(0, 1)}, metric="loss", mode="min",
        ...                         random_state_seed=1)
        >>> 0 <= search.suggest("trial_1")["x"] <= 1
        True
    """

    def __init__(self, space: dict | None = None, metric: str | None = None,
                 mode: str | None = None, points_to_evaluate: list[dict] | None = None,
                 n_initial_points: int = 20, random_state_seed: int | None = None,
                 gamma: float = 0.25):
        super().__init__(metric, mode)
        self._points = [copy.deepcopy(p) for p in points_to_evaluate or []]
        self._n_initial_points = n_initial_points
        self._seed = random_state_seed
        self._gamma = gamma
        self._space = None
        self._domain = None
        self._live: dict[str, dict] = {}
        self._pending_points = 0
        if space:
            self._space = space if _is_hyperopt_space(space) else self._convert(space)
            self._setup()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if self._domain is not None:
            return not space_mod.contains_search(config or {})
        super().set_search_properties(metric, mode, config)
        self._space = self._convert(config or {})
        self._setup()
        return True

    def _convert(self, space: dict) -> dict:
        import hyperopt as hpo
        from hyperopt.pyll import scope
        space_mod.validate_space(space, "HyperOptSearch space")
        _, domains = space_mod.split_space(space)
        out: dict = {}
        for path, domain in domains.items():
            name = space_mod.path_name(path)
            _nested_set(out, path, _to_hyperopt(name, domain, hpo, scope))
        return out

    def _setup(self) -> None:
        import functools

        import hyperopt as hpo
        from hyperopt.fmin import generate_trials_to_calculate
        if not self._space:
            raise ValueError("HyperOptSearch has an empty search space: give it tune.uniform(...) "
                             "style domains, in HyperOptSearch(space=...) or tune.run(config=...)")
        self._algo = functools.partial(hpo.tpe.suggest, n_startup_jobs=self._n_initial_points,
                                       gamma=self._gamma)
        self._rng = random.Random(self._seed)
        if self._points:
            points = [self._to_labels(p) for p in reversed(self._points)]
            self._trials = generate_trials_to_calculate(points)
            self._trials.refresh()
            self._pending_points = len(points)
        else:
            self._trials = hpo.Trials()
        self._domain = hpo.Domain(_identity, self._space)

    def _to_labels(self, point: dict) -> dict:
        """A point as HyperOpt wants it: flat by label, categories as indices."""
        labels = {}
        flat_space = _flatten_hyperopt(self._space)
        for path, value in space_mod.flatten(point).items():
            name = space_mod.path_name(path)
            node = flat_space.get(name)
            if node is not None and node.name == "switch":
                categories = [a.obj for a in node.pos_args[1:] if a.name == "literal"]
                if value not in categories:
                    raise ValueError(f"points_to_evaluate: {value!r} is not one of the choices "
                                     f"{categories!r} of {name!r}")
                value = categories.index(value)
            labels[name] = value
        return labels

    def suggest(self, trial_id: str) -> dict | None | str:
        import hyperopt as hpo
        if self._domain is None:
            raise RuntimeError("HyperOptSearch has no search space: pass HyperOptSearch(space=...) "
                               "or tune.run(config=...)")
        if not self._metric or not self._mode:
            raise ValueError("HyperOptSearch needs a metric and a mode: pass them to "
                             "HyperOptSearch(...) or to tune.run(metric=..., mode=...)")
        if self._pending_points > 0:
            new_trial = self._trials.trials[self._pending_points - 1]
            self._pending_points -= 1
        else:
            new_ids = self._trials.new_trial_ids(1)
            self._trials.refresh()
            new_trials = self._algo(new_ids, self._domain, self._trials, self._rng.randrange(2**31 - 1))
            self._trials.insert_trial_docs(new_trials)
            self._trials.refresh()
            new_trial = new_trials[0]
        self._live[trial_id] = new_trial
        values = hpo.base.spec_from_misc(new_trial["misc"])
        ctrl = hpo.base.Ctrl(self._trials, current_trial=new_trial)
        memo = self._domain.memo_from_config(values)
        hpo.utils.use_obj_for_literal_in_memo(self._domain.expr, ctrl, hpo.base.Ctrl, memo)
        config = hpo.pyll.rec_eval(self._domain.expr, memo=memo,
                                   print_node_on_error=self._domain.rec_eval_print_node_on_error)
        return _to_python(copy.deepcopy(config))

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        import hyperopt as hpo
        doc = self._live.pop(trial_id, None)
        if doc is None:
            return
        doc["refresh_time"] = hpo.utils.coarse_utcnow()
        value = self._metric_value(result)
        if error or value is None or (isinstance(value, float) and math.isnan(value)):
            doc["state"] = hpo.base.JOB_STATE_ERROR
            doc["misc"]["error"] = ("TuneError", "trial failed or never reported the metric")
        else:
            sign = -1.0 if self._mode == "max" else 1.0
            doc["state"] = hpo.base.JOB_STATE_DONE
            doc["result"] = {"loss": sign * float(value), "status": "ok"}
        self._trials.refresh()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_algo", None)
        state["_domain"] = None
        return state

    def __setstate__(self, state):
        import functools

        import hyperopt as hpo
        self.__dict__.update(state)
        self._algo = functools.partial(hpo.tpe.suggest, n_startup_jobs=self._n_initial_points,
                                       gamma=self._gamma)
        if self._space:
            self._domain = hpo.Domain(_identity, self._space)


def _identity(space: Any) -> Any:
    return space


def _to_hyperopt(name: str, domain: space_mod.Domain, hpo, scope) -> Any:
    hp = hpo.hp
    if isinstance(domain, space_mod.Float):
        if domain.log_base is None:
            if domain.q is None:
                return hp.uniform(name, domain.lower, domain.upper)
            return hp.quniform(name, domain.lower, domain.upper, domain.q)
        low, high = math.log(domain.lower), math.log(domain.upper)
        if domain.q is None:
            return hp.loguniform(name, low, high)
        return hp.qloguniform(name, low, high, domain.q)
    if isinstance(domain, space_mod.Integer):
        high = domain.upper - 1
        if domain.log_base is not None:
            return scope.int(hp.qloguniform(name, math.log(domain.lower), math.log(high), domain.q or 1))
        if domain.q is not None and domain.q != 1:
            low = -(-domain.lower // domain.q) * domain.q
            return scope.int(hp.quniform(name, low, high, domain.q))
        return hp.uniformint(name, domain.lower, high)
    if isinstance(domain, space_mod.Categorical):
        return hp.choice(name, list(domain.categories))
    if isinstance(domain, space_mod.Normal):
        if domain.q is None:
            return hp.normal(name, domain.mean, domain.sd)
        return hp.qnormal(name, domain.mean, domain.sd, domain.q)
    raise ValueError(f"config key {name!r}: HyperOptSearch cannot search a {domain!r} domain")


def _is_hyperopt_space(space: dict) -> bool:
    from hyperopt.pyll import Apply
    return any(isinstance(v, Apply) for v in _walk(space))


def _walk(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    else:
        yield value


def _flatten_hyperopt(space: dict, prefix: tuple = ()) -> dict:
    out = {}
    for key, value in space.items():
        if isinstance(value, dict):
            out.update(_flatten_hyperopt(value, prefix + (key,)))
        else:
            out[space_mod.path_name(prefix + (key,))] = value
    return out


def _nested_set(config: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def _to_python(value: Any) -> Any:
    """HyperOpt hands back numpy scalars; configs should hold plain Python values."""
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_python(v) for v in value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value
