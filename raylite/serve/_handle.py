"""Handles: calling a deployment from Python, in the driver or inside another deployment.

    handle.remote(x) ─▶ ReplicaSet (this process's, fetched from the controller) ─▶ least loaded
                        replica.handle_call.remote("__call__", x) ─▶ DeploymentResponse
                                                                      (await it / .result())

Three flavours, as in Ray Serve:

- ``DeploymentHandle`` (2.x; what ``serve.run`` returns and what bound deployments receive):
  ``.remote()`` gives a ``DeploymentResponse`` to ``await`` or to ``.result()``; passing one as
  an argument to another handle call hands over its value without a round trip to the caller.
- ``RayServeSyncHandle`` (1.x ``Deployment.get_handle()``): ``.remote()`` gives an ObjectRef
  for ``ray.get``.
- ``RayServeHandle`` (1.x ``get_handle(sync=False)``): ``await handle.remote()`` gives an
  ObjectRef to ``await``.

``handle.options(stream=True).remote(...)`` of a generator method gives a
``DeploymentResponseGenerator``: ``for``/``async for`` over the items as the replica yields them.

``handle.method_name.remote(...)`` (or ``handle.options(method_name=...)``) calls another method.
Each process caches the replica list of a deployment for ``REFRESH_S`` seconds; the driver's
serve API drops the cache whenever it changes deployments.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import raylite
from raylite.serve import _streaming
from raylite.serve._common import CONTROLLER_NAME, SERVE_NAMESPACE
from raylite.serve._router import ReplicaSet, on_ready, ref_future

REFRESH_S = 2.0

_cache_lock = threading.Lock()
_replica_sets: dict[str, tuple[ReplicaSet, float]] = {}
_controller_handle: list = []


def controller() -> Any:
    """The controller actor's handle (cached in this process)."""
    if not _controller_handle:
        try:
            _controller_handle.append(raylite.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE))
        except ValueError:
            raise RuntimeError("Serve is not running: call serve.start() or serve.run(...) "
                               "first") from None
    return _controller_handle[0]


def invalidate(name: str | None = None) -> None:
    """Forget cached replica lists (all of them, or one deployment's)."""
    with _cache_lock:
        if name is None:
            _replica_sets.clear()
            _controller_handle.clear()
        else:
            _replica_sets.pop(name, None)


def _replica_set(name: str, refresh: bool = False) -> ReplicaSet:
    now = time.monotonic()
    with _cache_lock:
        cached = _replica_sets.get(name)
    if cached is not None and not refresh and now - cached[1] < REFRESH_S:
        return cached[0]
    version, target = raylite.get(controller().get_replicas.remote(name))
    with _cache_lock:
        current = _replica_sets.get(name)
        if current is None:
            replica_set = ReplicaSet(name, target.replicas, target.max_ongoing_requests,
                                     target.max_queued_requests, version)
        else:
            replica_set = current[0]
            replica_set.update(target.replicas, target.max_ongoing_requests,
                               target.max_queued_requests, version)
        _replica_sets[name] = (replica_set, now)
    return replica_set


def _unwrap(value: Any) -> Any:
    return value._ref if isinstance(value, DeploymentResponse) else value


def _choose(name: str, refresh: bool) -> tuple[ReplicaSet, str | None, Any]:
    replica_set = _replica_set(name, refresh=refresh)
    chosen = replica_set.choose(enforce_limit=False)
    with replica_set.lock:
        actor = replica_set.handles.get(chosen)
    if chosen is not None and actor is None:  # removed meanwhile
        replica_set.release(chosen)
    return replica_set, chosen, actor


def submit(name: str, method: str, args: tuple, kwargs: dict, on_done=None,
           entry: str = "handle_call") -> Any:
    """Send one call to the least loaded replica; returns its ObjectRef (and, for
    ``entry="handle_call_stream"``, the replica's actor handle too)."""
    replica_set, chosen, actor = _choose(name, refresh=False)
    if actor is None:
        replica_set, chosen, actor = _choose(name, refresh=True)
        if actor is None:
            raise RuntimeError(f"deployment {name!r} has no running replicas")
    args = tuple(_unwrap(a) for a in args)
    kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
    ref = getattr(actor, entry).remote(method, *args, **kwargs)

    def done(ok: bool, value: Any) -> None:
        replica_set.release(chosen)
        if not ok and isinstance(value, raylite.exceptions.ActorDiedError):
            replica_set.drop(chosen)   # a retry goes elsewhere; the controller replaces it
            try:
                controller().replica_failed.remote(name, chosen, str(value))
            except Exception:  # noqa: BLE001 - the controller is gone too
                invalidate(name)
        if on_done is not None:
            on_done(ok, value)

    on_ready(ref, done)
    return (ref, actor) if entry == "handle_call_stream" else ref


