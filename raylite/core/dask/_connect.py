"""Reaching a Dask scheduler: which address and scheme, which credentials, and a bounded handshake.

    "auto"                  the cluster ``raylite start --head`` recorded here
    "tls://HOST:PORT"       mutual TLS with this user's credentials (``_tls``)
    "dask://HOST:PORT"      TLS when this user has raylite credentials, else plain TCP (warned)
    "HOST:PORT", "HOST"     the same as dask:// (port 8786 by default)
    "tcp://HOST:PORT"       plain TCP, asked for explicitly (warned: no authentication)

Dask's own connect bounds the TCP connect but not its handshake: a port that accepts and then
says nothing (not a Dask scheduler) would hang ``Client()`` for ever. :func:`open_client` first
runs Dask's handshake itself under ``RAYLITE_CONNECT_TIMEOUT`` (default 10 s) on an event loop of
its own, which Ctrl-C ends at once, and only then builds the ``distributed.Client``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

DEFAULT_PORT = 8786
CONNECT_TIMEOUT_S = 10.0
_warned: set[str] = set()


def connect_timeout(timeout: float | None = None) -> float:
    """``timeout``, else RAYLITE_CONNECT_TIMEOUT, else 10 s."""
    if timeout is not None:
        return float(timeout)
    text = os.environ.get("RAYLITE_CONNECT_TIMEOUT")
    if not text:
        return CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"RAYLITE_CONNECT_TIMEOUT must be a positive number of seconds, "
                         f"got {text!r}")
    return value


def scheduler_address(address: str, default_scheme: str = "tcp") -> str:
    """'dask://h:p', 'tcp://h:p', 'tls://h:p', 'h:p' or 'h' -> the address Dask expects.

    ``dask://`` and addresses without a scheme get ``default_scheme``.
    """
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"address must be 'dask://HOST:PORT', 'tls://HOST:PORT', "
                         f"'tcp://HOST:PORT', 'HOST:PORT' or a distributed.Client, got {address!r}")
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme == "dask":
        scheme, rest = default_scheme, (rest if sep else text)
    if scheme not in ("tcp", "tls", "ucx", "inproc", "ws", "wss"):
        raise ValueError(f"unsupported address scheme {scheme!r} in {address!r}; use "
                         "'dask://HOST:PORT', 'tls://HOST:PORT' or 'tcp://HOST:PORT'")
    if scheme in ("tcp", "tls") and ":" not in rest.rsplit("]", 1)[-1]:
        rest = f"{rest}:{DEFAULT_PORT}"
    return f"{scheme}://{rest}"


def resolve(address: str, insecure: bool = False) -> tuple[str, Any]:
    """(the scheduler's Dask address, the ``Security`` to reach it with, or None).

    ``insecure``: dask:// and bare addresses mean plain TCP even where credentials exist.
    Raises ConnectionError when "auto" finds no cluster or a tls:// address finds no
    credentials, or finds them unreadable, or readable by others.
    """
    from raylite.core.dask import _tls as _dask_tls
    if isinstance(address, str) and address.strip() == "auto":
        from raylite.core.dask._state import recorded_address
        recorded = recorded_address()
        if recorded is None:
            raise ConnectionError("address 'auto' (RAYLITE_ADDRESS=auto) found no running "
                                  "cluster: start one with `raylite start --head`, or give its "
                                  "address")
        address = recorded
    if insecure or _scheme_given(address):
        target = scheduler_address(address, "tcp")
    else:  # dask:// or no scheme: TLS when this user holds credentials
        target = scheduler_address(address, "tls" if _credentials() else "tcp")
    if target.startswith("tls://"):
        credentials = _credentials()
        if credentials is None:
            raise ConnectionError(
                f"{target} is a TLS cluster, and this user has no raylite TLS credentials in "
                f"{_dask_tls.folder()}: `raylite start --head` creates them; for a cluster "
                "started on another machine, copy that machine's folder here (same user)")
        return target, credentials.security()
    if target.startswith("tcp://"):
        warn_plain_tcp(target)
    return target, None


def _credentials():
    from raylite.core.dask import _tls as _dask_tls
    try:
        return _dask_tls.load()
    except PermissionError as exc:
        raise ConnectionError(f"raylite's TLS credentials: {exc}") from None


def _scheme_given(address: str) -> bool:
    """Whether ``address`` names its scheme (dask:// names none: it means "a Dask cluster")."""
    scheme, sep, _ = str(address).strip().partition("://")
    return bool(sep) and scheme != "dask"


def warn_plain_tcp(target: str) -> None:
    """Once per address: plain TCP means anyone who reaches the port can run code there."""
    if target in _warned:
        return
    _warned.add(target)
    print(f"raylite: warning: {target} is plain TCP, without authentication: anyone who can "
          "reach that port runs code as the cluster's owner, and the replies are not "
          "authenticated. `raylite start --head` clusters use tls:// (mutual TLS) unless "
          "started with --insecure.", file=sys.stderr, flush=True)


def open_client(address: str, timeout: float | None = None,
                insecure: bool = False) -> tuple[Any, str]:
    """A ``distributed.Client`` to the scheduler at ``address`` and that scheduler's address.

    Every step is bounded by ``timeout`` (RAYLITE_CONNECT_TIMEOUT, 10 s); ConnectionError says
    what failed and how to start a cluster.
    """
    from distributed import Client
    timeout = connect_timeout(timeout)
    target, security = resolve(address, insecure)
    handshake(target, security, address, timeout)
    try:
        client = Client(target, timeout=timeout, set_as_default=False,
                        **({"security": security} if security is not None else {}))
    except Exception as exc:  # noqa: BLE001
        raise ConnectionError(unreachable(address, target, exc)) from None
    return client, target


def handshake(target: str, security: Any, address: Any, timeout: float) -> None:
    """Run Dask's connect and handshake with ``target``, within ``timeout`` seconds."""
    from distributed.comm import connect
    arguments = security.get_connection_args("client") if security is not None else {}

    async def attempt() -> None:
        comm = await asyncio.wait_for(connect(target, timeout=timeout, **arguments), timeout)
        await comm.close()

    try:
        _run(lambda: asyncio.wait_for(attempt(), timeout))
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise ConnectionError(unreachable(
            address, target, exc, f"no Dask handshake within {timeout:g} s (is it a Dask "
                                   "scheduler? RAYLITE_CONNECT_TIMEOUT sets this limit)")) from None
    except Exception as exc:  # noqa: BLE001 - refused, reset, TLS failure, garbage...
        raise ConnectionError(unreachable(address, target, exc)) from None


def _run(make_coroutine) -> None:
    """Run a coroutine to its end on an event loop of its own (Ctrl-C ends it at once); from
    inside a running loop (a notebook), on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make_coroutine())
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(make_coroutine())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
    thread = threading.Thread(target=run, name="raylite-dask-handshake", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def unreachable(address: Any, target: str, exc: BaseException, what: str | None = None) -> str:
    what = what or f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    hint = ""
    if target.startswith("tls://") and not str(address).startswith("tls://"):
        hint = (" If that cluster does not use TLS (a plain `dask scheduler`), connect to "
                f"tcp://{target.split('://', 1)[1]} instead.")
    return (f"could not connect to a Dask scheduler at {address!r} ({what}).{hint} Is a cluster "
            "running there? Start one on this machine with `raylite start --head` (it prints "
            "the address to use), or with `dask scheduler` and `dask worker`; then call "
            "raylite.init(address=\"dask://HOST:8786\") or export RAYLITE_ADDRESS=dask://HOST:8786.")
