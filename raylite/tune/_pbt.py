"""PopulationBasedTraining (Jaderberg et al., 2017, "Population Based Training of Neural
Networks"): trials train side by side; every ``perturbation_interval`` a trial is ranked
against the others, and one in the bottom quantile takes over a top trial's state:

    trial T reaches time t (t - T's last perturbation >= perturbation_interval):
        T in the top quantile    -> save T's checkpoint now (the one others will clone)
        T in the bottom quantile -> exploit: copy a top trial D's checkpoint into T's folder,
                                    explore: T's config = D's config perturbed, and T restarts
                                    from the copy (``runner.restart_trial``)
        other trials waiting     -> T pauses, so the population moves forward together

Exploring a hyperparameter in ``hyperparam_mutations``: with ``resample_probability`` draw it
afresh from its distribution; else, for a list of values move to a neighbour, for a number
multiply by one of ``perturbation_factors`` (1.2 or 0.8). Each exploit is logged as a line of
``pbt_global.txt`` in the experiment folder.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import warnings
from collections.abc import Callable
from typing import Any

from raylite.tune import _search_space as space_mod
from raylite.tune._scheduler import FIFOScheduler
from raylite.tune._searcher import check_mode
from raylite.tune._trial import Trial


def explore(config: dict, mutations: dict, resample_probability: float,
            perturbation_factors: tuple[float, ...], rng: random.Random,
            custom_explore_fn: Callable[[dict], dict] | None = None) -> dict:
    """A perturbed copy of ``config`` (see the module docstring for the rules).

    Example:
        >>> explore({"lr": 0.1, "bs": 32}, {"lr": [0.01, 0.1, 1.0]}, 0.0, (1.2, 0.8),
        ...         random.Random(0))["lr"] in (0.01, 1.0)
        True
    """
    new = copy.deepcopy(config)
    for key, distribution in mutations.items():
        if isinstance(distribution, dict):
            new[key] = explore(config.get(key, {}), distribution, resample_probability,
                               perturbation_factors, rng)
            continue
        values = _as_list(distribution)
        if values is not None:
            current = config.get(key)
            if current not in values or rng.random() < resample_probability:
                new[key] = copy.deepcopy(rng.choice(values))
            else:
                index = values.index(current) + rng.choice((-1, 1))
                new[key] = copy.deepcopy(values[min(max(index, 0), len(values) - 1)])
        elif rng.random() < resample_probability or not _is_number(config.get(key)):
            new[key] = _sample(distribution, rng)
        else:
            value = config[key] * rng.choice(perturbation_factors)
            new[key] = int(value) if isinstance(config[key], int) else value
    if custom_explore_fn is not None:
        new = custom_explore_fn(new)
        if not isinstance(new, dict):
            raise TypeError(f"custom_explore_fn must return the new config dict, got "
                            f"{type(new).__name__}")
    return new


def _as_list(distribution: Any) -> list | None:
    if isinstance(distribution, (list, tuple)):
        return list(distribution)
    if isinstance(distribution, space_mod.Categorical):
        return list(distribution.categories)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sample(distribution: Any, rng: random.Random) -> Any:
    if isinstance(distribution, space_mod.Domain):
        return distribution.sample(rng)
    return distribution()


class _PBTState:
    """What PBT remembers of one trial."""

    def __init__(self, trial: Trial):
        self.trial = trial
        self.last_score: float | None = None      # sign-adjusted: higher is better
        self.last_checkpoint: str | None = None   # saved at its last perturbation, to clone
        self.checkpoint_point: tuple[int, float] = (0, 0.0)
        self.last_perturbation_time = 0.0
        self.last_train_time = 0.0


class PopulationBasedTraining(FIFOScheduler):
    """Population Based Training: bad trials take over good trials' checkpoints and configs.

    Args:
        time_attr: the result field that measures progress (``time_total_s``,
            ``training_iteration``...).
        metric, mode: what to rank trials on.
        perturbation_interval: rank a trial every this much ``time_attr``.
        burn_in_period: no perturbation before this much ``time_attr``.
        hyperparam_mutations: ``{key: list of values | tune domain | function () -> value |
            nested dict of these}``; keys missing from a trial's config are drawn from here.
        quantile_fraction: the share of trials at the top and at the bottom (<= 0.5).
        resample_probability: chance to draw a value afresh instead of perturbing it.
        perturbation_factors: what numbers are multiplied by when perturbed.
        custom_explore_fn: ``f(config) -> config``, applied after the mutations.
        log_config: write each exploit to ``pbt_global.txt`` in the experiment folder.
        require_attrs: a result without ``time_attr`` or ``metric`` is an error.
        seed: for reproducible choices.

    Trials must checkpoint: class trainables through ``save_checkpoint``/``load_checkpoint``;
    function trainables by reporting checkpoints (``tune.checkpoint_dir`` or
    ``tune.report(..., checkpoint=...)``) and reading ``tune.get_checkpoint()`` when they start.

    Example:
        >>> from raylite import tune
        >>> pbt = tune.schedulers.PopulationBasedTraining(
        ...     time_attr="training_iteration", metric="score", mode="max",
        ...     perturbation_interval=2, hyperparam_mutations={"lr": tune.loguniform(1e-4, 1e-1)})
    """

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None,
                 mode: str | None = None, perturbation_interval: float = 60.0,
                 burn_in_period: float = 0.0, hyperparam_mutations: dict | None = None,
                 quantile_fraction: float = 0.25, resample_probability: float = 0.25,
                 perturbation_factors: tuple[float, ...] = (1.2, 0.8),
                 custom_explore_fn: Callable[[dict], dict] | None = None,
                 log_config: bool = True, require_attrs: bool = True, synch: bool = False,
                 seed: int | None = None):
        check_mode(mode, type(self).__name__)
        mutations = hyperparam_mutations or {}
        if not mutations and custom_explore_fn is None:
            raise ValueError("PopulationBasedTraining needs hyperparam_mutations (e.g. {'lr': "
                             "tune.loguniform(1e-4, 1e-1)}) or a custom_explore_fn")
        _check_mutations(mutations)
        for name, value, ok in (
                ("perturbation_interval", perturbation_interval, perturbation_interval > 0),
                ("quantile_fraction", quantile_fraction, 0 <= quantile_fraction <= 0.5),
                ("resample_probability", resample_probability, 0 <= resample_probability <= 1)):
            if not ok:
                raise ValueError(f"PopulationBasedTraining: {name}={value!r} is out of range "
                                 "(perturbation_interval > 0, 0 <= quantile_fraction <= 0.5, "
                                 "0 <= resample_probability <= 1)")
        if synch:
            raise ValueError("PopulationBasedTraining(synch=True) is not supported by raylite; "
                             "use the default synch=False (trials pause to keep in step)")
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._interval, self._burn_in = perturbation_interval, burn_in_period
        self._mutations = mutations
        self._quantile_fraction = quantile_fraction
        self._resample_probability = resample_probability
        self._factors = tuple(perturbation_factors)
        self._custom_explore_fn = custom_explore_fn
        self._log_config = log_config
        self._require_attrs = require_attrs
        self._rng = random.Random(seed)
        self._state: dict[str, _PBTState] = {}
        self._warned_no_checkpoint = False
        self.eager_trials = True  # the runner creates the population up front, to rank it
        self.num_perturbations = 0

    # ---- the runner's calls -------------------------------------------------------------------
    def on_trial_add(self, runner: Any, trial: Trial) -> None:
        self._require_metric()
        _fill_missing(trial.config, self._mutations, self._rng)
        self._state[trial.trial_id] = _PBTState(trial)

    def on_trial_result(self, runner: Any, trial: Trial, result: dict) -> str:
        missing = [k for k in (self._time_attr, self._metric) if k not in result]
        if missing:
            if self._require_attrs:
                raise ValueError(f"PopulationBasedTraining: trial {trial} reported a result "
                                 f"without {missing}; it reported {sorted(result)}. Report them, "
                                 "or pass require_attrs=False")
            return self.CONTINUE
        state = self._state.setdefault(trial.trial_id, _PBTState(trial))
        time = result[self._time_attr]
        state.last_train_time = time
        if time < self._burn_in or time - state.last_perturbation_time < self._interval:
            return self.CONTINUE
        state.last_perturbation_time = time
        state.last_score = (1.0 if self._mode == "max" else -1.0) * result[self._metric]
        lower, upper = self._quantiles()
        waiting = any(t.status in (Trial.PENDING, Trial.PAUSED)
                      for t in runner.live_trials() if t is not trial)
        if trial.trial_id in upper:
            state.last_checkpoint = runner.save_trial(trial)
            state.checkpoint_point = (trial.checkpoint_iteration, trial.checkpoint_time_s)
        elif trial.trial_id in lower:
            donors = [self._state[t] for t in upper if self._state[t].last_checkpoint
                      and os.path.exists(self._state[t].last_checkpoint)]
            if donors:
                self._exploit(runner, state, self._rng.choice(donors), pause=waiting)
                return self.NOOP
            self._warn_no_checkpoint(trial)
        return self.PAUSE if waiting else self.CONTINUE

    def _quantiles(self) -> tuple[set[str], set[str]]:
        """(bottom, top) trial ids among the trials ranked so far."""
        ranked = sorted((s for s in self._state.values()
                         if s.last_score is not None and s.trial.status != Trial.ERROR),
                        key=lambda s: s.last_score)
        if len(ranked) <= 1:
            return set(), set()
        count = math.ceil(len(ranked) * self._quantile_fraction)
        count = min(count, len(ranked) // 2)
        return ({s.trial.trial_id for s in ranked[:count]},
                {s.trial.trial_id for s in ranked[len(ranked) - count:]})

    def _exploit(self, runner: Any, state: _PBTState, donor: _PBTState, pause: bool) -> None:
        trial = state.trial
        new_config = explore(donor.trial.config, self._mutations, self._resample_probability,
                             self._factors, self._rng, self._custom_explore_fn)
        if self._log_config:
            self._log(trial, donor, new_config)
        runner.restart_trial(trial, new_config, donor.last_checkpoint, donor.checkpoint_point,
                             pause=pause)
        state.last_score = None
        state.last_checkpoint = None
        state.last_perturbation_time = donor.last_perturbation_time
        state.last_train_time = donor.last_train_time
        self.num_perturbations += 1

    def _log(self, trial: Trial, donor: _PBTState, new_config: dict) -> None:
        folder = trial.experiment_dir or (os.path.dirname(trial.logdir) if trial.logdir else None)
        if not folder:
            return
        line = [trial.trial_id, donor.trial.trial_id, donor.checkpoint_point[0],
                trial.last_result.get("training_iteration"), trial.config, new_config]
        with open(os.path.join(folder, "pbt_global.txt"), "a") as f:
            f.write(json.dumps(line, default=repr) + "\n")

    def _warn_no_checkpoint(self, trial: Trial) -> None:
        if not self._warned_no_checkpoint:
            self._warned_no_checkpoint = True
            warnings.warn(f"PopulationBasedTraining: the top trials have no checkpoint to clone "
                          f"into {trial}; function trainables must report checkpoints "
                          "(tune.checkpoint_dir or tune.report(checkpoint=...))", stacklevel=2)

    def on_trial_error(self, runner: Any, trial: Trial) -> None:
        self._state.pop(trial.trial_id, None)

    on_trial_remove = on_trial_error

    def choose_trial_to_run(self, runner: Any) -> Trial | None:
        """A new trial first, then the paused trial furthest behind."""
        live = runner.live_trials()
        for trial in live:
            if trial.status == Trial.PENDING:
                return trial
        paused = [t for t in live if t.status == Trial.PAUSED]
        if not paused:
            return None
        return min(paused, key=lambda t: self._state[t.trial_id].last_train_time
                   if t.trial_id in self._state else 0.0)

    def debug_string(self) -> str:
        return f"PopulationBasedTraining: {self.num_perturbations} perturbs"


def _check_mutations(mutations: dict, prefix: str = "") -> None:
    if not isinstance(mutations, dict):
        raise TypeError(f"hyperparam_mutations must be a dict, got {type(mutations).__name__}")
    for key, value in mutations.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_mutations(value, f"{name}/")
        elif isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"hyperparam_mutations[{name!r}] is an empty list")
        elif isinstance(value, space_mod.Domain):
            problem = value.problem()
            if problem:
                raise ValueError(f"hyperparam_mutations[{name!r}]: {problem}")
        elif not callable(value):
            raise TypeError(f"hyperparam_mutations[{name!r}] must be a list of values, a tune "
                            f"search domain or a function returning a value, got {value!r}")


def _fill_missing(config: dict, mutations: dict, rng: random.Random) -> None:
    """Draw the mutated keys a trial's config does not have (as Ray's PBT does)."""
    for key, distribution in mutations.items():
        if isinstance(distribution, dict):
            _fill_missing(config.setdefault(key, {}), distribution, rng)
        elif key not in config:
            values = _as_list(distribution)
            config[key] = copy.deepcopy(rng.choice(values)) if values is not None else \
                _sample(distribution, rng)
