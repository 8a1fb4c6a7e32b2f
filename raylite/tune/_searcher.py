"""Searchers: where the configs of new trials come from.

A searcher is a small plugin with three calls (the contract every plugin is tested against):

    set_search_properties(metric, mode, config, **spec)   once, before the first suggest
    suggest(trial_id)          -> config dict | None ("not now") | Searcher.FINISHED
    on_trial_result(trial_id, result)          zero or more times, in the order reported
    on_trial_complete(trial_id, result, error) exactly once per suggested trial

``suggest`` may be called for new trials while others are still running; ``trial_id`` values
are unique. The runner merges a suggestion into the space's constant values and resolves any
``sample_from`` left in it, so a searcher returns only the values it chose.

Plugins here: :class:`BasicVariantGenerator` (grid search and random sampling),
:class:`ConcurrencyLimiter` and :class:`Repeater` (wrap another searcher); ``OptunaSearch``,
``HyperOptSearch`` and ``BayesOptSearch`` live in their own modules so their libraries are
imported only when used.
"""

from __future__ import annotations

import abc
import copy
import pickle
import random
from typing import Any

from raylite.tune import _search_space as space_mod

MODES = ("min", "max")


def check_mode(mode: str | None, where: str) -> None:
    if mode is not None and mode not in MODES:
        raise ValueError(f"{where}: mode must be 'min' or 'max', got {mode!r}")


class Searcher(abc.ABC):
    """Base class of search algorithms: suggest configs, learn from results.

    Call order (see the module docstring): ``set_search_properties`` once, then for each
    trial ``suggest`` -> ``on_trial_result``* -> ``on_trial_complete`` (exactly once).

    Example:
        >>> class Constant(Searcher):
        ...     def suggest(self, trial_id):
        ...         return {"x": 1}
        ...     def on_trial_complete(self, trial_id, result=None, error=False):
        ...         pass
        >>> Constant(metric="score", mode="max").suggest("t0")
        {'x': 1}
    """

    FINISHED = "FINISHED"

    def __init__(self, metric: str | None = None, mode: str | None = None):
        check_mode(mode, type(self).__name__)
        self._metric = metric
        self._mode = mode

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        """Receive the experiment's metric, mode and search space. Returns False when this
        searcher already has a space of its own and cannot take ``config``'s."""
        check_mode(mode, "tune.run")
        if metric and self._metric and metric != self._metric:
            raise ValueError(f"tune.run(metric={metric!r}) conflicts with the metric "
                             f"{self._metric!r} given to {type(self).__name__}; pass it once")
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    @abc.abstractmethod
    def suggest(self, trial_id: str) -> dict | None | str:
        """A config for the new trial ``trial_id``; None to be asked later; FINISHED when done."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A trial reported an intermediate result."""

    @abc.abstractmethod
    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """A trial ended: ``result`` is its last result (None if it never reported)."""

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list | None = None) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot take evaluated points")

    def get_state(self) -> Any:
        """This searcher's state, picklable (what :meth:`save` writes)."""
        return self.__getstate__()

    def set_state(self, state: Any) -> None:
        """Take back a state from :meth:`get_state`."""
        setstate = getattr(self, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        """Write this searcher's state to ``checkpoint_path`` (for resuming an experiment)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state :meth:`save` wrote."""
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def total_samples(self) -> int | None:
        """How many trials this searcher will produce, when it knows (for progress)."""
        return None

    def _metric_value(self, result: dict | None) -> float | None:
        if not result or self._metric is None or self._metric not in result:
            return None
        return result[self._metric]


class BasicVariantGenerator(Searcher):
    """Grid search and random sampling over a Tune search space.

    Every grid point of the space is run ``num_samples`` times; the other domains are sampled
    afresh for each trial. ``points_to_evaluate`` (partial configs) run first.

    Example:
        >>> from raylite import tune
        >>> gen = BasicVariantGenerator(random_state=0)
        >>> gen.set_search_properties(None, None, {"x": tune.grid_search([1, 2])}, num_samples=1)
        True
        >>> [gen.suggest(str(i)) for i in range(3)]
        [{'x': 1}, {'x': 2}, 'FINISHED']
    """

    def __init__(self, points_to_evaluate: list[dict] | None = None, max_concurrent: int = 0,
                 random_state: int | random.Random | None = None,
                 constant_grid_search: bool = False):
        super().__init__()
        if points_to_evaluate is not None and not isinstance(points_to_evaluate, list):
            raise TypeError(f"points_to_evaluate must be a list of config dicts, got "
                            f"{type(points_to_evaluate).__name__}")
        self._points = list(points_to_evaluate or [])
        self._max_concurrent = max_concurrent
        self._rng = random_state if isinstance(random_state, random.Random) else random.Random(random_state)
        self._space: dict = {}
        self._num_samples = 1
        self._iterator = None
        self._live: set[str] = set()
        self._produced = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        super().set_search_properties(metric, mode, config)
        self._space = config or {}
        self._num_samples = spec.get("num_samples", 1)
        self._iterator = None
        return True

    def total_samples(self) -> int:
        return len(self._points) + self._num_samples * space_mod.count_grid(self._space)

    def _variants(self):
        for point in self._points:
            yield space_mod.merge_config(self._space, point, self._rng)
        for _ in range(self._num_samples):
            for _, config in space_mod.generate_variants(self._space, self._rng):
                yield config

    def suggest(self, trial_id: str) -> dict | None | str:
        if self._max_concurrent and len(self._live) >= self._max_concurrent:
            return None
        if self._iterator is None:
            self._iterator = self._variants()
            for _ in range(self._produced):  # resuming after restore(): skip what was handed out
                next(self._iterator, None)
        config = next(self._iterator, None)
        if config is None:
            return Searcher.FINISHED
        self._live.add(trial_id)
        self._produced += 1
        return config

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        self._live.discard(trial_id)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_iterator"] = None
        return state


class ConcurrencyLimiter(Searcher):
    """Let the wrapped searcher have at most ``max_concurrent`` trials running at once.

    Example:
        >>> limited = ConcurrencyLimiter(BasicVariantGenerator(), max_concurrent=1)
        >>> limited.set_search_properties(None, None, {"x": 1}, num_samples=3)
        True
        >>> limited.suggest("a"), limited.suggest("b")
        ({'x': 1}, None)
    """

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False):
        if not isinstance(searcher, Searcher):
            raise TypeError(f"ConcurrencyLimiter wraps a Searcher, got {type(searcher).__name__}")
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        super().__init__(searcher.metric, searcher.mode)
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = batch
        self._live: set[str] = set()
        self._batch_open = True

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def total_samples(self) -> int | None:
        return self.searcher.total_samples()

    def suggest(self, trial_id: str) -> dict | None | str:
        if len(self._live) >= self.max_concurrent or (self.batch and not self._batch_open):
            self._batch_open = False
            return None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self._live.add(trial_id)
        return config

    def on_trial_result(self, trial_id, result) -> None:
        if trial_id in self._live:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        if trial_id not in self._live:
            return
        self._live.discard(trial_id)
        self.searcher.on_trial_complete(trial_id, result=result, error=error)
        if not self._live:
            self._batch_open = True


