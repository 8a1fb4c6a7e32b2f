"""Search spaces: the domains (``tune.uniform`` ...), grid search, and turning a space into configs.

A *space* is a config dict (nested dicts and lists allowed) whose leaves are plain values,
:class:`Domain` objects, or ``{"grid_search": [...]}``. Paths into it are tuples of keys:

    space = {"lr": loguniform(1e-4, 1e-1), "net": {"layers": grid_search([1, 2])}}
    flatten(space)          -> {("lr",): Float, ("net", "layers"): {"grid_search": [1, 2]}}
    generate_variants(space, rng) yields (resolved_vars, config) once per grid point:
        grid points come first (the first path, in sorted order, varies fastest, as in Ray),
        then each random domain is sampled, then ``sample_from`` functions are called with
        a spec whose ``.config`` holds everything resolved so far.

Domains check their arguments lazily: :func:`validate_space` reports a bad domain together
with the key it sits under, before any trial starts.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

Path = tuple


class Domain:
    """A distribution to sample one hyperparameter from."""

    def sample(self, rng: random.Random, spec: Any = None) -> Any:
        raise NotImplementedError

    def problem(self) -> str | None:
        """What is wrong with this domain's arguments, or None."""
        return None

    def is_grid(self) -> bool:
        return False

    def __deepcopy__(self, memo):
        return self


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _quantize(value: float, q: float, lower: float, upper: float) -> float:
    """Round to a multiple of ``q`` inside [lower, upper]."""
    k = round(value / q)
    k = min(max(k, math.ceil(lower / q - 1e-9)), math.floor(upper / q + 1e-9))
    return float(f"{k * q:.12g}")


class Float(Domain):
    """A float in [lower, upper): uniform, or log-uniform (``log_base``), optionally quantized."""

    def __init__(self, lower: float, upper: float, log_base: float | None = None,
                 q: float | None = None, kind: str = "uniform"):
        self.lower, self.upper, self.log_base, self.q, self.kind = lower, upper, log_base, q, kind

    def problem(self) -> str | None:
        if not (_is_number(self.lower) and _is_number(self.upper)):
            return f"{self.kind} needs numeric bounds, got ({self.lower!r}, {self.upper!r})"
        if self.lower >= self.upper:
            return f"{self.kind} needs lower < upper, got ({self.lower!r}, {self.upper!r})"
        if self.log_base is not None:
            if self.lower <= 0:
                return f"{self.kind} needs lower > 0 (it samples on a log scale), got {self.lower!r}"
            if not _is_number(self.log_base) or self.log_base <= 1:
                return f"{self.kind} needs a log base > 1, got {self.log_base!r}"
        if self.q is not None:
            if not _is_number(self.q) or self.q <= 0:
                return f"{self.kind} needs a quantization step q > 0, got {self.q!r}"
            if math.floor(self.upper / self.q + 1e-9) < math.ceil(self.lower / self.q - 1e-9):
                return f"{self.kind}: no multiple of q={self.q} lies in [{self.lower}, {self.upper}]"
        return None

    def sample(self, rng: random.Random, spec: Any = None) -> float:
        if self.log_base is None:
            value = rng.uniform(self.lower, self.upper)
        else:
            base = math.log(self.log_base)
            value = math.exp(rng.uniform(math.log(self.lower) / base, math.log(self.upper) / base) * base)
        if self.q is not None:
            value = _quantize(value, self.q, self.lower, self.upper)
        return value

    def __repr__(self) -> str:
        q = f", q={self.q}" if self.q is not None else ""
        return f"{self.kind}({self.lower}, {self.upper}{q})"