class DeploymentResponseGenerator:
    """The items of a streaming handle call (``handle.options(stream=True).remote(...)`` of a
    generator method), as they are produced: ``for item in gen`` or ``async for item in gen``.

    Leaving the loop early stops the generator in the replica.
    """

    def __init__(self, deployment_name: str, method_name: str, args: tuple, kwargs: dict):
        self._ref, self._actor = submit(deployment_name, method_name, args, kwargs,
                                        entry="handle_call_stream")

    def __iter__(self):
        items, state, stream_id = raylite.get(self._ref)
        finished = stream_id is None
        try:
            yield from items
            while not finished:
                items, state = raylite.get(self._actor.stream_next.remote(stream_id))
                finished = state == _streaming.DONE
                yield from items
        finally:
            if not finished:  # the caller stopped early
                self._actor.stream_cancel.remote(stream_id)

    async def __aiter__(self):
        items, state, stream_id = await ref_future(self._ref)
        finished = stream_id is None
        try:
            for item in items:
                yield item
            while not finished:
                items, state = await ref_future(
                    self._actor.stream_next.remote(stream_id))
                finished = state == _streaming.DONE
                for item in items:
                    yield item
        finally:
            if not finished:
                self._actor.stream_cancel.remote(stream_id)

    def __repr__(self) -> str:
        return f"DeploymentResponseGenerator({self._ref!r})"


class DeploymentResponse:
    """The future result of a handle call: ``await response``, ``response.result()``, or, as
    with Ray 2.2's handles that returned ObjectRefs, ``raylite.get(response)`` (a list of
    them too, mixed with ObjectRefs)."""

    def __init__(self, ref: Any, future: concurrent.futures.Future):
        self._ref = ref
        self._future = future

    def result(self, *, timeout_s: float | None = None) -> Any:
        """Block until the call is done and return its value (or raise its exception)."""
        try:
            return self._future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the deployment call did not finish within {timeout_s} s") from None

    def __await__(self):
        return asyncio.wrap_future(self._future).__await__()

    def _raylite_get(self, timeout: float | None) -> Any:
        """What ``raylite.get`` returns for this response (see ``raylite.get``)."""
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise raylite.exceptions.GetTimeoutError(
                f"get() timed out after {timeout} s waiting for {self!r}") from None

    def _to_object_ref_sync(self) -> Any:
        return self._ref

    async def _to_object_ref(self) -> Any:
        return self._ref

    def __repr__(self) -> str:
        return f"DeploymentResponse({self._ref!r})"


class DeploymentHandle:
    """A handle to a deployment (Ray Serve 2.x).

    Example:
        >>> # inside a deployment that was bound with another one's Application:
        >>> # result = await self.model.remote(x)          # or self.model.predict.remote(x)
    """

    def __init__(self, deployment_name: str, app_name: str | None = None, *,
                 method_name: str = "__call__", stream: bool = False):
        self.deployment_name = deployment_name
        self.app_name = app_name
        self._method_name = method_name
        self._stream = stream

    def options(self, *, method_name: str | None = None, stream: bool | None = None,
                **_ignored: Any) -> DeploymentHandle:
        """A handle that calls another method, or (``stream=True``) a generator method whose
        items ``.remote()`` hands over as they come. Other Ray options are accepted and
        ignored."""
        return type(self)(self.deployment_name, self.app_name,
                          method_name=method_name or self._method_name,
                          stream=self._stream if stream is None else bool(stream))

    def __getattr__(self, name: str) -> DeploymentHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse:
        """Call the deployment on its least loaded replica. A call whose replica dies before
        answering is sent once more to another replica, as the HTTP proxy does (the response's
        ObjectRef, ``_to_object_ref``, stays the first attempt's)."""
        if self._stream:
            return DeploymentResponseGenerator(self.deployment_name, self._method_name, args,
                                               kwargs)
        future: concurrent.futures.Future = concurrent.futures.Future()
        name, method = self.deployment_name, self._method_name
        retried = False

        def settle(ok: bool, value: Any) -> None:
            nonlocal retried
            if not ok and not retried and isinstance(value, raylite.exceptions.ActorDiedError):
                retried = True   # its replica died before answering: once more, on another
                threading.Thread(target=resubmit, name="serve-handle-retry", daemon=True).start()
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def resubmit() -> None:   # off the runtime's futures thread: it may ask the controller
            try:
                submit(name, method, args, kwargs, settle)
            except BaseException as exc:  # noqa: BLE001 - the caller gets it
                future.set_exception(exc)

        ref = submit(name, method, args, kwargs, settle)
        return DeploymentResponse(ref, future)

    def __reduce__(self):
        return (_rebuild_handle, (type(self), self.deployment_name, self.app_name,
                                  self._method_name, self._stream))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(deployment={self.deployment_name!r}, " \
               f"method={self._method_name!r})"


def _rebuild_handle(cls: type, name: str, app_name: str | None, method_name: str,
                    stream: bool = False):
    return cls(name, app_name, method_name=method_name, stream=stream)


class RayServeSyncHandle(DeploymentHandle):
    """Ray Serve 1.x's handle: ``.remote()`` returns an ObjectRef for ``ray.get``."""

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return submit(self.deployment_name, self._method_name, args, kwargs)


class RayServeHandle(DeploymentHandle):
    """Ray Serve 1.x's async handle: ``ref = await handle.remote(x)``, then ``await ref``."""

    async def remote(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return submit(self.deployment_name, self._method_name, args, kwargs)
