"""Backends: what a framework needs set up in a started worker group before training.

A backend is a config object with ``on_start(group)`` (run once the workers are up: build
the framework's process group) and ``on_shutdown(group)``. ``Trainer(backend="torch")`` looks
the name up in :data:`BACKENDS`; a config object (``TorchConfig(timeout_s=60)``) is taken as is.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from raylite._suggest import did_you_mean

if TYPE_CHECKING:
    from raylite.train._worker_group import WorkerGroup


class BackendConfig:
    """The base of backend configs; subclasses set ``name`` and override the hooks."""

    name = "base"
    share_cuda_visible_devices = False  # let each worker see the GPUs of its machine's peers
    worker_imports: tuple[str, ...] = ()  # imported on each worker while the group starts

    def on_start(self, group: WorkerGroup, use_gpu: bool) -> None:
        """Set the framework up on every worker of a freshly started ``group``."""

    def on_shutdown(self, group: WorkerGroup) -> None:
        """Tear the framework down before the workers are stopped (best effort)."""

    def explain_failure(self, remote_traceback: str) -> str | None:
        """A hint for a training function's failure that is a known trap of the framework."""
        return None


def _torch_config() -> BackendConfig:
    from raylite.train._backend_torch import TorchConfig
    return TorchConfig()


def _tensorflow_config() -> BackendConfig:
    from raylite.train._backend_tf import TensorflowConfig
    return TensorflowConfig()


BACKENDS = {"torch": _torch_config, "tensorflow": _tensorflow_config}
_NOT_SUPPORTED = {"horovod": "Horovod is not supported by raylite; use 'torch' or 'tensorflow'"}


def resolve_backend(backend: Any) -> BackendConfig:
    """The config for ``backend``: a name from BACKENDS or a BackendConfig instance."""
    if isinstance(backend, BackendConfig):
        return backend
    choices = ", ".join(repr(name) for name in BACKENDS)
    if isinstance(backend, str):
        key = backend.lower()
        if key in BACKENDS:
            return BACKENDS[key]()
        if key in _NOT_SUPPORTED:
            raise ValueError(f"backend {backend!r}: {_NOT_SUPPORTED[key]}")
        raise ValueError(f"unknown backend {backend!r}{did_you_mean(key, BACKENDS, n=1)}; "
                         f"choose one of "
                         f"{choices}, or pass a TorchConfig / TensorflowConfig")
    raise TypeError(f"backend must be one of {choices} or a TorchConfig / TensorflowConfig, got "
                    f"{type(backend).__name__} {backend!r:.60}")


def find_free_port() -> int:
    """A TCP port free right now on this machine (run on a worker: the port is for its host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def free_ports(group: WorkerGroup, ranks: list[int]) -> list[int]:
    """A free port on the machine of each worker in ``ranks``: picked here when the workers
    run on this machine (no round trip), else asked of each worker."""
    if group.on_this_machine():
        ports: list[int] = []
        while len(ports) < len(ranks):
            port = find_free_port()
            if port not in ports:
                ports.append(port)
        return ports
    import raylite
    return raylite.get([group.workers[rank].actor.execute.remote(find_free_port, (), {})
                        for rank in ranks])
