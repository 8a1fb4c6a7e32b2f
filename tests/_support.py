"""Helpers the test modules share: a free loopback port, and waiting on a condition (never a
fixed sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any, Callable

import pytest

import raylite


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, chosen below the kernel's range of
    ephemeral ports: a port the kernel hands out (bind to 0) may be taken by some process's
    outgoing connection before the test's server binds it, one below that range cannot."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # nothing free below the range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_s3(*buckets: str):
    """A moto S3 server on 127.0.0.1 with ``buckets`` created, its address and test credentials
    in the environment (as AWS tools and pyarrow read them, so worker processes started inside
    inherit them); yields an S3FileSystem on it. The environment is restored afterwards."""
    pytest.importorskip("moto")
    pafs = pytest.importorskip("pyarrow.fs")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: server.poll() is not None or urllib.request.urlopen(
            f"{endpoint}/moto-api/", timeout=1), "the moto S3 server to answer", timeout_s=30,
            ignore=(OSError,))
        if server.poll() is not None:
            pytest.fail("the moto S3 server exited at start")
        saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
        try:
            admin = pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True)
            for bucket in buckets:
                admin.create_dir(bucket)
            yield admin
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def gcs_emulator(*buckets: str):
    """A Google Cloud Storage emulator (gcp-storage-emulator, in memory) on 127.0.0.1 with
    ``buckets`` created, its address in ``CLOUD_STORAGE_EMULATOR_ENDPOINT`` (which pyarrow's GCS
    client reads, so worker processes started inside inherit it); yields an anonymous
    GcsFileSystem on it. It checks no credentials: tests use ``gs://anonymous@bucket/...``."""
    pytest.importorskip("gcp_storage_emulator")
    pafs = pytest.importorskip("pyarrow.fs")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gcp_storage_emulator", "start", "--host",
                               "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: server.poll() is not None or urllib.request.urlopen(
            f"{endpoint}/storage/v1/b", timeout=1), "the GCS emulator to answer", timeout_s=30,
            ignore=(OSError,))
        if server.poll() is not None:
            pytest.fail("the GCS emulator exited at start")
        saved = os.environ.get("CLOUD_STORAGE_EMULATOR_ENDPOINT")
        os.environ["CLOUD_STORAGE_EMULATOR_ENDPOINT"] = endpoint
        try:
            admin = pafs.GcsFileSystem(anonymous=True, scheme="http", project_id="test",
                                       endpoint_override=f"127.0.0.1:{port}")
            for bucket in buckets:
                admin.create_dir(bucket)  # pyarrow's GCS client makes a missing bucket
            yield admin
        finally:
            if saved is None:
                os.environ.pop("CLOUD_STORAGE_EMULATOR_ENDPOINT", None)
            else:
                os.environ["CLOUD_STORAGE_EMULATOR_ENDPOINT"] = saved
    finally:
        server.kill()
        server.wait()


def poll(condition: Callable[[], Any], what: str, timeout_s: float = 20.0,
         ignore: tuple[type[BaseException], ...] = (), interval_s: float = 0.01) -> Any:
    """``condition()``'s first truthy value; fails the test after ``timeout_s``, naming ``what``.

    Exceptions of the ``ignore`` types count as "not yet" (a server still starting, a key not
    there yet); the last one is shown if time runs out.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except ignore as exc:
            value, last_error = None, exc
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else ""))



@raylite.remote(num_cpus=0)
class Gate:
    """A cross-process event: deployments and tasks ``wait()`` on it, the test ``open()``s it,
    and ``waiting()`` counts who waits."""

    def __init__(self):
        self.event = asyncio.Event()
        self.waiters = 0

    async def wait(self):
        self.waiters += 1
        await self.event.wait()
        return True

    async def open(self):
        self.event.set()

    async def waiting(self):
        return self.waiters


@raylite.remote
class Counter:
    """A shared count, for counting what ran where (constructions, calls)."""

    def __init__(self):
        self.count = 0

    def add(self, n):
        self.count += n
        return self.count

    def value(self):
        return self.count
