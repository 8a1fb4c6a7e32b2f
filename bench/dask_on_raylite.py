"""Dask collections on raylite (``raylite.util.dask.ray_dask_get``) against Dask's own threaded
and multiprocessing schedulers, the same graphs in the same run.

    python bench/dask_on_raylite.py [--rows 4000000] [--partitions 16] [--side 4000]
                                    [--chunk 1000] [--workers 2] [--repeat 3]

Workloads: a dask.dataframe groupby-aggregate (mean, sum and count of a float column by an
integer key of 1,000 groups) and a dask.array reduction (sum of squares of a random square
array, then its column means). Each scheduler gets ``--workers`` workers (raylite:
``init(num_cpus=workers)``); the best of ``--repeat`` runs is kept. Machines are noisy: compare
only figures from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# bench/dask.py sits beside this file: keep the folder off sys.path so `import dask` finds Dask
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _best(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--side", type=int, default=4000, help="the array is side x side float64")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import dask
    import dask.array as da
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    import raylite
    from raylite.util.dask import ray_dask_get

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"key": rng.integers(0, 1000, args.rows),
                          "value": rng.random(args.rows)})
    ddf = dd.from_pandas(frame, npartitions=args.partitions)
    array = da.random.default_rng(0).random((args.side, args.side),
                                            chunks=(args.chunk, args.chunk))

    def groupby(**options):
        return ddf.groupby("key").value.agg(["mean", "sum", "count"]).compute(**options)

    def reduction(**options):
        return dask.compute((array ** 2).sum(), array.mean(axis=0), **options)

    raylite.init(num_cpus=args.workers, include_dashboard=False)
    schedulers = {
        "raylite (ray_dask_get)": {"scheduler": ray_dask_get},
        "dask threads": {"scheduler": "threads", "num_workers": args.workers},
        "dask processes": {"scheduler": "processes", "num_workers": args.workers},
    }
    expected = groupby(scheduler="threads")
    for options in schedulers.values():  # the same answer everywhere, and everything warm
        got = groupby(**options)
        assert np.allclose(got.sort_index().to_numpy(), expected.sort_index().to_numpy())
        reduction(**options)
    print(f"groupby: {args.rows:,} rows in {args.partitions} partitions; array: "
          f"{args.side}x{args.side} float64 in {args.chunk}x{args.chunk} chunks; "
          f"{args.workers} workers; best of {args.repeat}")
    print(f"{'scheduler':<24} {'groupby-agg s':>14} {'array reduction s':>18}")
    figures = {}
    for name, options in schedulers.items():
        figures[name] = (_best(lambda: groupby(**options), args.repeat),
                         _best(lambda: reduction(**options), args.repeat))
        print(f"{name:<24} {figures[name][0]:>14.3f} {figures[name][1]:>18.3f}")
    mine = figures["raylite (ray_dask_get)"]
    for name in ("dask threads", "dask processes"):
        peer = figures[name]
        print(f"raylite time / {name} time: groupby {mine[0] / peer[0]:.2f}, "
              f"array {mine[1] / peer[1]:.2f}")
    raylite.shutdown()


if __name__ == "__main__":
    main()
