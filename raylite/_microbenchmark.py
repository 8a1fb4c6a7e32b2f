"""The core-runtime microbenchmark workloads, shared by ``raylite microbenchmark`` and bench/core.py.

    iter_figures(runtime) ──▶ ("init_s", 0.06), ("tasks_sync_per_s", 3500.0), ... ──▶ printer / JSON

The workloads are those of the reference script ``bench/core_bench.py`` (same counts, same
order, same figure keys), written against the Ray API only, so the same code measures raylite,
Ray, or any module exposing ``init/remote/get/put/shutdown``. ``iter_pool_figures`` is the
``multiprocessing.Pool`` baseline of the task figures. This file imports nothing outside the
standard library at module level (numpy is needed only for the 100 MiB figures), and bench/core.py
loads it by path into interpreters where raylite is not installed, so keep it self-contained.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Any, Callable, Iterator, NamedTuple


class Figure(NamedTuple):
    """One measured figure: its JSON key, a human label, its unit, and which way is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


FIGURES: tuple[Figure, ...] = (
    Figure("init_s", "init, first call", "s", False),
    Figure("tasks_sync_per_s", "no-op task, sync round trip", "/s", True),
    Figure("tasks_async_per_s", "no-op tasks, batch submitted then get", "/s", True),
    Figure("actor_calls_sync_per_s", "actor calls, sync", "/s", True),
    Figure("actor_calls_async_per_s", "actor calls, batch submitted then get", "/s", True),
    Figure("put_get_small_per_s", "put+get of 1 KiB", "/s", True),
    Figure("put_100MiB_GBps", "put of a 100 MiB array", "GB/s", True),
    Figure("get_100MiB_s", "get of a 100 MiB array", "s", False),
    Figure("task_on_100MiB_ref_s", "task reading a 100 MiB ref", "s", False),
    Figure("book_retrieve_8_s", "book Example 2-5, 8 retrievals", "s", False),
    Figure("generator_items_per_s", "streaming generator, 10k small yields", "/s", True),
)
FIGURES_BY_KEY = {figure.key: figure for figure in FIGURES}
POOL_KEYS = ("init_s", "tasks_sync_per_s", "tasks_async_per_s")
NUMPY_KEYS = ("put_100MiB_GBps", "get_100MiB_s", "task_on_100MiB_ref_s")

_100_MIB = 100 * 1024 * 1024


def rate(function: Callable[[], Any], count: int) -> float:
    """Calls per second: ``count`` divided by the wall time of one call of ``function``."""
    start = time.perf_counter()
    function()
    return count / (time.perf_counter() - start)


def iter_figures(runtime: Any = "raylite", *, num_cpus: int = 2,
                 scale: float = 1.0) -> Iterator[tuple[str, float | None]]:
    """Start ``runtime`` (a module or its name), run every workload, yield ``(key, value)``.

    A value is ``None`` where the figure could not be measured (numpy missing). The runtime is
    shut down when the generator finishes or is closed. ``init_s`` includes the import when
    ``runtime`` is given by name, as in the reference script.

    Example:
        >>> for key, value in iter_figures("raylite", scale=0.01):  # doctest: +SKIP
        ...     print(key, value)
    """
    start = time.perf_counter()
    rt = importlib.import_module(runtime) if isinstance(runtime, str) else runtime
    init_options = {"include_dashboard": False} if rt.__name__ == "ray" else {}
    rt.init(num_cpus=num_cpus, **init_options)
    try:
        yield "init_s", time.perf_counter() - start
        yield from _task_figures(rt, scale)
        yield from _actor_figures(rt, scale)
        yield from _object_figures(rt, scale)
        yield "book_retrieve_8_s", _book_example_2_5(rt)
        yield from _generator_figures(rt, scale)
    finally:
        rt.shutdown()


def _task_figures(rt: Any, scale: float) -> Iterator[tuple[str, float]]:
    @rt.remote
    def noop(*args):
        return 0

    rt.get([noop.remote() for _ in range(50)])  # warm the workers
    count = int(1000 * scale)
    yield "tasks_sync_per_s", rate(lambda: [rt.get(noop.remote()) for _ in range(count)], count)
    count = int(10000 * scale)
    yield "tasks_async_per_s", rate(lambda: rt.get([noop.remote() for _ in range(count)]), count)


