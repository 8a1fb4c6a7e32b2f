"""Actors on Dask, the driver's (and worker's) side: creation, ordered calls, names, kill.

An actor is a Dask actor holding an :class:`~raylite.core._dask_remote.ActorHost`; each method
call is a Dask task (``call_actor``) on the actor's worker that depends on the actor and on the
caller's previous call if that one has not finished, so one caller's calls run in order::

    a.m.remote(x) ──▶ client.submit(call_actor, <actor>, "m", payload, n, <previous call>,
                                    workers=[the actor's worker], allow_other_workers=True)

Calls return their errors as values (``Failed``) so a failing call does not fail the next one.
Named actors are scheduler metadata ``["raylite", "named", namespace, name]``; ``kill`` interrupts
the running call on the actor's worker (``client.run``) and cancels the actor's key, which
cancels its pending calls.
"""

from __future__ import annotations

import time
from typing import Any

from raylite.core import _dask_remote as remote
from raylite.core._dask_refs import _new_key
from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef
from raylite.core._task import pack_args
from raylite.exceptions import ActorDiedError

_LIVE_STATES = ("memory", "processing", "waiting", "queued", "no-worker")  # Dask task states


class ActorsMixin:
    """The actor half of DaskBackend (it provides client, table, lock, _pack, _blob, ...)."""

    def create_actor(self, actor_class, args, kwargs, options, resources, placement,
                     actor_options) -> bytes:
        self.table.drain()
        class_name = actor_class._name
        ordered = actor_options.get("max_concurrency", 1) == 1 and not actor_options.get("is_async")
        key = _new_key(class_name) + ("" if ordered else "-concurrent")
        name = actor_options.get("name")
        namespace = actor_options.get("namespace") or self.current_namespace() or "default"
        if name:
            self._check_name_free(name, namespace)
        deps, payload, pins = self._pack(args, kwargs, f"{class_name}.__init__")
        spec = {"namespace": namespace, "max_concurrency": actor_options.get("max_concurrency", 1),
                "is_async": bool(actor_options.get("is_async"))}
        future = self.client.submit(
            remote.ActorHost, actor_class._function_id,
            self._blob(actor_class._function_id, actor_class._cls, actor_class._source),
            class_name, payload, spec, *deps, key=key, actor=True, pure=False,
            resources=self._resources(resources, f"{class_name}.__init__"))
        if pins:
            self.table.pin(future, pins)
        self.actors[key] = future
        self.owned_actors.add(key)
        if name:  # once the scheduler has the actor, so that lookups find it alive
            remote.wait_until_known(self.client, [key])
            self.client.set_metadata(["raylite", "named", namespace, name], {
                "key": key, "class_name": class_name, "meta": actor_options.get("meta") or {}})
        if actor_options.get("lifetime") == "detached":
            self.client.publish_dataset(future, name=f"raylite-actor-{key}")
        return key.encode()

    def submit_actor_call(self, actor_id, class_name, method, args, kwargs, num_returns,
                          options) -> list:
        self.table.drain()
        actor_key = actor_id.decode()
        name = options.get("name") or f"{class_name}.{method}"
        if actor_key in self.killed:
            return [self._error_ref(ActorDiedError(f"{name}: the actor was killed"), actor_key)
                    for _ in range(max(1, num_returns))]
        payload, _top, contained = pack_args(args, kwargs, name, None, new_id)
        actor = self._actor_future(actor_key)
        where = self._actor_address(actor_key, actor)
        with self.lock:  # one caller's calls run in the order they were made (no I/O inside)
            previous = None
            if not actor_key.endswith("-concurrent"):
                previous = self.last_call.get(actor_key)
                if previous is not None and previous.done():
                    previous = None
            future = self.client.submit(  # once the actor's worker is known, no dependency on it
                remote.call_actor, actor_key if where else actor, method, name, payload,
                num_returns, previous, key=_new_key(name), pure=False, workers=where,
                allow_other_workers=False)  # by key, the call must run where the actor lives
            if not actor_key.endswith("-concurrent"):
                self.last_call[actor_key] = future
        if contained:
            self.table.pin(future, [self.table.future(object_id) for object_id in contained])
        return self._returns(future, num_returns, actor_key)

    def _error_ref(self, error: BaseException, actor: str | None) -> ObjectRef:
        key = _new_key("error")
        future = self.client.scatter({key: remote.Failed(error)}, hash=False)[key]
        return self._ref(future, actor)

    def _actor_future(self, key: str) -> Any:
        future = self.actors.get(key)
        if future is None:  # a handle made elsewhere: refer to the key without owning it
            from distributed import Future
            future = self.actors[key] = Future(key, self.client)
        return future

    def _actor_address(self, key: str, future: Any) -> list | None:
        """The actor's worker, once known (calls go there; one who_has query per actor)."""
        address = self.actor_addresses.get(key)
        if address is not None:
            return [address]
        if key in self.owned_actors and not future.done():
            return None
        now = time.monotonic()
        if now - self.address_checked.get(key, 0.0) < 1.0:
            return None
        self.address_checked[key] = now
        try:
            holders = self.client.who_has([future]).get(key) or ()
        except Exception:  # noqa: BLE001
            holders = ()
        if holders:
            self.actor_addresses[key] = holders[0]
            return [holders[0]]
        return None

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        key = actor_id.decode()
        self.killed.add(key)
        self.last_call.pop(key, None)
        future = self._actor_future(key)
        address = self._actor_address(key, future)
        if address:
            try:
                self.client.run(remote.kill_actor_here, key, workers=address)
            except Exception:  # noqa: BLE001, S110
                pass
        self.client.cancel([future], force=True, reason="actor killed with raylite.kill")
        self.actors.pop(key, None)
        self._forget_names(key)

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

    def local_actor(self, key: str) -> Any:
        return None
