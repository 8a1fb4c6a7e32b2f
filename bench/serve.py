"""Serve benchmark: a no-op deployment behind raylite's proxy vs bare FastAPI + uvicorn,
``@serve.batch`` vs unbatched calls, and a soak at twice capacity.

    .venv/bin/python bench/serve.py                 # 10 s per measurement, as in ANCHORS.md
    .venv/bin/python bench/serve.py --duration 5    # quicker
    .venv/bin/python bench/serve.py --soak          # also the 60 s soak (--soak 20: shorter)
    .venv/bin/python bench/serve.py --only soak --soak 20
    .venv/bin/python bench/serve.py --json out.json

Figures (the Serve rows of ANCHORS.md, and the issue's):

- requests/s of a no-op GET under ``wrk -t2 -c32`` (a Python asyncio client with the same
  32 keep-alive connections when wrk is not installed), for both servers;
- latency p50/p99 at half of the rate each server reached, from an open-loop client that sends
  on a fixed schedule (latency counts from the scheduled time, so a stall is not hidden);
- ``serve.start`` + first deployment answering, in seconds;
- batching: requests/s of a vectorised model (a 4096-wide numpy layer on one BLAS thread: one
  row costs nearly as much as 32) served one request per call vs through ``@serve.batch``;
- soak: one replica of a deployment with a known capacity (max_ongoing_requests=4, 10 ms per
  request, max_queued_requests=16) under an open-loop load of twice the rate it sustains: how
  many answers were 200, 503 (backpressure: expected) and other 5xx (none expected), and the RSS
  of the proxy's process (the driver) and of the replica at the start and the end. (The driver's
  RSS also holds the runtime's task timeline, one event per request up to its bound of 20,000
  events, about 4 MiB: it grows until then and stays flat after.)

Both servers run uvicorn the same way: uvloop, httptools, no access log, no proxy-headers
middleware, no server header. Everything runs on 127.0.0.1 only. The load client always runs in a separate process, since
raylite's proxy lives in this (the driver's) process. Benchmarks, not tests: no figure here
passes or fails; read them as a ratio to bare FastAPI measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
BARE_APP = """
import sys
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
import uvicorn
app = FastAPI()
@app.get("/noop", response_class=PlainTextResponse)
async def noop():
    return "ok"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop",
            http="httptools", access_log=False, proxy_headers=False, server_header=False)
