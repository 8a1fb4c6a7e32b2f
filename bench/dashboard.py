"""What the dashboard costs a driver: time added to ``init`` and memory once it is opened.

    python bench/dashboard.py [--repeat 5]

Each sample is a fresh process: ``init(num_cpus=1)`` with and without the dashboard, the time
``init`` took, the driver's RSS after it, then (with the dashboard) the RSS after the first page
and API request (which is when FastAPI and uvicorn are imported). Medians are printed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, sys, time, urllib.request
import psutil
import raylite
with_dashboard = sys.argv[1] == "1"
start = time.perf_counter()
ctx = raylite.init(num_cpus=1, include_dashboard=with_dashboard)
init_s = time.perf_counter() - start
me = psutil.Process()
rss_init = me.memory_info().rss
rss_open = rss_init
if with_dashboard:
    for path in ("/", "/api/cluster", "/api/tasks"):
        urllib.request.urlopen(f"http://{ctx.dashboard_url}{path}", timeout=30).read()
    rss_open = me.memory_info().rss
raylite.shutdown()
print(json.dumps({"init_s": init_s, "rss_init": rss_init, "rss_open": rss_open}))
"""


def sample(with_dashboard: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, "1" if with_dashboard else "0"],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    on, off = [], []
    for _ in range(args.repeat):          # interleaved, so load changes hit both alike
        off.append(sample(False))
        on.append(sample(True))
    med = lambda runs, key: statistics.median(r[key] for r in runs)   # noqa: E731
    mib = 1 << 20
    print("| figure | without dashboard | with dashboard | added | target |")
    print("|---|---|---|---|---|")
    added_s = med(on, "init_s") - med(off, "init_s")
    print(f"| init (s) | {med(off, 'init_s'):.3f} | {med(on, 'init_s'):.3f} | {added_s:+.3f} | ≤ 0.2 |")
    added_init = (med(on, "rss_init") - med(off, "rss_init")) / mib
    print(f"| driver RSS after init (MiB) | {med(off, 'rss_init') / mib:.1f} | "
          f"{med(on, 'rss_init') / mib:.1f} | {added_init:+.1f} | ≤ 30 |")
    added_open = (med(on, "rss_open") - med(off, "rss_init")) / mib
    print(f"| driver RSS once the page is opened (MiB) | {med(off, 'rss_init') / mib:.1f} | "
          f"{med(on, 'rss_open') / mib:.1f} | {added_open:+.1f} | ≤ 30 |")


if __name__ == "__main__":
    main()
