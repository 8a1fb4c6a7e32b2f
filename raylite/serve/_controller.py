"""The controller: one named async actor that owns every deployment, its replicas and routes.

    serve API (driver) ──deploy_application / delete / status──▶ ServeController
                                                                    │ starts and stops
    proxy, handles ──get_routes / get_replicas──▶ (routes, replicas) ▼
                                                          ServeReplica actors

A deploy starts the new replicas (STARTING), waits for each one's ``ready()`` (RUNNING), then
swaps them into the routes and stops the old ones (STOPPING: finish requests in progress, then
``raylite.kill``). If the new replicas do not fit next to the old ones, the old ones stop first.
A replica whose constructor raises is UNHEALTHY; the deploy fails with that error and the old
replicas, if any, keep serving. Deploying the same ``version`` again only changes what can change
in place: ``user_config`` (through ``reconfigure``), the number of replicas and the route.

The controller only ever holds the deployment's definition as an ObjectRef (made by the driver
with ``raylite.put``): it never unpickles or runs user code itself.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from typing import Any

import raylite
from raylite.serve._common import (
    REPLICA_TRANSITIONS,
    SERVE_NAMESPACE,
    DeploymentConfig,
    DeploymentStatus,
    ReplicaState,
)
from raylite.serve._router import watcher

SLOW_START_WARNING_S = 30.0


class _Replica:
    """The controller's record of one replica actor and its lifecycle state."""

    def __init__(self, replica_id: str, actor: Any):
        self.replica_id = replica_id
        self.actor = actor
        self.state = ReplicaState.STARTING
        self.error = ""

    def transition(self, new_state: ReplicaState, error: str = "") -> None:
        if new_state not in REPLICA_TRANSITIONS[self.state]:
            raise AssertionError(f"replica {self.replica_id}: {self.state.value} -> "
                                 f"{new_state.value} is not a valid transition")
        self.state = new_state
        self.error = error or self.error


class _Deployment:
    """Everything the controller knows about one deployment."""

    def __init__(self, name: str, app_name: str | None, definition: list, config: DeploymentConfig):
        self.name = name
        self.app_name = app_name
        self.definition = definition  # [ObjectRef of (callable, init_args, init_kwargs)]
        self.config = config
        self.replicas: list[_Replica] = []
        self.status = DeploymentStatus.UPDATING
        self.message = ""

    def running(self) -> list[_Replica]:
        return [r for r in self.replicas if r.state is ReplicaState.RUNNING]