"""  # the settings raylite's proxy runs uvicorn with (serve/_proxy.py): the same loop, parser, logging


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout_s} s")


# ----- load generators ------------------------------------------------------------------------
def run_wrk(url: str, connections: int, duration: float) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{int(duration)}s", "--latency",
                          url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {"rps": rps, "p50_ms": percentile("50"), "p99_ms": percentile("99"),
            "errors": int(errors.group(1)) if errors else 0,
            "timeouts": int(timeouts.group(1)) if timeouts else 0, "tool": "wrk"}


def client_command(url: str, connections: int, duration: float, rate: float | None) -> list:
    command = [sys.executable, os.path.abspath(__file__), "--client", url, "--connections",
               str(connections), "--duration", str(duration)]
    return command + (["--rate", str(rate)] if rate else [])


def run_client(url: str, connections: int, duration: float, rate: float | None) -> dict:
    """Run the asyncio client in a child process (closed loop, or open loop at ``rate``/s)."""
    out = subprocess.run(client_command(url, connections, duration, rate), capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


async def _client(url: str, connections: int, duration: float, rate: float | None) -> dict:
    match = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
    if not match:
        raise ValueError(f"the client only talks to 127.0.0.1, got {url}")
    port, path = int(match.group(1)), match.group(2)
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration
    schedule: asyncio.Queue | None = asyncio.Queue() if rate else None

    async def pacer() -> None:  # releases every request that is due, waking once a ms
        n = 0
        while True:
            now = loop.time()
            while start + n / rate <= min(now, end):
                schedule.put_nowait(start + n / rate)
                n += 1
            if now >= end:
                for _ in range(connections):
                    schedule.put_nowait(None)
                return
            await asyncio.sleep(0.001)

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        while True:
            if schedule is not None:
                due = await schedule.get()
                if due is None:
                    break
            else:
                due = loop.time()
                if due >= end:
                    break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            status = head[9:12].decode()
            statuses[status] = statuses.get(status, 0) + 1
            if status != "200":
                errors += 1
            else:
                latencies.append((loop.time() - due) * 1000.0)
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
        writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    if schedule is not None:
        tasks.append(asyncio.create_task(pacer()))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    return {"rps": len(latencies) / elapsed, "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99), "errors": errors, "timeouts": 0, "statuses": statuses,
            "sent_per_s": sum(statuses.values()) / elapsed,
            "tool": "asyncio client" + (f" at {rate:.0f}/s" if rate else "")}


def saturate(url: str, duration: float) -> dict:
    if shutil.which("wrk"):
        return run_wrk(url, 32, duration)
    return run_client(url, 32, duration, None)


def measure(url: str, duration: float) -> dict:
    full = saturate(url, duration)
    half = run_client(url, 16, duration, full["rps"] / 2)
    return {"saturated": full, "half_load": half}


# ----- the two servers ------------------------------------------------------------------------
def bench_bare(duration: float) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    try:
        wait_listening(port)
        return measure(f"http://{HOST}:{port}/noop", duration)
    finally:
        server.terminate()
        server.wait(10)


class _ServeSession:
    """raylite + Serve on a free port of 127.0.0.1, for one part of the benchmark."""

    def __enter__(self) -> _ServeSession:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import raylite
        from raylite import serve
        raylite.init(num_cpus=2)
        port = free_port()
        self.base = f"http://{HOST}:{port}"
        self.started = time.perf_counter()  # serve.start + the first deployment count from here
        serve.start(http_options={"host": HOST, "port": port})
        return self

    def __exit__(self, *exc) -> None:
        import raylite
        from raylite import serve
        serve.shutdown()
        raylite.shutdown()


def bench_raylite(duration: float) -> dict:
    import requests

    from raylite import serve

    with _ServeSession() as session:
        @serve.deployment
        class Noop:
            async def __call__(self, request):
                return "ok"

        serve.run(Noop.bind(), route_prefix="/noop")
        url = f"{session.base}/noop"
        assert requests.get(url).text == "ok"
        ready_s = time.perf_counter() - session.started
        result = measure(url, duration)
    result["start_and_first_deployment_s"] = ready_s
    return result


# ----- batching -------------------------------------------------------------------------------
WIDTH = 4096  # a layer this wide reads 64 MB of weights per call: one row costs nearly as
BATCH = 32    # much as BATCH rows, which is what batching exploits


class VectorisedModel:
    """One dense layer, ``sum(x @ W)`` per row, on one BLAS thread (as a replica has one CPU)."""

    def __init__(self):
        import numpy as np
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(1)
        except ImportError:
            pass
        self.np = np
        self.weights = np.random.default_rng(0).standard_normal((WIDTH, WIDTH)).astype(
            np.float32)

    def predict(self, xs: list[float]) -> list[float]:
        np = self.np
        rows = np.repeat(np.asarray(xs, dtype=np.float32)[:, None], WIDTH, axis=1)
        return (rows @ self.weights).sum(axis=1).tolist()


def bench_batching(duration: float) -> dict:
    import requests

    from raylite import serve

    @serve.deployment
    class Unbatched(VectorisedModel):
        async def __call__(self, request):
            return self.predict([float(request.query_params.get("x", "1"))])[0]

    @serve.deployment
    class Batched(VectorisedModel):
        @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=0.005)
        async def predict_batch(self, xs):
            return self.predict(xs)

        async def __call__(self, request):
            return await self.predict_batch(float(request.query_params.get("x", "1")))

    results = {}
    with _ServeSession() as session:
        for deployment in (Unbatched, Batched):
            serve.run(deployment.bind(), name="model", route_prefix="/model")
            url = f"{session.base}/model?x=1"
            assert requests.get(url).status_code == 200
            results[deployment.name] = saturate(url, duration)
    results["ratio"] = results["Batched"]["rps"] / results["Unbatched"]["rps"]
    return results


# ----- soak -----------------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def bench_soak(duration: float) -> dict:
    """Open-loop load at twice the capacity of one replica, for ``duration`` seconds."""
    import requests

    from raylite import serve

    @serve.deployment(max_ongoing_requests=4, max_queued_requests=16)
    class Limited:
        async def __call__(self, request):
            import asyncio
            await asyncio.sleep(0.01)  # 10 ms of "work": 4 at a time, at most ~400/s
            return "ok"

    with _ServeSession() as session:
        serve.run(Limited.bind(), route_prefix="/limited")
        url = f"{session.base}/limited"
        assert requests.get(url).text == "ok"
        (replica,) = serve.status().deployments["Limited"]["replicas"]
        pids = {"proxy (driver)": os.getpid(), "replica": replica["pid"]}
        # capacity: a closed loop of max_ongoing + max_queued connections keeps the replica
        # busy without ever overflowing the queue (no 503)
        capacity = run_client(url, 4 + 16, 5.0, None)["rps"]
        start = {name: rss_mib(pid) for name, pid in pids.items()}
        samples = []
        client = subprocess.Popen(client_command(url, 64, duration, 2 * capacity),
                                  stdout=subprocess.PIPE, text=True)
        while client.poll() is None:
            samples.append({name: rss_mib(pid) for name, pid in pids.items()})
            time.sleep(min(5.0, duration / 6))
        load = json.loads(client.stdout.read().strip().splitlines()[-1])
        end = {name: rss_mib(pid) for name, pid in pids.items()}
    statuses = load["statuses"]
    other_5xx = sum(n for code, n in statuses.items() if code.startswith("5") and code != "503")
    return {"duration_s": duration, "capacity_rps": capacity, "offered_rps": 2 * capacity,
            "sent_rps": load["sent_per_s"], "ok_rps": load["rps"], "statuses": statuses,
            "count_200": statuses.get("200", 0), "count_503": statuses.get("503", 0),
            "count_other_5xx": other_5xx, "p99_ok_ms": load["p99_ms"], "rss_start_mib": start,
            "rss_end_mib": end,
            "rss_max_mib": {name: max(s[name] for s in samples) if samples else end[name]
                            for name in pids}}


# ----- report ---------------------------------------------------------------------------------
def report_noop(bare: dict, lite: dict, duration: float) -> None:
    rows = [("no-op requests/s", "saturated", "rps", "{:,.0f}"),
            ("p50 latency (ms)", "saturated", "p50_ms", "{:.1f}"),
            ("p99 latency (ms)", "saturated", "p99_ms", "{:.1f}"),
            ("p50 latency at half load (ms)", "half_load", "p50_ms", "{:.1f}"),
            ("p99 latency at half load (ms)", "half_load", "p99_ms", "{:.1f}"),
            ("errors (non-2xx) / timeouts", "saturated", None, None)]
    print(f"load: {bare['saturated']['tool']} (32 connections, {duration:.0f} s); "
          f"half load: {lite['half_load']['tool']}")
    print(f"{'figure':<34}{'bare FastAPI':>16}{'raylite.serve':>16}")
    for label, phase, key, fmt in rows:
        if key is None:
            cells = [f"{r[phase]['errors']} / {r[phase]['timeouts']}" for r in (bare, lite)]
        else:
            cells = [fmt.format(r[phase][key]) for r in (bare, lite)]
        print(f"{label:<34}{cells[0]:>16}{cells[1]:>16}")
    ratio = lite["saturated"]["rps"] / bare["saturated"]["rps"]
    print(f"{'raylite / bare requests/s':<34}{'':>16}{ratio:>16.0%}")
    print(f"{'serve.start + first deployment (s)':<34}{'—':>16}"
          f"{lite['start_and_first_deployment_s']:>16.2f}")


def report_batching(batching: dict, duration: float) -> None:
    print(f"\nbatching: a {WIDTH}-wide layer, {batching['Batched']['tool']} (32 connections, "
          f"{duration:.0f} s)")
    for name in ("Unbatched", "Batched"):
        figures = batching[name]
        print(f"  {name:<34}{figures['rps']:>10,.0f} requests/s   p99 {figures['p99_ms']:.1f} ms"
              f"   errors {figures['errors']}")
    print(f"  {'@serve.batch / unbatched':<34}{batching['ratio']:>10.1f}x")


def report_soak(soak: dict) -> None:
    print(f"\nsoak: {soak['duration_s']:.0f} s open-loop at {soak['offered_rps']:.0f} requests/s "
          f"(twice the {soak['capacity_rps']:.0f}/s one replica sustains), 64 connections")
    print(f"  sent {soak['sent_rps']:.0f}/s; 200: {soak['count_200']:,} ({soak['ok_rps']:.0f}/s, "
          f"p99 {soak['p99_ok_ms']:.0f} ms)   503: {soak['count_503']:,}   other 5xx: "
          f"{soak['count_other_5xx']}   all statuses: {soak['statuses']}")
    for name in soak["rss_start_mib"]:
        print(f"  RSS {name:<16} start {soak['rss_start_mib'][name]:7.1f} MiB   max "
              f"{soak['rss_max_mib'][name]:7.1f} MiB   end {soak['rss_end_mib'][name]:7.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--soak", type=float, nargs="?", const=60.0, default=None,
                        help="also run the soak, for this many seconds (default 60)")
    parser.add_argument("--only", choices=("noop", "batching", "soak"),
                        help="run only this part")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(_client(args.client, args.connections, args.duration,
                                             args.rate))))
        return
    figures: dict = {}
    if args.only in (None, "noop"):
        figures["bare_fastapi"] = bench_bare(args.duration)
        figures["raylite_serve"] = bench_raylite(args.duration)
        report_noop(figures["bare_fastapi"], figures["raylite_serve"], args.duration)
    if args.only in (None, "batching"):
        figures["batching"] = bench_batching(args.duration)
        report_batching(figures["batching"], args.duration)
    if args.only == "soak" or args.soak is not None:
        figures["soak"] = bench_soak(args.soak or 60.0)
        report_soak(figures["soak"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
