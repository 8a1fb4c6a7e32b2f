"""raylite on Dask vs raw Dask distributed, the same workloads in the same run.

    python bench/dask.py [--tasks 10000] [--sync 200] [--calls 2000] [--repeat 2] [--mib 100]
                         [--address dask://HOST:PORT]

Without --address it starts a LocalCluster of 2 single-thread worker processes (the setup of
`../shared/bench/dask_bench.py`, whose figures ANCHORS.md quotes). Each figure is measured for raw
Dask and for raylite back to back, ``--repeat`` times, and the best of each is kept; the table
prints both and raylite's ratio (the target: >= 0.8 for tasks, >= 0.5 for objects). Actor calls
are direct calls on both sides (Dask's actor RPC); raylite's also keep each caller's order.
Machines are noisy: compare only figures from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# this file is named dask.py: keep its folder off sys.path so `import dask` finds the package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def noop(*args):
    return 0


class Counter:
    def __init__(self):
        self.n = 0

    def add(self):
        self.n += 1
        return self.n


def _best(measure, repeat: int) -> float:
    return max(measure() for _ in range(repeat))


def _rate(n: int, start: float) -> float:
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the async figures")
    parser.add_argument("--sync", type=int, default=200, help="sync round trips per figure")
    parser.add_argument("--calls", type=int, default=2000, help="actor calls in the async figure")
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (best is kept)")
    parser.add_argument("--mib", type=int, default=100, help="size of the put/get array (MiB)")
    parser.add_argument("--address", default=None, help="an existing cluster instead of a local one")
    args = parser.parse_args()

    import numpy as np
    from distributed import Client, LocalCluster, wait

    import raylite

    cluster = None
    start = time.perf_counter()
    if args.address:
        address = args.address
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        address = cluster.scheduler_address
    cluster_s = time.perf_counter() - start
    client = Client(address.replace("dask://", "tcp://"))  # default client: Dask actors need one
    start = time.perf_counter()
    raylite.init(address=address)
    init_s = time.perf_counter() - start
    remote_noop = raylite.remote(noop)
    RemoteCounter = raylite.remote(Counter)

    client.gather([client.submit(noop, i, pure=False) for i in range(50)])  # warm up both
    raylite.get([remote_noop.remote(i) for i in range(50)])
    rows: list[tuple[str, float, float, str]] = []

    def raw_sync():
        t = time.perf_counter()
        for i in range(args.sync):
            client.submit(noop, i, pure=False).result()
        return _rate(args.sync, t)

    def raylite_sync():
        t = time.perf_counter()
        for i in range(args.sync):
            raylite.get(remote_noop.remote(i))
        return _rate(args.sync, t)

    rows.append(("no-op task, sync round trip", _best(raw_sync, args.repeat),
                 _best(raylite_sync, args.repeat), "/s"))
    print("measured:", rows[-1], flush=True)

    def raw_map():
        t = time.perf_counter()
        client.gather(client.map(noop, range(args.tasks), pure=False))
        return _rate(args.tasks, t)

    def raw_submit():
        t = time.perf_counter()
        client.gather([client.submit(noop, i, pure=False) for i in range(args.tasks)])
        return _rate(args.tasks, t)

    def raylite_async():
        t = time.perf_counter()
        raylite.get([remote_noop.remote(i) for i in range(args.tasks)])
        return _rate(args.tasks, t)

    raylite_tasks = _best(raylite_async, args.repeat)
    rows.append((f"{args.tasks} no-op tasks, submitted then gathered (vs client.map)",
                 _best(raw_map, args.repeat), raylite_tasks, "/s"))
    rows.append((f"{args.tasks} no-op tasks, submitted then gathered (vs client.submit)",
                 _best(raw_submit, args.repeat), raylite_tasks, "/s"))
    print("measured:", rows[-2:], flush=True)

    raw_actor = client.submit(Counter, actor=True).result()
    handle = RemoteCounter.remote()
    raylite.get(handle.add.remote())

    def raw_actor_sync():
        t = time.perf_counter()
        for _ in range(args.sync):
            raw_actor.add().result()
        return _rate(args.sync, t)

    def raylite_actor_sync():
        t = time.perf_counter()
        for _ in range(args.sync):
            raylite.get(handle.add.remote())
        return _rate(args.sync, t)

    rows.append(("actor call, sync round trip", _best(raw_actor_sync, args.repeat),
                 _best(raylite_actor_sync, args.repeat), "/s"))

    def raw_actor_async():
        t = time.perf_counter()
        futures = [raw_actor.add() for _ in range(args.calls)]
        [future.result() for future in futures]  # noqa: B018 - Dask's actor futures one by one
        return _rate(args.calls, t)

    def raylite_actor_async():
        t = time.perf_counter()
        raylite.get([handle.add.remote() for _ in range(args.calls)])
        return _rate(args.calls, t)

    rows.append((f"{args.calls} actor calls, submitted then gathered",
                 _best(raw_actor_async, args.repeat), _best(raylite_actor_async, args.repeat),
                 "/s"))
    print("measured:", rows[-2:], flush=True)

    big = np.ones(args.mib * 1024 * 1024 // 8)
    gigabytes = big.nbytes / 1e9
    timings: dict[str, list[float]] = {"raw_put": [], "raw_get": [], "put": [], "get": []}
    for _ in range(args.repeat):
        t = time.perf_counter()
        future = client.scatter(big)
        wait(future)
        timings["raw_put"].append(gigabytes / (time.perf_counter() - t))
        t = time.perf_counter()
        client.gather(future)
        timings["raw_get"].append(time.perf_counter() - t)
        del future
        t = time.perf_counter()
        ref = raylite.put(big)
        timings["put"].append(gigabytes / (time.perf_counter() - t))
        t = time.perf_counter()
        raylite.get(ref)
        timings["get"].append(time.perf_counter() - t)
        del ref
    rows.append((f"put / scatter of {args.mib} MiB", max(timings["raw_put"]), max(timings["put"]),
                 "GB/s"))
    rows.append((f"get / gather of {args.mib} MiB", min(timings["raw_get"]), min(timings["get"]),
                 "s (lower is better)"))

    raylite.shutdown()
    client.close()
    if cluster is not None:
        cluster.close()
    _print(rows, cluster_s, init_s, args)


def _print(rows, cluster_s: float, init_s: float, args) -> None:
    print(f"# raylite on Dask vs raw Dask: cluster start {cluster_s:.2f} s, raylite.init "
          f"{init_s:.2f} s, best of {args.repeat}")
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'raw Dask':>10}  {'raylite':>10}  {'ratio':>6}  unit")
    for name, raw, ours, unit in rows:
        ratio = raw / ours if unit.startswith("s") else ours / raw  # >1: raylite better
        print(f"{name:<{width}}  {raw:>10.4g}  {ours:>10.4g}  {ratio:>6.2f}  {unit}")
    print("ratio: raylite relative to raw Dask (1.00 = same; above 1 = raylite faster)")


if __name__ == "__main__":
    main()
