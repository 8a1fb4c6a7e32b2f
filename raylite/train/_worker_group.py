"""A gang of training workers: N actors started together in one placement group.

Lifecycle (``WorkerGroup.state``)::

    NEW --start()--> RUNNING --shutdown()--> STOPPED --start()--> RUNNING ...
                        (start() failing leaves it STOPPED, with nothing left running)

``start`` checks that the cluster can ever hold the group (else ValueError saying how much is
free), reserves one bundle per worker (or, in a Tune trial, takes the bundles the trial
reserved for them), starts one :class:`TrainWorker` actor in each, and gives
every worker its ranks (:class:`WorkerContext`): world ranks are contiguous per machine, local
ranks count within a machine. With ``share_cuda_visible_devices`` (the torch backend), workers
with GPUs see all GPUs of the group on their machine (``CUDA_VISIBLE_DEVICES``) and use their
own by index, so NCCL can reach its peers directly; otherwise each sees only its own. Two
workers handed the same whole GPU stop the start with an error (``check_own_gpus``).

    driver                                   each TrainWorker (a fresh process)
    placement group, actors ------------>    __init__: thread counts; start importing the
                                             backend's modules (torch) in a thread
    info() ----------------------------->    pid, host, GPU ids      (the import goes on)
    ranks, devices: set_context() ------>    CUDA_VISIBLE_DEVICES, context; wait for the import
    backend.on_start(group) ------------>    the framework's process group
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import raylite
from raylite.exceptions import ActorDiedError, WorkerCrashedError
from raylite.train import _session
from raylite.train._session import TrainSession, WorkerContext

logger = logging.getLogger("raylite.train")

RESOURCE_WARNING_S = 10.0  # warn when the workers wait this long for their resources
DEATH_ERRORS = (ActorDiedError, WorkerCrashedError)


class TrainWorker:
    """One training process: runs set-up functions, and the training function in a thread.

    It runs two calls at once (``max_concurrency=2``), so the driver can ``ping`` it or run
    ``execute`` while a ``poll`` waits for the training function's next report.

    ``imports`` (the backend's, e.g. ``torch.distributed``) are imported in a background
    thread from the moment the process starts, while the group is still being assembled;
    ``set_context``, the last step of the group's start, waits for them, so nothing else the
    driver sends (whose unpickling may import the same modules) races with that import.
    """

    def __init__(self, num_cpus: float = 1, imports: tuple[str, ...] = ()) -> None:
        # As many math threads as this worker has CPUs (as torchrun and Ray do), not one per
        # core in every worker: N workers x all cores oversubscribe the machine many times.
        # Set first thing, before any framework is imported here and reads them.
        threads = str(max(1, int(num_cpus)))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ.setdefault(name, threads)
        self._session: TrainSession | None = None
        self._thread: threading.Thread | None = None
        self._importer: threading.Thread | None = None
        if imports:
            self._importer = threading.Thread(target=_import_quietly, args=(imports,),
                                              daemon=True, name="raylite-train-imports")
            self._importer.start()

    def info(self) -> dict:
        return {"pid": os.getpid(), "hostname": socket.gethostname(),
                "gpu_ids": raylite.get_gpu_ids(), "ip": _host_ip()}

    def set_context(self, context: WorkerContext, visible_devices: str | None) -> None:
        """Take this worker's ranks; with ``visible_devices``, see those GPUs (set before any
        framework initializes CUDA, which reads CUDA_VISIBLE_DEVICES once)."""
        if visible_devices is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
        _session.set_worker_context(context)
        if self._importer is not None:
            self._importer.join()
            self._importer = None

    def execute(self, function: Callable, args: tuple, kwargs: dict) -> Any:
        return function(*args, **kwargs)

    def start_training(self, function: tuple, config: dict | None, dataset_shard: Any,
                       checkpoint: tuple | None) -> None:
        """Run ``function`` (packed by ``_session.pack_function``) in a new thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("a training function is still running on this worker")
        self._session = TrainSession(_session.worker_context(), dataset_shard, checkpoint)
        self._thread = threading.Thread(target=_session.run_training,
                                        args=(_session.unpack_function(function), config,
                                              self._session),
                                        daemon=True, name="raylite-train-function")
        self._thread.start()

    def poll(self, acked: int, timeout: float | None) -> tuple[list, bool, Any, Any]:
        """``(events, finished, error, output)``, see ``TrainSession.take``."""
        return self._session.take(acked, timeout)

    def ping(self) -> int:
        return os.getpid()