class _RepeatGroup:
    """One config of the wrapped searcher and the trials that repeat it."""

    def __init__(self, group_id: str, config: dict):
        self.group_id, self.config = group_id, config
        self.handed_out = 0
        self.results: list[dict | None] = []


class Repeater(Searcher):
    """Run every config of the wrapped searcher ``repeat`` times (e.g. over random seeds); the
    wrapped searcher hears of it once, with the metric averaged over the repeats.

    ``num_samples`` counts all trials, so make it a multiple of ``repeat``. With ``set_index``
    each repeat's config has ``"__trial_index__"``: 0 .. repeat - 1.

    Example:
        >>> repeated = Repeater(BasicVariantGenerator(random_state=0), repeat=2)
        >>> repeated.set_search_properties("loss", "min", {"x": 1}, num_samples=4)
        True
        >>> [repeated.suggest(t) for t in "ab"]
        [{'x': 1, '__trial_index__': 0}, {'x': 1, '__trial_index__': 1}]
    """

    TRIAL_INDEX = "__trial_index__"

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True):
        if not isinstance(searcher, Searcher):
            raise TypeError(f"Repeater wraps a Searcher, got {type(searcher).__name__}")
        if not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
        super().__init__(searcher.metric, searcher.mode)
        self.searcher = searcher
        self.repeat = repeat
        self.set_index = set_index
        self._current: _RepeatGroup | None = None
        self._group_of: dict[str, _RepeatGroup] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def suggest(self, trial_id: str) -> dict | None | str:
        group = self._current
        if group is None or group.handed_out >= self.repeat:
            config = self.searcher.suggest(trial_id)
            if not isinstance(config, dict):
                return config
            group = self._current = _RepeatGroup(trial_id, config)
        config = copy.deepcopy(group.config)
        if self.set_index:
            config[self.TRIAL_INDEX] = group.handed_out
        group.handed_out += 1
        self._group_of[trial_id] = group
        return config

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        group = self._group_of.pop(trial_id, None)
        if group is None:
            return
        group.results.append(None if error else result)
        if len(group.results) < self.repeat:
            return
        values = [r[self._metric] for r in group.results
                  if r and isinstance(r.get(self._metric), (int, float))]
        if not values:
            self.searcher.on_trial_complete(group.group_id, result=None, error=True)
            return
        last = next(r for r in reversed(group.results) if r)
        self.searcher.on_trial_complete(group.group_id,
                                        result={**last, self._metric: sum(values) / len(values)})


def searcher_from_name(name: str) -> Searcher:
    """``search_alg="optuna"`` and friends, as Ray accepts."""
    key = name.lower()
    if key in ("random", "variant_generator", "grid", "basic_variant"):
        return BasicVariantGenerator()
    if key == "optuna":
        from raylite.tune._optuna import OptunaSearch
        return OptunaSearch()
    if key == "hyperopt":
        from raylite.tune._hyperopt import HyperOptSearch
        return HyperOptSearch()
    if key in ("bayesopt", "bayes_opt"):
        from raylite.tune._bayesopt import BayesOptSearch
        return BayesOptSearch()
    raise ValueError(f"unknown search_alg {name!r}; choose 'random', 'optuna', 'hyperopt' or "
                     "'bayesopt', or pass a Searcher instance")