class Integer(Domain):
    """An int in [lower, upper) (``upper`` exclusive), optionally log-uniform or a multiple of q."""

    def __init__(self, lower: int, upper: int, log_base: float | None = None, q: int | None = None,
                 kind: str = "randint"):
        self.lower, self.upper, self.log_base, self.q, self.kind = lower, upper, log_base, q, kind

    def problem(self) -> str | None:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.lower, self.upper))
        if not ints:
            return f"{self.kind} needs int bounds, got ({self.lower!r}, {self.upper!r})"
        if self.lower >= self.upper:
            return f"{self.kind} needs lower < upper (upper is exclusive), got ({self.lower}, {self.upper})"
        if self.log_base is not None and self.lower <= 0:
            return f"{self.kind} needs lower > 0 (it samples on a log scale), got {self.lower}"
        if self.q is not None:
            if not isinstance(self.q, int) or self.q <= 0:
                return f"{self.kind} needs an int step q > 0, got {self.q!r}"
            if not self._multiples():
                return f"{self.kind}: no multiple of q={self.q} lies in [{self.lower}, {self.upper})"
        return None

    def _multiples(self) -> range:
        return range(-(-self.lower // self.q) * self.q, self.upper, self.q)

    def sample(self, rng: random.Random, spec: Any = None) -> int:
        if self.q is not None and self.log_base is None:
            return rng.choice(self._multiples())
        if self.log_base is None:
            return rng.randrange(self.lower, self.upper)
        value = int(math.exp(rng.uniform(math.log(self.lower), math.log(self.upper))))
        value = min(max(value, self.lower), self.upper - 1)
        if self.q is not None:
            value = int(_quantize(value, self.q, self.lower, self.upper - 1))
        return value

    def __repr__(self) -> str:
        return f"{self.kind}({self.lower}, {self.upper})"


class Categorical(Domain):
    """One of a list of values, uniformly."""

    def __init__(self, categories: Any):
        self.categories = categories

    def problem(self) -> str | None:
        if isinstance(self.categories, (str, bytes, dict)) or not hasattr(self.categories, "__len__"):
            return f"choice needs a list of values, got {self.categories!r}"
        if len(self.categories) == 0:
            return "choice needs at least one value, got an empty list"
        return None

    def sample(self, rng: random.Random, spec: Any = None) -> Any:
        return copy.deepcopy(self.categories[rng.randrange(len(self.categories))])

    def __repr__(self) -> str:
        return f"choice({list(self.categories)!r})"


class Normal(Domain):
    """A float from N(mean, sd), optionally rounded to a multiple of q."""

    def __init__(self, mean: float, sd: float, q: float | None = None):
        self.mean, self.sd, self.q = mean, sd, q

    def problem(self) -> str | None:
        if not (_is_number(self.mean) and _is_number(self.sd)) or self.sd <= 0:
            return f"randn needs a numeric mean and sd > 0, got ({self.mean!r}, {self.sd!r})"
        if self.q is not None and (not _is_number(self.q) or self.q <= 0):
            return f"qrandn needs a quantization step q > 0, got {self.q!r}"
        return None

    def sample(self, rng: random.Random, spec: Any = None) -> float:
        value = rng.gauss(self.mean, self.sd)
        if self.q is not None:
            value = float(f"{round(value / self.q) * self.q:.12g}")
        return value

    def __repr__(self) -> str:
        return f"randn({self.mean}, {self.sd})"


class Function(Domain):
    """``sample_from(func)``: ``func(spec)`` computes the value; ``spec.config`` is the config."""

    def __init__(self, func: Callable):
        self.func = func

    def problem(self) -> str | None:
        return None if callable(self.func) else f"sample_from needs a callable, got {self.func!r}"

    def sample(self, rng: random.Random, spec: Any = None) -> Any:
        try:
            return self.func(spec)
        except TypeError:
            import inspect
            if len(inspect.signature(self.func).parameters) == 0:
                return self.func()
            raise

    def __repr__(self) -> str:
        return f"sample_from({getattr(self.func, '__name__', self.func)!r})"


# ------------------------------------------------------------------------------------------
# the public constructors
# ------------------------------------------------------------------------------------------
def uniform(lower: float, upper: float) -> Float:
    """A float uniformly in [lower, upper]: ``tune.uniform(0.0, 1.0)``."""
    return Float(lower, upper, kind="uniform")


def quniform(lower: float, upper: float, q: float) -> Float:
    """A float uniformly in [lower, upper], rounded to a multiple of ``q``."""
    return Float(lower, upper, q=q, kind="quniform")


def loguniform(lower: float, upper: float, base: float = 10) -> Float:
    """A float in [lower, upper], uniform on a log scale: ``tune.loguniform(1e-4, 1e-1)``."""
    return Float(lower, upper, log_base=base, kind="loguniform")


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Float:
    """A log-uniform float rounded to a multiple of ``q``."""
    return Float(lower, upper, log_base=base, q=q, kind="qloguniform")


def randint(lower: int, upper: int | None = None) -> Integer:
    """An int in [lower, upper) (``upper`` exclusive): ``tune.randint(1, 10)``; ``randint(10)`` is [0, 10)."""
    if upper is None:
        lower, upper = 0, lower
    return Integer(lower, upper, kind="randint")


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """A multiple of ``q`` in [lower, upper] (``upper`` inclusive, as in Ray, except for q=1)."""
    return Integer(lower, upper + (1 if isinstance(upper, int) and q != 1 else 0), q=q, kind="qrandint")


def lograndint(lower: int, upper: int, base: float = 10) -> Integer:
    """An int in [lower, upper), uniform on a log scale."""
    return Integer(lower, upper, log_base=base, kind="lograndint")


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Integer:
    """A log-uniform int in [lower, upper], rounded to a multiple of ``q``."""
    return Integer(lower, upper + 1 if isinstance(upper, int) else upper, log_base=base, q=q,
                   kind="qlograndint")


def randn(mean: float = 0.0, sd: float = 1.0) -> Normal:
    """A float from a normal distribution: ``tune.randn(0, 1)``."""
    return Normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Normal:
    """A normal float rounded to a multiple of ``q``."""
    return Normal(mean, sd, q)


def choice(categories: list) -> Categorical:
    """One of ``categories``, uniformly: ``tune.choice([16, 32, 64])``."""
    return Categorical(categories)


def sample_from(func: Callable) -> Function:
    """A value computed by ``func(spec)`` from the rest of the config:
    ``tune.sample_from(lambda spec: spec.config.x * 2)``."""
    return Function(func)


def grid_search(values: list) -> dict:
    """Try every value in ``values`` (each combined with every other grid): ``tune.grid_search([1, 2])``."""
    return {"grid_search": values}


# ------------------------------------------------------------------------------------------
# walking a space
# ------------------------------------------------------------------------------------------
def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "grid_search" in value


def flatten(space: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Map every leaf path of a nested dict/list space to its value (domains and grids are leaves)."""
    if is_grid(space) or isinstance(space, Domain):
        return {prefix: space}
    if isinstance(space, dict) and space:
        out: dict[Path, Any] = {}
        for key, value in space.items():
            out.update(flatten(value, prefix + (key,)))
        return out
    if isinstance(space, list) and any(contains_search(v) for v in space):
        out = {}
        for i, value in enumerate(space):
            out.update(flatten(value, prefix + (i,)))
        return out
    return {prefix: space}


def contains_search(value: Any) -> bool:
    if is_grid(value) or isinstance(value, Domain):
        return True
    if isinstance(value, dict):
        return any(contains_search(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_search(v) for v in value)
    return False


def path_name(path: Path) -> str:
    return "/".join(str(p) for p in path)


def get_path(config: Any, path: Path) -> Any:
    for key in path:
        config = config[key]
    return config


def set_path(config: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def validate_space(space: Any, what: str = "config") -> None:
    """Raise ValueError naming the key of the first invalid domain or grid in ``space``."""
    if space is None:
        return
    if not isinstance(space, dict):
        raise TypeError(f"the {what} must be a dict of hyperparameters, got "
                        f"{type(space).__name__} {space!r:.80}")
    for path, value in flatten(space).items():
        where = f"{what} key {path_name(path)!r}"
        if is_grid(value):
            values = value["grid_search"]
            if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
                raise ValueError(f"{where}: grid_search needs a list of values, got {values!r}")
            if len(list(values)) == 0:
                raise ValueError(f"{where}: grid_search needs at least one value, got an empty list")
        elif isinstance(value, Domain):
            problem = value.problem()
            if problem:
                raise ValueError(f"{where}: {problem}")
        elif isinstance(value, dict) and "grid_search" in value:
            raise ValueError(f"{where}: a grid_search dict must have no other keys, got "
                             f"{sorted(value)!r}")


def count_grid(space: Any) -> int:
    """How many grid points ``space`` has (1 with no grid_search)."""
    count = 1
    for value in flatten(space or {}).values():
        if is_grid(value):
            count *= len(list(value["grid_search"]))
    return count


class _Spec:
    """What ``sample_from`` functions receive: ``spec.config.x`` and ``spec["config"]["x"]``."""

    def __init__(self, config: dict):
        self.config = _AttrDict.wrap(config)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class _AttrDict(dict):
    @classmethod
    def wrap(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return cls({k: cls.wrap(v) for k, v in value.items()})
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}; it has {sorted(self)!r}") from None


def generate_variants(space: dict, rng: random.Random) -> Iterator[tuple[dict, dict]]:
    """Yield ``(resolved_vars, config)`` for every grid point of ``space``, sampling the rest.

    ``resolved_vars`` maps each searched path to the value chosen (for trial names).
    """
    flat = flatten(space)
    grids = sorted(((p, list(v["grid_search"])) for p, v in flat.items() if is_grid(v)),
                   key=lambda item: [str(k) for k in item[0]])
    index = [0] * len(grids)
    while True:
        config = copy_space(space)
        chosen: dict[Path, Any] = {}
        for (path, values), i in zip(grids, index):
            set_path(config, path, copy.deepcopy(values[i]))
            chosen[path] = values[i]
        # a grid value may itself contain domains or grids (a list of sub-configs)
        nested = [p for p, v in flatten(config).items() if is_grid(v)]
        if nested:
            for sub_vars, sub_config in generate_variants(config, rng):
                yield {**chosen, **sub_vars}, sub_config
        else:
            chosen.update(resolve_domains(config, rng))
            yield chosen, config
        if not _advance(index, grids):
            return


def copy_space(space: Any) -> Any:
    """A copy of ``space`` to fill in: its dicts and lists are new, its grids and domains are
    shared (they are replaced, not changed), other values deep-copied."""
    if is_grid(space) or isinstance(space, Domain):
        return space
    if isinstance(space, dict):
        return {key: copy_space(value) for key, value in space.items()}
    if isinstance(space, list):
        return [copy_space(value) for value in space]
    return copy.deepcopy(space)


def _advance(index: list[int], grids: list) -> bool:
    for i, (_, values) in enumerate(grids):
        index[i] += 1
        if index[i] < len(values):
            return True
        index[i] = 0
    return False


def resolve_domains(config: dict, rng: random.Random) -> dict[Path, Any]:
    """Sample every Domain in ``config`` in place; ``sample_from`` functions run last, in rounds,
    so one may read values another computes. Returns the values chosen, by path."""
    chosen: dict[Path, Any] = {}
    pending = []
    for path, value in flatten(config).items():
        if isinstance(value, Function):
            pending.append((path, value))
        elif isinstance(value, Domain):
            chosen[path] = value.sample(rng)
            set_path(config, path, chosen[path])
    for _ in range(len(pending) + 1):
        if not pending:
            break
        still = []
        for path, domain in pending:
            try:
                value = domain.sample(rng, _Spec(config))
            except (AttributeError, KeyError, TypeError) as exc:
                still.append((path, domain, exc))
                continue
            if isinstance(value, Domain):
                value = value.sample(rng, _Spec(config))
            chosen[path] = value
            set_path(config, path, value)
        if len(still) == len(pending):
            path, _, exc = still[0]
            raise ValueError(f"config key {path_name(path)!r}: sample_from function failed: "
                             f"{type(exc).__name__}: {exc}") from exc
        pending = [(p, d) for p, d, _ in still]
    return chosen


def split_space(space: dict) -> tuple[dict, dict[Path, Domain]]:
    """(the constant part of ``space``, the domains to search over by path)."""
    domains = {}
    for path, value in flatten(space).items():
        if is_grid(value):
            raise ValueError(f"config key {path_name(path)!r}: grid_search cannot be combined with "
                             "a search algorithm; use tune.choice([...]) or drop search_alg")
        if isinstance(value, Domain) and not isinstance(value, Function):
            domains[path] = value
    return space, domains


def merge_config(space: dict, suggested: dict, rng: random.Random) -> dict:
    """The full config for a searcher's suggestion: the space's constants overlaid with the
    searcher's values (a grid or domain in the space is replaced whole; plain dicts merge key
    by key), then whatever is left (``sample_from``, domains the searcher skipped) resolved."""
    config = _overlay(copy_space(space), suggested)
    resolve_domains(config, rng)
    return config


def _overlay(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and not is_grid(base) and isinstance(top, dict):
        for key, value in top.items():
            base[key] = _overlay(base[key], value) if key in base else value
        return base
    if isinstance(base, list) and isinstance(top, list) and len(base) == len(top):
        return [_overlay(b, t) for b, t in zip(base, top)]
    return top


def trial_tag(resolved_vars: dict[Path, Any]) -> str:
    """``x=-1,y=0.5000``: the searched values, for a trial's directory name."""
    import re
    parts = []
    for path, value in resolved_vars.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        text = re.sub(r"[^a-zA-Z0-9_.\-]+", "_", text).strip("_")
        name = str(path[-1]).rsplit("/", 1)[-1] if path else "value"  # "a/b": nested key b
        parts.append(f"{name}={text}")
    return ",".join(parts)