class ServeController:
    """Owns deployments and replicas; every method is safe to call concurrently."""

    def __init__(self):
        self._deployments: dict[str, _Deployment] = {}
        self._lock: asyncio.Lock | None = None
        self._version = 0  # bumped whenever routes or replica sets change
        self._ids = itertools.count(1)
        self._replica_class = None
        self._background: set = set()

    def _mutex(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # ----- changes --------------------------------------------------------------------------
    async def deploy_application(self, app_name: str | None, specs: list[dict],
                                 delete_others: bool = False) -> int:
        """Deploy ``specs`` in order (dependencies first); with ``delete_others``, delete the
        app's deployments that are not among them. Returns the new routing version."""
        async with self._mutex():
            keep = {spec["name"] for spec in specs}
            stale = [d for d in self._deployments.values()
                     if delete_others and d.app_name == app_name and d.name not in keep]
            for spec in specs:
                self._check_spec(app_name, spec, ignore=stale)
            for deployment in stale:  # going away: the new deployments may take their routes
                deployment.config = deployment.config.replace(route_prefix=None)
            for spec in specs:
                await self._deploy(app_name, spec)
            await self._delete([d.name for d in stale])
            return self._version

    async def delete_deployments(self, names: list[str]) -> int:
        async with self._mutex():
            await self._delete(names)
            return self._version

    async def delete_application(self, app_name: str) -> int:
        async with self._mutex():
            await self._delete([d.name for d in self._deployments.values()
                                if d.app_name == app_name])
            return self._version

    async def replica_failed(self, name: str, replica_id: str, reason: str) -> None:
        """A proxy or handle found a replica dead: take it out of the routes (no restart yet)."""
        deployment = self._deployments.get(name)
        for replica in deployment.replicas if deployment else []:
            if replica.replica_id == replica_id and replica.state is ReplicaState.RUNNING:
                replica.transition(ReplicaState.UNHEALTHY, reason)
                deployment.status = DeploymentStatus.UNHEALTHY
                deployment.message = f"replica {replica_id} died: {reason}"
                self._version += 1
                self._spawn(self._stop([replica], graceful=False, deployment=deployment))

    async def shutdown(self) -> None:
        async with self._mutex():
            await self._delete(list(self._deployments), graceful=False)

    # ----- reads ------------------------------------------------------------------------------
    def get_routes(self) -> tuple[int, dict]:
        """(version, {route_prefix: (name, [(replica_id, actor)], max_ongoing, max_queued)})."""
        routes = {}
        for d in self._deployments.values():
            if d.config.route_prefix is not None:
                routes[d.config.route_prefix] = self._replica_view(d)
        return self._version, routes

    def get_replicas(self, name: str) -> tuple[int, tuple]:
        deployment = self._deployments.get(name)
        if deployment is None:
            raise KeyError(f"there is no deployment named {name!r}; deployments: "
                           f"{sorted(self._deployments) or 'none'}")
        return self._version, self._replica_view(deployment)

    def get_deployment_info(self, name: str) -> dict | None:
        d = self._deployments.get(name)
        if d is None:
            return None
        return {"name": d.name, "app_name": d.app_name, "definition": d.definition,
                "config": d.config}

    def list_deployments(self) -> dict[str, dict]:
        return {name: self.get_deployment_info(name) for name in self._deployments}

    def status(self) -> dict:
        out = {}
        for d in self._deployments.values():
            states: dict[str, int] = {}
            for replica in d.replicas:
                states[replica.state.value] = states.get(replica.state.value, 0) + 1
            out[d.name] = {"name": d.name, "app_name": d.app_name, "status": d.status.value,
                           "message": d.message, "replica_states": states,
                           "route_prefix": d.config.route_prefix}
        return {"version": self._version, "deployments": out}

    @staticmethod
    def _replica_view(d: _Deployment) -> tuple:
        return (d.name, [(r.replica_id, r.actor) for r in d.running()],
                d.config.max_ongoing_requests, d.config.max_queued_requests)

    # ----- deploying --------------------------------------------------------------------------
    def _check_spec(self, app_name: str | None, spec: dict, ignore: list) -> None:
        name, config = spec["name"], spec["config"]
        existing = self._deployments.get(name)
        if existing is not None and existing.app_name != app_name:
            owner = "no application (.deploy())" if existing.app_name is None else \
                f"application {existing.app_name!r}"
            raise ValueError(f"a deployment named {name!r} already belongs to {owner}; give "
                             "this one another name with .options(name=...)")
        prefix = config.route_prefix
        for other in self._deployments.values():
            if prefix is not None and other.name != name and other not in ignore \
                    and other.config.route_prefix == prefix:
                raise ValueError(f"route_prefix {prefix!r} of deployment {name!r} is already "
                                 f"served by deployment {other.name!r}; pick another prefix or "
                                 f"delete {other.name!r} first")

    async def _deploy(self, app_name: str | None, spec: dict) -> None:
        name, config, definition = spec["name"], spec["config"], spec["definition"]
        current = self._deployments.get(name)
        if current is not None and self._same_code(current, config):
            await self._update_in_place(current, config)
            return
        deployment = _Deployment(name, app_name, definition, config)
        old = current.replicas if current is not None else []
        if old and not self._fits_alongside(config, len(old)):
            await self._stop(old, graceful=True, deployment=current)
            old = []
        new = [self._start_replica(deployment) for _ in range(config.num_replicas)]
        deployment.replicas = new
        try:
            await self._wait_ready(deployment, new)
        except BaseException:
            await self._stop(new, graceful=False, deployment=deployment)
            if current is None:  # keep the failed deployment visible in status()
                self._deployments[name] = deployment
            elif not current.running():  # its old replicas already made room for the new ones
                current.status, current.message = deployment.status, deployment.message
            self._version += 1
            raise
        self._deployments[name] = deployment
        deployment.status = DeploymentStatus.HEALTHY
        self._version += 1
        if old:  # drain the old replicas in the background: the new ones already serve
            self._spawn(self._stop(old, graceful=True, deployment=current))

    @staticmethod
    def _same_code(current: _Deployment, config: DeploymentConfig) -> bool:
        old = current.config
        return (config.version is not None and config.version == old.version
                and config.ray_actor_options == old.ray_actor_options
                and config.max_ongoing_requests == old.max_ongoing_requests
                and current.status is DeploymentStatus.HEALTHY)

    async def _update_in_place(self, deployment: _Deployment, config: DeploymentConfig) -> None:
        """Same version: reconfigure, rescale and re-route the running replicas."""
        old_config, deployment.config = deployment.config, config
        running = deployment.running()
        if config.user_config != old_config.user_config and config.user_config is not None:
            await asyncio.gather(*[watcher().watch_async(r.actor.reconfigure.remote(
                config.user_config)) for r in running])
        if config.num_replicas > len(running):
            extra = [self._start_replica(deployment)
                     for _ in range(config.num_replicas - len(running))]
            deployment.replicas += extra
            try:
                await self._wait_ready(deployment, extra)
            except BaseException:
                await self._stop(extra, graceful=False, deployment=deployment)
                raise
        elif config.num_replicas < len(running):
            surplus = running[config.num_replicas:]
            deployment.replicas = [r for r in deployment.replicas if r not in surplus]
            self._spawn(self._stop(surplus, graceful=True, deployment=deployment))
        self._version += 1

    def _start_replica(self, deployment: _Deployment) -> _Replica:
        if self._replica_class is None:
            from raylite.serve._replica import ServeReplica
            self._replica_class = raylite.remote(ServeReplica)
        config = deployment.config
        replica_id = f"{deployment.name}#{next(self._ids)}{os.urandom(2).hex()}"
        options = dict(config.ray_actor_options)
        options.setdefault("num_cpus", 1)  # as in Ray Serve: each replica reserves one CPU
        actor = self._replica_class.options(
            name=f"SERVE_REPLICA::{replica_id}", namespace=SERVE_NAMESPACE,
            max_concurrency=max(1000, config.max_ongoing_requests + 16), **options,
        ).remote(deployment.name, replica_id, deployment.definition[0],
                 {"max_ongoing_requests": config.max_ongoing_requests,
                  "user_config": config.user_config, "app_name": deployment.app_name})
        return _Replica(replica_id, actor)

    async def _wait_ready(self, deployment: _Deployment, replicas: list[_Replica]) -> None:
        futures = {watcher().watch_async(r.actor.ready.remote()): r for r in replicas}
        started, warned = time.monotonic(), False
        pending = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=SLOW_START_WARNING_S,
                                               return_when=asyncio.FIRST_EXCEPTION)
            for future in done:
                replica = futures[future]
                if future.exception() is None:
                    replica.transition(ReplicaState.RUNNING)
                    continue
                error = future.exception()
                replica.transition(ReplicaState.UNHEALTHY, f"{type(error).__name__}: {error}")
                deployment.status = DeploymentStatus.UNHEALTHY
                deployment.message = (f"replica {replica.replica_id} failed to start: "
                                      f"{replica.error}")
                for other in pending:
                    other.cancel()
                raise error
            if pending and not warned:
                warned = True
                print(f"serve: deployment {deployment.name!r} has {len(pending)} replica(s) still "
                      f"starting after {time.monotonic() - started:.0f} s; each needs "
                      f"{deployment.config.ray_actor_options or {'num_cpus': 1}} and the cluster "
                      f"has {raylite.available_resources()} free", file=sys.stderr, flush=True)

    def _fits_alongside(self, config: DeploymentConfig, old_count: int) -> bool:
        """Whether the new replicas can start before the old ones stop."""
        free = raylite.available_resources()
        need = dict(config.ray_actor_options.get("resources") or {})
        need["CPU"] = config.ray_actor_options.get("num_cpus", 1)
        if config.ray_actor_options.get("num_gpus"):
            need["GPU"] = config.ray_actor_options["num_gpus"]
        return all(free.get(k, 0.0) >= v * config.num_replicas for k, v in need.items() if v)

    # ----- stopping ---------------------------------------------------------------------------
    async def _delete(self, names: list[str], graceful: bool = True) -> None:
        doomed = [self._deployments.pop(n) for n in names if n in self._deployments]
        if doomed:
            self._version += 1
        await asyncio.gather(*[self._stop(d.replicas, graceful, d) for d in doomed])

    async def _stop(self, replicas: list[_Replica], graceful: bool,
                    deployment: _Deployment) -> None:
        timeout = deployment.config.graceful_shutdown_timeout_s if deployment else 0.0
        replicas = [r for r in replicas if r.state is not ReplicaState.STOPPING]
        for replica in replicas:
            replica.transition(ReplicaState.STOPPING)
        if graceful and timeout > 0 and replicas:
            drains = [watcher().watch_async(r.actor.prepare_for_shutdown.remote(timeout))
                      for r in replicas]
            await asyncio.wait(drains, timeout=timeout + 1.0)
        for replica in replicas:
            try:
                raylite.kill(replica.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if deployment is not None:
            deployment.replicas = [r for r in deployment.replicas if r not in replicas]

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