def _import_quietly(modules: tuple[str, ...]) -> None:
    """Import ``modules`` ahead of need; a failure is left for the real import to report."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - e.g. torch missing: the backend says so
            continue


def _host_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


_WORKER_CLASS = None


def _worker_class():
    global _WORKER_CLASS
    if _WORKER_CLASS is None:
        _WORKER_CLASS = raylite.remote(TrainWorker)
    return _WORKER_CLASS


@dataclass
class Worker:
    """A started worker: its actor and where it stands."""

    actor: Any
    context: WorkerContext
    pid: int
    hostname: str
    ip: str


class WorkerGroup:
    """``num_workers`` TrainWorker actors, each holding ``resources_per_worker``.

    Example:
        >>> group = WorkerGroup(2, {"CPU": 1})                   # doctest: +SKIP
        >>> group.start()                                        # doctest: +SKIP
        >>> group.execute(lambda: __import__("os").getpid())     # doctest: +SKIP
        [4242, 4243]
        >>> group.shutdown()                                     # doctest: +SKIP
    """

    NEW, RUNNING, STOPPED = "NEW", "RUNNING", "STOPPED"

    def __init__(self, num_workers: int, resources_per_worker: dict[str, float],
                 placement_strategy: str = "PACK", share_cuda_visible_devices: bool = False,
                 imports: tuple[str, ...] = (), runtime_env: dict | None = None):
        self.num_workers = num_workers
        self.runtime_env = runtime_env  # the workers' (merged over the job's, as for any actor)
        self.resources = dict(resources_per_worker)
        self.placement_strategy = placement_strategy
        self.share_cuda_visible_devices = share_cuda_visible_devices
        # Imported ahead only without GPUs: CUDA_VISIBLE_DEVICES, set by set_context, must be
        # in place before a framework could look at the GPUs.
        self.imports = tuple(imports) if not self.resources.get("GPU") else ()
        self.state = self.NEW
        self.workers: list[Worker] = []
        self._placement_group = None
        self._own_group, self._first_bundle = True, 0
        self._cleanups: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self.workers)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.state == self.RUNNING:
            raise RuntimeError("the worker group is already running")
        check_fits(self.num_workers, self.resources)
        self._reserve()
        self.state = self.RUNNING
        try:
            actors = [self._start_actor(index) for index in range(self.num_workers)]
            infos = self._wait_for(actors)
            self.workers = _assign_ranks(actors, infos, self.share_cuda_visible_devices)
            check_own_gpus(self.workers, self.resources.get("GPU", 0))
            share = self.share_cuda_visible_devices
            raylite.get([w.actor.set_context.remote(
                w.context, _visible_devices(w, self.workers) if share else None)
                for w in self.workers])
        except BaseException:
            self.shutdown()
            raise

    def _reserve(self) -> None:
        """The workers' bundles: those of the placement group this runs in where it captures
        its children (a Tune trial's, reserved before the trial started: the trainer's bundle,
        then one per worker), else a group of its own. The workers capture their children in
        turn: Data tasks a training loop starts run in the group, on the CPU a worker lends
        while it waits for them, instead of waiting for CPUs the workers hold."""
        from raylite.util import get_current_placement_group, placement_group
        self._own_group, self._first_bundle = True, 0
        if raylite.get_runtime_context().should_capture_child_tasks_in_placement_group:
            current = get_current_placement_group()
            bundles = current.bundle_specs if current is not None else []
            first = len(bundles) - self.num_workers
            if first in (0, 1) and all(_fits(self.resources, bundle) for bundle in bundles[first:]):
                self._placement_group, self._own_group = current, False
                self._first_bundle = first
                return
            if current is not None:
                logger.warning("raylite.train: the placement group this trainer runs in has "
                               "bundles %s, not one per worker (%s each); the workers reserve "
                               "a group of their own", bundles, _describe(self.resources))
        self._placement_group = placement_group([dict(self.resources)] * self.num_workers,
                                                strategy=self.placement_strategy)

    def _start_actor(self, index: int) -> Any:
        from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        custom = {k: v for k, v in self.resources.items() if k not in ("CPU", "GPU", "memory")}
        strategy = PlacementGroupSchedulingStrategy(self._placement_group,
                                                    self._first_bundle + index,
                                                    placement_group_capture_child_tasks=True)
        options: dict[str, Any] = {
            "num_cpus": self.resources.get("CPU", 0), "num_gpus": self.resources.get("GPU", 0),
            "max_concurrency": 2, "scheduling_strategy": strategy}
        if custom:
            options["resources"] = custom
        if self.resources.get("memory"):
            options["memory"] = self.resources["memory"]
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        return _worker_class().options(**options).remote(self.resources.get("CPU", 1),
                                                          self.imports)

    def _wait_for(self, actors: list) -> list[dict]:
        refs = [actor.info.remote() for actor in actors]
        _, pending = raylite.wait(refs, num_returns=len(refs), timeout=RESOURCE_WARNING_S)
        if pending:
            free = raylite.available_resources()
            logger.warning("raylite.train: %d of %d workers are still waiting for their resources "
                           "(%s each; free now: %s). Training starts once other tasks, actors or "
                           "trials release them.", len(pending), len(refs), _describe(self.resources),
                           _describe({k: v for k, v in free.items() if k in self.resources}))
        return raylite.get(refs)

    def shutdown(self) -> None:
        """Stop every worker (their process exits, whatever it was doing), free the bundles,
        and run the cleanups the backend registered."""
        from raylite.util import remove_placement_group
        workers, self.workers = self.workers, []
        for worker in workers:
            try:
                raylite.kill(worker.actor)
            except Exception:  # noqa: BLE001, S110 - already gone
                pass
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - a leftover temporary file must not stop shutdown
                logger.warning("raylite.train: a cleanup of the worker group failed", exc_info=True)
        if self._placement_group is not None and self._own_group:
            try:
                remove_placement_group(self._placement_group)
            except Exception:  # noqa: BLE001, S110 - the runtime is shutting down
                pass
            self._placement_group = None
        self.state = self.STOPPED

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup()`` on the driver when the group stops (a backend's temporary files)."""
        self._cleanups.append(cleanup)

    def on_this_machine(self) -> bool:
        """Whether every worker runs on the driver's machine."""
        here = socket.gethostname()
        return bool(self.workers) and all(w.hostname == here for w in self.workers)

    # ---- running things on the workers --------------------------------------------------------
    def execute_async(self, function: Callable, *args: Any, **kwargs: Any) -> list:
        self._check_running()
        return [w.actor.execute.remote(function, args, kwargs) for w in self.workers]

    def execute(self, function: Callable, *args: Any, **kwargs: Any) -> list:
        """``function(*args, **kwargs)`` on every worker; the results in rank order."""
        return raylite.get(self.execute_async(function, *args, **kwargs))

    def execute_single(self, rank: int, function: Callable, *args: Any, **kwargs: Any) -> Any:
        self._check_running()
        return raylite.get(self.workers[rank].actor.execute.remote(function, args, kwargs))

    def find_dead(self, timeout: float) -> dict[int, BaseException]:
        """The ranks whose process is gone (with the error saying so), asked within ``timeout``."""
        refs = {w.actor.ping.remote(): rank for rank, w in enumerate(self.workers)}
        ready, _ = raylite.wait(list(refs), num_returns=len(refs), timeout=timeout)
        dead = {}
        for ref in ready:
            try:
                raylite.get(ref)
            except DEATH_ERRORS as exc:
                dead[refs[ref]] = exc
        return dead

    def _check_running(self) -> None:
        if self.state != self.RUNNING:
            raise RuntimeError(f"the worker group is {self.state}; start() it first")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def check_fits(num_workers: int, resources: dict[str, float]) -> None:
    """Raise ValueError if the cluster can never hold ``num_workers`` x ``resources``."""
    total = raylite.cluster_resources()
    free = raylite.available_resources()
    for key, amount in resources.items():
        need = amount * num_workers
        if amount > 0 and need > total.get(key, 0.0) + 1e-9:
            raise ValueError(
                f"num_workers={num_workers} with {_number(amount)} {key} per worker needs "
                f"{_number(need)} {key}, but the cluster has {_number(total.get(key, 0.0))} {key} "
                f"({_number(free.get(key, 0.0))} free now). Lower num_workers or "
                f"resources_per_worker, or start raylite with more "
                f"(raylite.init(num_cpus=..., num_gpus=...)).")


