"""The controller: one named async actor that owns every deployment, its replicas and routes.

    serve API (driver) ──deploy_application / delete / status──▶ ServeController
    proxy ──listen_for_change (long-poll)──▶ routes               │ starts, watches, replaces,
    handles ──get_replicas──▶ replicas                            ▼ scales and stops
                                                          ServeReplica actors

A deploy starts the new replicas (STARTING), waits for each one's ``ready()`` (RUNNING), then
swaps them into the routes and stops the old ones (STOPPING: finish requests in progress, then
``raylite.kill``). If the new replicas do not fit next to the old ones, the old ones stop first.
A replica whose constructor raises is UNHEALTHY; the deploy fails with that error and the old
replicas, if any, keep serving. Deploying the same ``version`` again only changes what can change
in place: ``user_config`` (through ``reconfigure``), the number of replicas, autoscaling, health
checks and the route.

After that a control loop (every ``CONTROL_TICK_S``, or at once when woken) keeps each deployment
at its target replica count:

- a replica whose process dies is noticed at once (a ``wait_for_shutdown`` call stays pending on
  each replica for its whole life and fails when the process does), taken out of the routes and
  replaced; the proxy reports the deaths it sees too;
- every ``health_check_period_s`` each replica's ``check_health()`` runs; one that raises or takes
  longer than ``health_check_timeout_s`` is UNHEALTHY and replaced;
- a replica that fails to start is retried after a back-off (0.5 s, doubling, at most 30 s);
- with ``autoscaling_config`` the target follows the requests in flight (see ``_autoscaling``):
  replicas' ``stats()`` every ``metrics_interval_s`` plus the proxy's queue lengths.

Every change of routes or replicas bumps a version; ``listen_for_change`` callers (the proxy)
are answered at once. The controller only ever holds a deployment's definition as an ObjectRef
(made by the driver with ``raylite.put``): it never unpickles or runs user code itself.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
import traceback
from typing import Any

import raylite
from raylite.serve._autoscaling import AutoscalingPolicy
from raylite.serve._common import (
    REPLICA_TRANSITIONS,
    SERVE_NAMESPACE,
    DeploymentConfig,
    DeploymentStatus,
    ReplicaState,
    RouteTarget,
)
from raylite.serve._router import ref_future

CONTROL_TICK_S = 0.1
SLOW_START_WARNING_S = 30.0
MAX_START_BACKOFF_S = 30.0
STATS_TIMEOUT_S = 5.0


class _Replica:
    """The controller's record of one replica actor and its lifecycle state."""

    def __init__(self, replica_id: str, actor: Any):
        self.replica_id = replica_id
        self.actor = actor
        self.state = ReplicaState.STARTING
        self.error = ""
        self.pid: int | None = None
        self.started_at = time.monotonic()
        self.next_health_check = float("inf")
        self.health_pending = False

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
        self.failed = False  # its deploy failed: nothing is started for it any more
        self.redeploying = False  # a new version is on its way: the control loop keeps off
        autoscaling = config.autoscaling_config
        self.policy = AutoscalingPolicy(autoscaling) if autoscaling is not None else None
        self.target = autoscaling.starting_replicas if autoscaling else config.num_replicas
        self.queued_at_proxy = 0
        self.next_sample_at = 0.0
        self.sample_pending = False
        self.start_failures = 0
        self.next_start_at = 0.0

    def running(self) -> list[_Replica]:
        return [r for r in self.replicas if r.state is ReplicaState.RUNNING]

    def active(self) -> list[_Replica]:
        return [r for r in self.replicas
                if r.state in (ReplicaState.STARTING, ReplicaState.RUNNING)]

    def route_target(self) -> RouteTarget:
        # Requests wait for a replica only while one can be expected to come: not after the
        # deploy failed, nor while replicas keep failing to start.
        expects = not self.failed and self.start_failures == 0 \
            and (self.target > 0 or self.policy is not None)
        return RouteTarget(self.name, [(r.replica_id, r.actor) for r in self.running()],
                           self.config.max_ongoing_requests, self.config.max_queued_requests,
                           expects)


