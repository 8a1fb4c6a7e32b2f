"""Actors on Dask, the driver's (and worker's) side: creation, calls, restarts, names, kill.

An actor is a Dask actor holding an :class:`~raylite.core.dask._host.ActorHost`, created by
``client.submit(ActorHost, ..., actor=True)``; its Dask key is the actor's id. Method calls are
direct calls through one :class:`~raylite.core.dask._calls.ActorChannel` per actor in each
process that calls it (one caller's calls run in the order it made them)::

    A.remote(...) ──client.submit(ActorHost, class, args, actor=True)──▶ a Dask actor
    a.m.remote(x) ──ActorChannel.submit──▶ actor_execute("direct_call") on the actor's worker

Restarts: the process that created an actor with ``max_restarts`` watches its key; when the
actor's worker dies (Dask marks the key erred), it asks Dask to run the key again
(``client.retry``), which builds a fresh instance on a live worker, up to ``max_restarts``
times; the count is scheduler metadata ``["raylite", "actor", key]`` so that every caller can
tell a restart from a death. Named actors are metadata ``["raylite", "named", namespace, name]``;
``kill`` interrupts the running call on the actor's worker (``client.run``) and cancels the
actor's key.
"""

from __future__ import annotations

from typing import Any

from raylite.core.dask import _remote as remote
from raylite.core.dask._calls import ActorChannel
from raylite.core.dask._pickling import pickle_arguments_by_value
from raylite.core.dask._host import ActorHost, kill_actor_here
from raylite.core.dask._refs import _new_key
from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef
from raylite.core._task import pack_args
from raylite.exceptions import ActorDiedError, TaskError

_LIVE_STATES = ("memory", "processing", "waiting", "queued", "no-worker")  # Dask task states
_WATCH_MS = 200  # how often an owner looks for its restartable actors' lost workers