def _fits(request: dict[str, float], bundle: dict[str, float]) -> bool:
    return all(bundle.get(key, 0.0) >= amount - 1e-9 for key, amount in request.items())


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{_number(v)} {k}" for k, v in resources.items()) or "nothing"


def _assign_ranks(actors: list, infos: list[dict], share_devices: bool) -> list[Worker]:
    """Workers in world-rank order: grouped by machine, local ranks within each. A worker's
    device index counts among the GPUs it will see: its machine's (shared) or its own."""
    hosts: list[str] = []
    for info in infos:
        if info["hostname"] not in hosts:
            hosts.append(info["hostname"])
    order = sorted(range(len(actors)), key=lambda i: hosts.index(infos[i]["hostname"]))
    one_host = len(hosts) == 1
    workers = []
    for world_rank, index in enumerate(order):
        info = infos[index]
        same_host = [i for i in order if infos[i]["hostname"] == info["hostname"]]
        context = WorkerContext(world_rank=world_rank, local_rank=same_host.index(index),
                                world_size=len(actors), local_world_size=len(same_host),
                                node_rank=hosts.index(info["hostname"]),
                                gpu_ids=list(info["gpu_ids"]))
        workers.append(Worker(actors[index], context, info["pid"], info["hostname"],
                              "127.0.0.1" if one_host else info["ip"]))
    for worker in workers:
        if worker.context.gpu_ids:
            visible = _node_gpus(worker, workers) if share_devices else worker.context.gpu_ids
            worker.context.device_index = visible.index(worker.context.gpu_ids[0])
    return workers


