"""Serve benchmark: a no-op deployment behind raylite's proxy vs bare FastAPI + uvicorn.

    .venv/bin/python bench/serve.py                 # 10 s per measurement, as in ANCHORS.md
    .venv/bin/python bench/serve.py --duration 5    # quicker
    .venv/bin/python bench/serve.py --json out.json

Figures (the Serve rows of ANCHORS.md):

- requests/s of a no-op GET under ``wrk -t2 -c32`` (a Python asyncio client with the same
  32 keep-alive connections when wrk is not installed), for both servers;
- latency p50/p99 at half of the rate each server reached, from an open-loop client that sends
  on a fixed schedule (latency counts from the scheduled time, so a stall is not hidden);
- ``serve.start`` + first deployment answering, in seconds.

Everything runs on 127.0.0.1 only. The load client always runs in a separate process, since
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
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


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


def run_client(url: str, connections: int, duration: float, rate: float | None) -> dict:
    """Run the asyncio client in a child process (closed loop, or open loop at ``rate``/s)."""
    command = [sys.executable, os.path.abspath(__file__), "--client", url, "--connections",
               str(connections), "--duration", str(duration)]
    if rate:
        command += ["--rate", str(rate)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


async def _client(url: str, connections: int, duration: float, rate: float | None) -> dict:
    match = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
    if not match:
        raise ValueError(f"the client only talks to 127.0.0.1, got {url}")
    port, path = int(match.group(1)), match.group(2)
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
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
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            latencies.append((loop.time() - due) * 1000.0)
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
            "p99_ms": percentile(0.99), "errors": errors, "timeouts": 0,
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


def bench_raylite(duration: float) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import requests

    import raylite
    from raylite import serve

    raylite.init(num_cpus=2)
    port = free_port()
    started = time.perf_counter()
    serve.start(http_options={"host": HOST, "port": port})

    @serve.deployment
    class Noop:
        async def __call__(self, request):
            return "ok"

    serve.run(Noop.bind(), route_prefix="/noop")
    url = f"http://{HOST}:{port}/noop"
    assert requests.get(url).text == "ok"
    ready_s = time.perf_counter() - started
    try:
        result = measure(url, duration)
    finally:
        serve.shutdown()
        raylite.shutdown()
    result["start_and_first_deployment_s"] = ready_s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(_client(args.client, args.connections, args.duration,
                                             args.rate))))
        return
    bare = bench_bare(args.duration)
    lite = bench_raylite(args.duration)
    rows = [("no-op requests/s", "saturated", "rps", "{:,.0f}"),
            ("p50 latency (ms)", "saturated", "p50_ms", "{:.1f}"),
            ("p99 latency (ms)", "saturated", "p99_ms", "{:.1f}"),
            ("p50 latency at half load (ms)", "half_load", "p50_ms", "{:.1f}"),
            ("p99 latency at half load (ms)", "half_load", "p99_ms", "{:.1f}"),
            ("errors (non-2xx) / timeouts", "saturated", None, None)]
    print(f"load: {bare['saturated']['tool']} (32 connections, {args.duration:.0f} s); "
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bare_fastapi": bare, "raylite_serve": lite}, f, indent=2)


if __name__ == "__main__":
    main()