def _generator_figures(rt: Any, scale: float) -> Iterator[tuple[str, float]]:
    """Items per second a streaming generator task delivers, each fetched as it arrives."""
    @rt.remote(num_returns="streaming")
    def numbers(n):
        for i in range(n):
            yield i

    [rt.get(ref) for ref in numbers.remote(100)]  # warm up
    count = int(10000 * scale)
    yield "generator_items_per_s", rate(
        lambda: [rt.get(ref) for ref in numbers.remote(count)], count)


def _actor_figures(rt: Any, scale: float) -> Iterator[tuple[str, float]]:
    @rt.remote
    class Actor:
        def m(self, *args):
            return 0

    actor = Actor.remote()
    rt.get(actor.m.remote())
    count = int(1000 * scale)
    yield "actor_calls_sync_per_s", rate(
        lambda: [rt.get(actor.m.remote()) for _ in range(count)], count)
    count = int(10000 * scale)
    yield "actor_calls_async_per_s", rate(
        lambda: rt.get([actor.m.remote() for _ in range(count)]), count)


def _object_figures(rt: Any, scale: float) -> Iterator[tuple[str, float | None]]:
    count = int(2000 * scale)
    small = b"x" * 1024
    yield "put_get_small_per_s", rate(lambda: [rt.get(rt.put(small)) for _ in range(count)], count)
    try:
        import numpy as np
    except ImportError:
        for key in NUMPY_KEYS:
            yield key, None
        return
    big = np.ones(_100_MIB // 8)
    start = time.perf_counter()
    ref = rt.put(big)
    yield "put_100MiB_GBps", _100_MIB / 1e9 / (time.perf_counter() - start)
    start = time.perf_counter()
    value = rt.get(ref)
    yield "get_100MiB_s", time.perf_counter() - start
    if value.shape != big.shape:
        raise RuntimeError(f"get of a 100 MiB array returned shape {value.shape}, not {big.shape}")
    yield "task_on_100MiB_ref_s", _task_on_ref(rt, ref)


def _task_on_ref(rt: Any, ref: Any) -> float:
    @rt.remote
    def total(x):
        return float(x[:10].sum())

    rt.get(total.remote(ref))
    start = time.perf_counter()
    rt.get([total.remote(ref) for _ in range(10)])
    return (time.perf_counter() - start) / 10


def _book_example_2_5(rt: Any) -> float:
    """Learning Ray, Example 2-5: eight retrievals sleeping i/10 s (ideal ~1.6 s on 2 CPUs)."""
    @rt.remote
    def retrieve(item):
        time.sleep(item / 10.0)
        return item

    start = time.perf_counter()
    rt.get([retrieve.remote(item) for item in range(8)])
    return time.perf_counter() - start


def _pool_noop(*args):
    return 0


def iter_pool_figures(*, processes: int = 2, scale: float = 1.0) -> Iterator[tuple[str, float]]:
    """The ``multiprocessing.Pool`` baseline of the task figures (``POOL_KEYS``)."""
    import multiprocessing

    start = time.perf_counter()
    pool = multiprocessing.Pool(processes)
    try:
        pool.apply(_pool_noop)
        yield "init_s", time.perf_counter() - start
        count = int(1000 * scale)
        yield "tasks_sync_per_s", rate(lambda: [pool.apply(_pool_noop) for _ in range(count)], count)
        count = int(10000 * scale)
        yield "tasks_async_per_s", rate(
            lambda: [r.get() for r in [pool.apply_async(_pool_noop) for _ in range(count)]], count)
    finally:
        pool.close()
        pool.join()


def format_value(value: float | None) -> str:
    """A figure as text: whole numbers from 100 up, else four significant digits."""
    if value is None:
        return "skipped"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    """``main(["raylite", "--quick"])``: run one runtime (or ``"mp"``), print one JSON object.

    This is the child process bench/core.py starts for each runtime, in that runtime's venv.
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: _microbenchmark.py MODULE|mp [--quick] [--num-cpus N]")
    scale = 0.2 if "--quick" in argv else 1.0
    num_cpus = int(argv[argv.index("--num-cpus") + 1]) if "--num-cpus" in argv else 2
    if argv[0] == "mp":
        figures = dict(iter_pool_figures(processes=num_cpus, scale=scale))
    else:
        figures = dict(iter_figures(argv[0], num_cpus=num_cpus, scale=scale))
    version = getattr(sys.modules.get(argv[0]), "__version__", None)
    print(json.dumps({"module": argv[0], "version": version, "scale": scale,
                      "num_cpus": num_cpus, "figures": figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