def _node_gpus(worker: Worker, workers: list[Worker]) -> list[int]:
    return sorted({gpu for w in workers if w.hostname == worker.hostname for gpu in w.context.gpu_ids})


def check_own_gpus(workers: list[Worker], gpus_per_worker: float) -> None:
    """Raise if two workers on one machine, each holding whole GPUs, were given the same GPU:
    they would train on one device (and NCCL refuses two ranks on one GPU)."""
    if gpus_per_worker < 1:
        return  # fractional GPUs are shared on purpose
    owner: dict[tuple[str, int], int] = {}
    for worker in workers:
        for gpu in worker.context.gpu_ids:
            other = owner.setdefault((worker.hostname, gpu), worker.context.world_rank)
            if other != worker.context.world_rank:
                raise RuntimeError(
                    f"workers rank {other} and rank {worker.context.world_rank} on "
                    f"{worker.hostname} were both given GPU {gpu}, though each holds "
                    f"{_number(gpus_per_worker)} GPU of its own; they would share one device. "
                    f"This is a bug in raylite's GPU assignment: please report it. Until it is "
                    f"fixed, start one GPU worker per machine, or use_gpu=False.")


def _visible_devices(worker: Worker, workers: list[Worker]) -> str | None:
    if not worker.context.gpu_ids:
        return None
    return ",".join(str(gpu) for gpu in _node_gpus(worker, workers))