class ActorsMixin:
    """The actor half of DaskBackend (it provides client, table, lock, _pack, _blob, ...)."""

    # ----- creating ---------------------------------------------------------------------------
    def create_actor(self, actor_class, args, kwargs, options, resources, placement,
                     actor_options) -> bytes:
        if actor_options.get("concurrency_groups"):
            raise ValueError(f"{actor_class._name}: concurrency_groups are not supported on the "
                             "Dask backend yet (they are on the local runtime); use "
                             "max_concurrency")
        self.table.drain()
        class_name = actor_class._name
        key = _new_key(class_name)
        name = actor_options.get("name")
        namespace = actor_options.get("namespace") or self.current_namespace() or "default"
        if name:
            self._check_name_free(name, namespace)
        deps, payload, pins = self._pack(args, kwargs, f"{class_name}.__init__")
        spec = {"namespace": namespace, "max_concurrency": actor_options.get("max_concurrency", 1),
                "is_async": bool(actor_options.get("is_async"))}
        future = self.client.submit(
            ActorHost, actor_class._function_id,
            self._blob(actor_class._function_id, actor_class._cls, actor_class._source),
            class_name, payload, spec, *deps, key=key, actor=True, pure=False,
            resources=self._resources(resources, f"{class_name}.__init__"))
        if pins:
            self.table.pin(future, pins)
        self.actors[key] = future
        self.owned_actors.add(key)
        if actor_options.get("max_restarts", 0):
            self._watch(key, actor_options)
        if name or actor_options.get("lifetime") == "detached":
            self.kept_actors.add(key)
        if name:  # once the scheduler has the actor, so that lookups find it alive
            remote.wait_until_known(self.client, [key])
            self.client.set_metadata(["raylite", "named", namespace, name], {
                "key": key, "class_name": class_name, "meta": actor_options.get("meta") or {}})
        if actor_options.get("lifetime") == "detached":
            self.client.publish_dataset(future, name=f"raylite-actor-{key}")
        return key.encode()

    # ----- calling ----------------------------------------------------------------------------
    def submit_actor_call(self, actor_id, class_name, method, args, kwargs, num_returns,
                          options) -> list:
        self.table.drain()
        actor_key = actor_id.decode()
        name = options.get("name") or f"{class_name}.{method}"
        pickle_arguments_by_value(args, kwargs)
        payload, top, contained = pack_args(args, kwargs, name, None, new_id)
        pins = None
        if top or contained:  # refs in the arguments: they must exist in Dask for the actor
            ids = list(dict.fromkeys([*top, *contained]))
            self.table.materialize(ids)
            pins = [self.table.future(object_id) for object_id in ids]
        channel = self._channel(actor_key, class_name)
        if actor_key in self.killed:
            channel.kill(ActorDiedError(f"{name}: the actor was killed"))
        results = channel.submit(method, name, payload, num_returns, pins,
                                 self.restartable.get(actor_key, {}).get("max_task_retries"))
        refs = []
        for result in results[:num_returns]:
            object_id = _new_key(name).encode()
            self.table.register_local(object_id, result, actor_key)
            refs.append(ObjectRef(object_id))
        if self.kind == "worker":
            remote.note_call(results, [ref._id for ref in refs])
        return refs

    def _channel(self, key: str, class_name: str) -> ActorChannel:
        channel = self.channels.get(key)
        if channel is None:
            with self.lock:
                channel = self.channels.get(key)
                if channel is None:
                    channel = self.channels[key] = ActorChannel(
                        self, key, class_name, self._actor_future(key))
        return channel

    def _actor_future(self, key: str) -> Any:
        future = self.actors.get(key)
        if future is None:  # a handle made elsewhere: its Future (the handle keeps it desired)
            future = self.actors[key] = self.table.future(key.encode())
        return future

    def is_killed(self, key: str) -> bool:
        return key in self.killed

    def release_actor(self, object_id: bytes) -> None:
        """This process dropped its last handle: let go of the actor (Dask ends it once no
        process holds it; calls already made still run). Named and detached actors stay."""
        key = object_id.decode(errors="replace")
        if key in self.kept_actors or key not in self.actors:
            return
        self.actors.pop(key, None)
        self.channels.pop(key, None)
        self.restartable.pop(key, None)

    # ----- restarts ---------------------------------------------------------------------------
    def _watch(self, key: str, actor_options: dict) -> None:
        """Restart this actor when its worker dies, up to max_restarts (-1: always)."""
        info = {"max_restarts": actor_options["max_restarts"], "restarts": 0, "dead": None,
                "max_task_retries": actor_options.get("max_task_retries", 0)}
        self.restartable[key] = info
        self.client.set_metadata(["raylite", "actor", key], info)
        if self.watcher is None:
            from tornado.ioloop import PeriodicCallback
            self.watcher = PeriodicCallback(self._restart_lost_actors, _WATCH_MS)
            self.client.loop.add_callback(self.watcher.start)

    async def _restart_lost_actors(self) -> None:  # on the client's event loop
        for key, info in list(self.restartable.items()):
            future = self.actors.get(key)
            if future is None or key in self.killed or info["dead"]:
                continue
            if future.status not in ("error", "lost") or \
                    isinstance(future._state.exception, TaskError):  # its constructor raised
                continue
            limit = info["max_restarts"]
            if limit != -1 and info["restarts"] >= limit:
                info["dead"] = "its worker died and max_restarts is used up"
            else:  # counted once Dask took it: callers meanwhile see restarts left
                await self.client.retry([future], asynchronous=True)
                info["restarts"] += 1
            await self.client.scheduler.set_metadata(keys=["raylite", "actor", key], value=info)

    # ----- kill and names -----------------------------------------------------------------------
    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        key = actor_id.decode()
        self.killed.add(key)
        info = self.restartable.pop(key, None)
        if info is not None:
            info["dead"] = "killed"
            self.client.set_metadata(["raylite", "actor", key], info)
        error = ActorDiedError(f"the actor {key} was killed with raylite.kill")
        channel = self._channel(key, key)
        channel.kill(error)
        future = self._actor_future(key)
        address = channel.address or self._holder(future)
        if address:
            try:
                self.client.run(kill_actor_here, key, workers=[address])
            except Exception:  # noqa: BLE001, S110
                pass
        self.client.cancel([future], force=True, reason="actor killed with raylite.kill")
        self.actors.pop(key, None)
        self._forget_names(key)

    def _holder(self, future: Any) -> str | None:
        try:
            holders = self.client.who_has([future]).get(future.key) or ()
        except Exception:  # noqa: BLE001
            holders = ()
        return holders[0] if holders else None

    def _named(self, name: str, namespace: str) -> dict | None:
        """The live actor registered under a name (names of dead actors are free again)."""
        entry = self.client.get_metadata(["raylite", "named", namespace, name], None)
        if not entry or entry.get("key") in self.killed:
            return None
        status = self.client.sync(self.client.scheduler.get_task_status, keys=[entry["key"]])
        if status.get(entry["key"]) not in _LIVE_STATES:  # its owner left, or its worker died
            return None
        return entry

    def _check_name_free(self, name: str, namespace: str) -> None:
        if self._named(name, namespace):
            raise ValueError(f"an actor named {name!r} already exists in namespace "
                             f"{namespace!r}; use get_actor({name!r}) or "
                             f".options(name={name!r}, get_if_exists=True)")

    def _forget_names(self, key: str) -> None:
        try:
            named = self.client.get_metadata(["raylite", "named"], {}) or {}
        except Exception:  # noqa: BLE001
            return
        for namespace, names in named.items():
            for name, entry in (names or {}).items():
                if entry and entry.get("key") == key:
                    self.client.set_metadata(["raylite", "named", namespace, name], None)
        if key in self.owned_actors:
            try:
                self.client.unpublish_dataset(f"raylite-actor-{key}")
            except Exception:  # noqa: BLE001, S110
                pass

    def get_actor(self, name: str, namespace: str | None):
        namespace = namespace or self.current_namespace() or "default"
        entry = self._named(name, namespace)
        if entry is None:
            names = self.client.get_metadata(["raylite", "named", namespace], {}) or {}
            live = sorted(n for n, e in names.items() if e and n != name)
            raise ValueError(f"Failed to look up actor with name {name!r} in namespace "
                             f"{namespace!r}: no live actor has that name (named actors there: "
                             f"{', '.join(live) or 'none'}). Create it with "
                             "Cls.options(name=...).remote() first.")
        return entry["key"].encode(), entry["class_name"], entry["meta"]