class ServeController:
    """Owns deployments and replicas; every method is safe to call concurrently."""

    def __init__(self):
        self._deployments: dict[str, _Deployment] = {}
        self._lock: asyncio.Lock | None = None
        self._version = 0  # bumped whenever routes or replica sets change
        self._listeners: list[asyncio.Future] = []
        self._ids = itertools.count(1)
        self._replica_class = None
        self._background: set = set()
        self._control_task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None

    def _mutex(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _bump(self) -> None:
        """Routes or replicas changed: a new version, and every long-poll listener answered."""
        self._version += 1
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            if not listener.done():
                listener.set_result(None)

    # ----- changes --------------------------------------------------------------------------
    async def deploy_application(self, app_name: str | None, specs: list[dict],
                                 delete_others: bool = False) -> int:
        """Deploy ``specs`` in order (dependencies first); with ``delete_others``, delete the
        app's deployments that are not among them. Returns the new routing version."""
        self._ensure_control_loop()
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
        """Take the deployments out of the routes at once, then drain and stop their replicas."""
        async with self._mutex():
            await self._delete(names)
            return self._version

    async def delete_application(self, app_name: str) -> int:
        async with self._mutex():
            await self._delete([d.name for d in self._deployments.values()
                                if d.app_name == app_name])
            return self._version

    async def replica_failed(self, name: str, replica_id: str, reason: str) -> None:
        """A proxy found a replica dead: replace it (the controller may already know)."""
        deployment = self._deployments.get(name)
        for replica in deployment.replicas if deployment else []:
            if replica.replica_id == replica_id:
                self._replica_lost(deployment, replica, f"died ({reason})")

    async def record_queued(self, counts: dict[str, int]) -> None:
        """The proxy's queue lengths per deployment (requests waiting for a replica)."""
        for name, count in counts.items():
            deployment = self._deployments.get(name)
            if deployment is not None:
                deployment.queued_at_proxy = count
                if count and deployment.policy is not None and deployment.target == 0:
                    self._wake_up()  # scale up from zero now, not at the next tick

    async def shutdown(self) -> None:
        """Drain and stop every replica (each within its graceful_shutdown_timeout_s)."""
        async with self._mutex():
            if self._control_task is not None:
                self._control_task.cancel()
            await self._delete(list(self._deployments), graceful=True)

    # ----- reads ------------------------------------------------------------------------------
    def get_routes(self) -> tuple[int, dict[str, RouteTarget]]:
        """(version, {route_prefix: RouteTarget})."""
        routes = {}
        for d in self._deployments.values():
            if d.config.route_prefix is not None:
                routes[d.config.route_prefix] = d.route_target()
        return self._version, routes

    async def listen_for_change(self, known_version: int, timeout_s: float = 30.0) -> tuple:
        """``get_routes()`` as soon as the version differs from ``known_version`` (or after
        ``timeout_s``): the proxy's long-poll."""
        if known_version == self._version:
            listener = asyncio.get_running_loop().create_future()
            self._listeners.append(listener)
            try:
                await asyncio.wait_for(listener, timeout_s)
            except asyncio.TimeoutError:
                pass
            finally:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return self.get_routes()

    def get_replicas(self, name: str) -> tuple[int, RouteTarget]:
        deployment = self._deployments.get(name)
        if deployment is None:
            raise KeyError(f"there is no deployment named {name!r}; deployments: "
                           f"{sorted(self._deployments) or 'none'}")
        return self._version, deployment.route_target()

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
            out[d.name] = {
                "name": d.name, "app_name": d.app_name, "status": d.status.value,
                "message": d.message, "replica_states": states, "target_replicas": d.target,
                "route_prefix": d.config.route_prefix,
                "replicas": [{"replica_id": r.replica_id, "state": r.state.value, "pid": r.pid}
                             for r in d.replicas],
                "graceful_shutdown_timeout_s": d.config.graceful_shutdown_timeout_s,
            }
            if d.policy is not None:
                config = d.policy.config
                out[d.name]["autoscaling"] = {
                    "min_replicas": config.min_replicas, "max_replicas": config.max_replicas,
                    "target_ongoing_requests": config.target_ongoing_requests,
                    "average_ongoing_requests": d.policy.average_ongoing()}
        return {"version": self._version, "deployments": out}

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
        if current is not None and current.policy is not None and deployment.policy is not None:
            deployment.target = deployment.policy.clamp(current.target)  # keep the capacity
        if current is not None:
            current.redeploying = True
        try:
            await self._replace(current, deployment)
        finally:
            if current is not None:
                current.redeploying = False

    async def _replace(self, current: _Deployment | None, deployment: _Deployment) -> None:
        """Start ``deployment``'s replicas, then swap them in for ``current``'s (if any)."""
        name = deployment.name
        if current is not None and current.active() \
                and not self._fits_alongside(deployment.config, deployment.target):
            await self._stop(current.active(), graceful=True, deployment=current)
        new = [self._start_replica(deployment) for _ in range(deployment.target)]
        try:
            await self._wait_ready(deployment, new)
        except BaseException:
            await self._stop(new, graceful=False, deployment=deployment)
            deployment.failed = True
            if current is None:  # keep the failed deployment visible in status()
                self._deployments[name] = deployment
            elif not current.active():  # its old replicas already made room for the new ones
                current.failed = True
                current.status, current.message = deployment.status, deployment.message
            self._bump()
            raise
        self._deployments[name] = deployment  # the new replicas take over the route here
        deployment.status = DeploymentStatus.HEALTHY
        self._bump()
        if current is not None:  # drain the old replicas in the background
            old = self._begin_stop(current.replicas)
            if old:
                self._spawn(self._finish_stop(old, graceful=True, deployment=current))

    @staticmethod
    def _same_code(current: _Deployment, config: DeploymentConfig) -> bool:
        old = current.config
        return (config.version is not None and config.version == old.version
                and config.ray_actor_options == old.ray_actor_options
                and config.max_ongoing_requests == old.max_ongoing_requests
                and not current.failed)

    async def _update_in_place(self, deployment: _Deployment, config: DeploymentConfig) -> None:
        """Same version: reconfigure, rescale and re-route the running replicas."""
        old_config, old_target = deployment.config, deployment.target
        deployment.config = config
        if config.autoscaling_config != old_config.autoscaling_config:
            autoscaling = config.autoscaling_config
            deployment.policy = AutoscalingPolicy(autoscaling) if autoscaling else None
        deployment.target = (deployment.policy.clamp(deployment.target) if deployment.policy
                             else config.num_replicas)
        if config.user_config != old_config.user_config and config.user_config is not None:
            await asyncio.gather(*[ref_future(r.actor.reconfigure.remote(
                config.user_config)) for r in deployment.running()])
        active = deployment.active()
        if deployment.target > len(active):
            extra = [self._start_replica(deployment)
                     for _ in range(deployment.target - len(active))]
            try:
                await self._wait_ready(deployment, extra)
            except BaseException:
                await self._stop(extra, graceful=False, deployment=deployment)
                deployment.config, deployment.target = old_config, old_target
                deployment.status = DeploymentStatus.HEALTHY
                raise
        elif deployment.target < len(active):
            self._scale_down(deployment, active)
        self._bump()

    def _start_replica(self, deployment: _Deployment) -> _Replica:
        """Create one replica actor (STARTING) and add it to the deployment."""
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
        replica = _Replica(replica_id, actor)
        deployment.replicas.append(replica)
        return replica

    async def _bring_up(self, deployment: _Deployment, replica: _Replica) -> bool:
        """Wait for a replica's ``ready()``; RUNNING and watched for death on success, False if
        it was stopped meanwhile, UNHEALTHY (and the error raised) if it failed to start."""
        try:
            info = await ref_future(replica.actor.ready.remote())
        except Exception as error:
            if replica.state is not ReplicaState.STARTING:
                return False
            replica.transition(ReplicaState.UNHEALTHY, _describe(error))
            raise
        if replica.state is not ReplicaState.STARTING:
            return False
        replica.transition(ReplicaState.RUNNING)
        replica.pid = info.get("pid")
        replica.next_health_check = time.monotonic() + deployment.config.health_check_period_s
        future = ref_future(replica.actor.wait_for_shutdown.remote())
        future.add_done_callback(lambda done: self._on_replica_exit(deployment, replica, done))
        self._bump()
        return True

    async def _wait_ready(self, deployment: _Deployment, replicas: list[_Replica]) -> None:
        """Bring up replicas together; the first failure marks the deployment and is raised."""
        tasks = {asyncio.get_running_loop().create_task(self._bring_up(deployment, r)): r
                 for r in replicas}
        started, warned = time.monotonic(), False
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=SLOW_START_WARNING_S,
                                               return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is None:
                    continue
                replica = tasks[task]
                deployment.status = DeploymentStatus.UNHEALTHY
                deployment.message = (f"replica {replica.replica_id} failed to start: "
                                      f"{replica.error}")
                for other in pending:
                    other.cancel()
                raise task.exception()
            if pending and not warned:
                warned = True
                print(f"serve: deployment {deployment.name!r} has {len(pending)} replica(s) still "
                      f"starting after {time.monotonic() - started:.0f} s; each needs "
                      f"{deployment.config.ray_actor_options or {'num_cpus': 1}} and the cluster "
                      f"has {raylite.available_resources()} free", file=sys.stderr, flush=True)

    def _fits_alongside(self, config: DeploymentConfig, count: int) -> bool:
        """Whether ``count`` new replicas can start before the old ones stop."""
        free = raylite.available_resources()
        need = dict(config.ray_actor_options.get("resources") or {})
        need["CPU"] = config.ray_actor_options.get("num_cpus", 1)
        if config.ray_actor_options.get("num_gpus"):
            need["GPU"] = config.ray_actor_options["num_gpus"]
        return all(free.get(k, 0.0) >= v * count for k, v in need.items() if v)

    # ----- the control loop -------------------------------------------------------------------
    def _ensure_control_loop(self) -> None:
        if self._control_task is None or self._control_task.done():
            self._wake = asyncio.Event()
            self._control_task = asyncio.get_running_loop().create_task(self._control_loop())

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _control_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), CONTROL_TICK_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            for deployment in list(self._deployments.values()):
                try:
                    self._reconcile(deployment, now)
                except Exception:  # noqa: BLE001 - one deployment's trouble must not stop all
                    traceback.print_exc()

    def _reconcile(self, deployment: _Deployment, now: float) -> None:
        """One step toward the deployment's target: health checks, autoscaling, start/stop."""
        if deployment.failed or deployment.redeploying \
                or self._deployments.get(deployment.name) is not deployment:
            return
        for replica in deployment.running():
            if not replica.health_pending and now >= replica.next_health_check:
                replica.health_pending = True
                self._spawn(self._check_health(deployment, replica))
        if deployment.policy is not None:
            self._autoscale(deployment, now)
        active = deployment.active()
        missing = deployment.target - len(active)
        if missing > 0 and now >= deployment.next_start_at:
            for _ in range(missing):
                self._spawn(self._start_in_background(deployment,
                                                      self._start_replica(deployment)))
        elif missing < 0:
            self._scale_down(deployment, active)
        self._update_status(deployment)

    def _autoscale(self, deployment: _Deployment, now: float) -> None:
        policy = deployment.policy
        if not deployment.sample_pending and now >= deployment.next_sample_at:
            deployment.sample_pending = True
            deployment.next_sample_at = now + policy.config.metrics_interval_s
            self._spawn(self._sample_load(deployment))
        target = policy.decide(now, deployment.target)
        if deployment.target == 0 and deployment.queued_at_proxy:
            target = policy.clamp(max(1, target))  # from zero: at once, not after a delay
        if target != deployment.target:
            print(f"serve: autoscaling deployment {deployment.name!r} from {deployment.target} to "
                  f"{target} replica(s) ({policy.average_ongoing():.1f} requests in flight on "
                  f"average, target {policy.config.target_ongoing_requests:g} per replica)",
                  file=sys.stderr, flush=True)
            deployment.target = target

    async def _sample_load(self, deployment: _Deployment) -> None:
        """Requests in flight over the deployment: on its replicas and queued at the proxy."""
        try:
            calls = [asyncio.wait_for(ref_future(r.actor.stats.remote()),
                                      STATS_TIMEOUT_S) for r in deployment.running()]
            results = await asyncio.gather(*calls, return_exceptions=True)
            ongoing = sum(r["ongoing"] for r in results if isinstance(r, dict))
            deployment.policy.record(time.monotonic(), ongoing + deployment.queued_at_proxy)
        finally:
            deployment.sample_pending = False

    def _scale_down(self, deployment: _Deployment, active: list[_Replica]) -> None:
        """Stop the surplus replicas (starting ones first, then the newest), draining them."""
        surplus = len(active) - deployment.target
        order = sorted(active, key=lambda r: (r.state is ReplicaState.RUNNING, -r.started_at))
        chosen = self._begin_stop(order[:surplus])
        if chosen:
            self._spawn(self._finish_stop(chosen, graceful=True, deployment=deployment))

    async def _start_in_background(self, deployment: _Deployment, replica: _Replica) -> None:
        """Bring up a replacement or autoscaled replica; on failure, back off and retry later."""
        try:
            if not await self._bring_up(deployment, replica):
                return
        except Exception:  # noqa: BLE001 - recorded on the replica by _bring_up
            deployment.start_failures += 1
            backoff = min(MAX_START_BACKOFF_S, 0.5 * 2 ** (deployment.start_failures - 1))
            deployment.next_start_at = time.monotonic() + backoff
            deployment.status = DeploymentStatus.UNHEALTHY
            deployment.message = (f"replica {replica.replica_id} failed to start "
                                  f"({replica.error}); retrying in {backoff:.1f} s")
            print(f"serve: {deployment.message}", file=sys.stderr, flush=True)
            self._bump()  # routers learn not to wait for replicas while this goes on
            await self._stop([replica], graceful=False, deployment=deployment)
            return
        deployment.start_failures = 0
        if self._deployments.get(deployment.name) is not deployment:  # replaced meanwhile
            await self._stop([replica], graceful=False, deployment=deployment)
            return
        self._update_status(deployment)

    async def _check_health(self, deployment: _Deployment, replica: _Replica) -> None:
        timeout = deployment.config.health_check_timeout_s
        failure = ""
        try:
            await asyncio.wait_for(ref_future(replica.actor.check_health.remote()),
                                   timeout)
        except asyncio.TimeoutError:
            failure = f"did not answer its health check within {timeout:g} s"
        except Exception as error:  # noqa: BLE001 - the user's check_health raised
            failure = f"failed its health check: {_describe(error)}"
        finally:
            replica.health_pending = False
            replica.next_health_check = time.monotonic() + \
                deployment.config.health_check_period_s
        if failure:
            self._replica_lost(deployment, replica, failure)

    def _on_replica_exit(self, deployment: _Deployment, replica: _Replica,
                         future: asyncio.Future) -> None:
        """The replica's ``wait_for_shutdown`` call ended: fine if we stopped it, else it died."""
        error = None if future.cancelled() else future.exception()
        if replica.state is not ReplicaState.RUNNING:
            return  # stopped on purpose, or already known dead (the proxy told us)
        self._replica_lost(deployment, replica,
                           f"died ({_describe(error)})" if error else "exited on its own")

    def _replica_lost(self, deployment: _Deployment, replica: _Replica, reason: str) -> None:
        """A RUNNING replica died or is unhealthy: out of the routes, stopped, replaced."""
        if replica.state is not ReplicaState.RUNNING:
            return
        replica.transition(ReplicaState.UNHEALTHY, reason)
        deployment.status = DeploymentStatus.UNHEALTHY
        deployment.message = f"replica {replica.replica_id} {reason}; replacing it"
        print(f"serve: {deployment.message}", file=sys.stderr, flush=True)
        self._bump()
        self._spawn(self._stop([replica], graceful=False, deployment=deployment))
        self._wake_up()

    @staticmethod
    def _update_status(deployment: _Deployment) -> None:
        if deployment.failed:
            return
        if len(deployment.running()) >= deployment.target:
            if deployment.status is not DeploymentStatus.HEALTHY:
                deployment.status, deployment.message = DeploymentStatus.HEALTHY, ""
        elif deployment.status is DeploymentStatus.HEALTHY:
            deployment.status = DeploymentStatus.UPDATING

    # ----- stopping ---------------------------------------------------------------------------
    async def _delete(self, names: list[str], graceful: bool = True) -> None:
        """Out of the routes first (listeners learn it at once), then drain and stop."""
        doomed = [self._deployments.pop(n) for n in names if n in self._deployments]
        if doomed:
            self._bump()
        await asyncio.gather(*[self._stop(list(d.replicas), graceful, d) for d in doomed])

    def _begin_stop(self, replicas: list[_Replica]) -> list[_Replica]:
        """Mark replicas STOPPING (out of the routes); returns those that were not already."""
        chosen = [r for r in replicas if r.state is not ReplicaState.STOPPING]
        routed = any(r.state is ReplicaState.RUNNING for r in chosen)
        for replica in chosen:
            replica.transition(ReplicaState.STOPPING)
        if routed:
            self._bump()
        return chosen

    async def _finish_stop(self, replicas: list[_Replica], graceful: bool,
                           deployment: _Deployment) -> None:
        """Let the replicas finish their requests (up to graceful_shutdown_timeout_s), then kill
        them and forget them."""
        timeout = deployment.config.graceful_shutdown_timeout_s
        if graceful and timeout > 0 and replicas:
            drains = [ref_future(r.actor.prepare_for_shutdown.remote(timeout))
                      for r in replicas]
            await asyncio.wait(drains, timeout=timeout + 1.0)
        for replica in replicas:
            try:
                raylite.kill(replica.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        deployment.replicas = [r for r in deployment.replicas if r not in replicas]

    async def _stop(self, replicas: list[_Replica], graceful: bool,
                    deployment: _Deployment) -> None:
        await self._finish_stop(self._begin_stop(replicas), graceful, deployment)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _describe(error: BaseException | None) -> str:
    """A one-line account of an error (a remote error's original exception, not its wrapper)."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")
