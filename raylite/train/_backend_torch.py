"""The PyTorch backend: a torch.distributed process group over the workers, and the helpers
that make a model and a DataLoader distributed (``raylite.train.torch``).

    driver                                                  every worker
    on_start: the rendezvous: a FileStore path when all workers
              run on this machine, else rank 0's address and a
              free port there (a TCPStore)
              --setup_process_group(url, addr, port)----------> MASTER_ADDR/PORT, RANK, ...
                                                                dist.init_process_group(
                                                                    gloo on CPU, nccl on GPU)

A TCPStore costs a connect retry, about half a second, whenever a peer comes before rank 0
listens (and its port can be taken by another process in between); a FileStore has no server
to wait for and no port. torch is imported on the workers only, in the background from the
moment each starts (``worker_imports``), and by the helpers below, which run there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from raylite.train._backend import BackendConfig, free_ports
from raylite.train._session import worker_context

if TYPE_CHECKING:
    from raylite.train._worker_group import WorkerGroup

SHUTDOWN_TIMEOUT_S = 5.0  # a worker stuck in a collective is stopped without it


@dataclass
class TorchConfig(BackendConfig):
    """torch.distributed settings.

    Args:
        backend: "gloo" or "nccl"; None: nccl when the workers have GPUs, else gloo.
        init_method: how the workers find each other. "file": a FileStore in a fresh
            directory (one machine only: no port, so no race for one and no connect retries);
            "env" (MASTER_ADDR/MASTER_PORT) or "tcp": a TCPStore on rank 0;
            None: "file" when every worker runs on the driver's machine, else "env".
        timeout_s: how long collectives wait for a peer before failing.
    """

    backend: str | None = None
    init_method: str | None = None
    timeout_s: int = 1800

    name = "torch"
    share_cuda_visible_devices = True  # NCCL reaches the peers' GPUs directly
    worker_imports = ("torch.distributed",)  # seconds: overlapped with the workers' start

    def __post_init__(self) -> None:
        if self.backend not in (None, "gloo", "nccl"):
            raise ValueError(f"TorchConfig(backend={self.backend!r}): choose 'gloo', 'nccl' or None")
        if self.init_method not in (None, "file", "env", "tcp"):
            raise ValueError(f"TorchConfig(init_method={self.init_method!r}): choose 'file' (one "
                             f"machine), 'env' or 'tcp', or None to let raylite pick")

    def process_group_backend(self, use_gpu: bool) -> str:
        """The torch.distributed backend: the one asked for, else nccl on GPUs, gloo on CPUs."""
        return self.backend or ("nccl" if use_gpu else "gloo")

    def rendezvous(self, group: WorkerGroup) -> tuple[str, str, int]:
        """``(init_method URL, MASTER_ADDR, MASTER_PORT)`` for ``group``; a file store's
        directory is removed when the group stops."""
        address = group.workers[0].ip
        port = free_ports(group, [0])[0]  # for a TCPStore on rank 0, and for MASTER_PORT
        method = self.init_method or ("file" if group.on_this_machine() else "env")
        if method == "file":
            if not group.on_this_machine():
                raise ValueError("TorchConfig(init_method='file') needs every worker on the "
                                 "driver's machine; use 'env' for workers on several machines")
            directory = tempfile.mkdtemp(prefix="raylite-torch-store-")
            group.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
            return f"file://{os.path.join(directory, 'store')}", address, port
        return ("env://" if method == "env" else f"tcp://{address}:{port}"), address, port

    def on_start(self, group: WorkerGroup, use_gpu: bool) -> None:
        url, address, port = self.rendezvous(group)
        group.execute(setup_process_group, self.process_group_backend(use_gpu), url, address,
                      port, self.timeout_s)

    def on_shutdown(self, group: WorkerGroup) -> None:
        import raylite
        refs = group.execute_async(destroy_process_group)
        raylite.wait(refs, num_returns=len(refs), timeout=SHUTDOWN_TIMEOUT_S)


def setup_process_group(backend: str, init_url: str, address: str, port: int,
                        timeout_s: int) -> None:
    """Runs on each worker: join the group as this worker's rank (the environment variables
    torchrun sets are set too, for libraries that read them)."""
    import torch.distributed as dist
    context = worker_context()
    os.environ.update({
        "MASTER_ADDR": address, "MASTER_PORT": str(port), "RANK": str(context.world_rank),
        "WORLD_SIZE": str(context.world_size), "LOCAL_RANK": str(context.local_rank),
        "LOCAL_WORLD_SIZE": str(context.local_world_size), "GROUP_RANK": str(context.node_rank),
        "NODE_RANK": str(context.node_rank)})
    if dist.is_initialized():
        dist.destroy_process_group()
    if backend == "nccl":
        import torch
        torch.cuda.set_device(get_device())
    dist.init_process_group(backend=backend, init_method=init_url, rank=context.world_rank,
                            world_size=context.world_size, timeout=timedelta(seconds=timeout_s))


def destroy_process_group() -> None:
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------
# raylite.train.torch helpers (run inside the training function)
# ------------------------------------------------------------------------------------------
def get_device() -> Any:
    """This worker's torch device: its own GPU when it has one, else the CPU.

    Example:
        >>> from raylite.train.torch import get_device
        >>> get_device()
        device(type='cpu')
    """
    import torch
    context = worker_context()
    if context.device_index is not None and torch.cuda.is_available():
        return torch.device("cuda", context.device_index)
    return torch.device("cpu")


def prepare_model(model: Any, move_to_device: bool = True, wrap_ddp: bool = True,
                  ddp_kwargs: dict | None = None) -> Any:
    """Move ``model`` to this worker's device and wrap it in DistributedDataParallel (when
    there is more than one worker), so that ``backward()`` averages gradients over workers.

    Example:
        >>> import torch
        >>> from raylite.train.torch import prepare_model
        >>> model = prepare_model(torch.nn.Linear(2, 1))   # unchanged outside a Trainer
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"prepare_model takes a torch.nn.Module, got {type(model).__name__}")
    device = get_device()
    if move_to_device:
        model = model.to(device)
    if wrap_ddp and worker_context().world_size > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            raise RuntimeError("prepare_model needs torch.distributed: run the training function "
                               "with Trainer(backend='torch') or TorchTrainer")
        kwargs = dict(ddp_kwargs or {})
        if device.type == "cuda":
            kwargs.setdefault("device_ids", [device.index])
            kwargs.setdefault("output_device", device.index)
        model = DistributedDataParallel(model, **kwargs)
    return model


def prepare_data_loader(data_loader: Any, add_dist_sampler: bool = True,
                        move_to_device: bool = True) -> Any:
    """Give each worker its own part of the data (a DistributedSampler, reshuffled each
    epoch when the loader shuffled) and move every batch to the worker's device.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from raylite.train.torch import prepare_data_loader
        >>> loader = prepare_data_loader(DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2))
        >>> len(loader)
        2
    """
    from torch.utils.data import DataLoader
    if not isinstance(data_loader, DataLoader):
        raise TypeError(f"prepare_data_loader takes a torch DataLoader, got "
                        f"{type(data_loader).__name__}")
    context = worker_context()
    if add_dist_sampler and context.world_size > 1:
        data_loader = _with_distributed_sampler(data_loader, context.world_rank, context.world_size)
    if move_to_device or hasattr(data_loader.sampler, "set_epoch"):
        return _DeviceDataLoader(data_loader, get_device() if move_to_device else None)
    return data_loader


def _with_distributed_sampler(loader: Any, rank: int, world_size: int) -> Any:
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    if loader.batch_sampler is not None and type(loader.batch_sampler).__name__ != "BatchSampler":
        raise ValueError("prepare_data_loader cannot shard a DataLoader built with a custom "
                         "batch_sampler; pass add_dist_sampler=False and shard it yourself")
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank,
                                 shuffle=shuffle, drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      generator=loader.generator,
                      persistent_workers=loader.persistent_workers if loader.num_workers else False)


class _DeviceDataLoader:
    """A DataLoader whose batches arrive on ``device``; advances a DistributedSampler's epoch
    on each pass, so every epoch shuffles anew."""

    def __init__(self, loader: Any, device: Any):
        self._loader = loader
        self._device = device
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __iter__(self):
        if hasattr(self._loader.sampler, "set_epoch"):
            self._loader.sampler.set_epoch(self._epoch)
            self._epoch += 1
        if self._device is None or self._device.type == "cpu":
            yield from self._loader  # CPU tensors are already where they belong
            return
        for batch in self._loader:
            yield _move(batch, self._device)


def _move(batch: Any, device: Any) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [_move(item, device) for item in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    if isinstance(batch, dict):
        return {key: _move(value, device) for key, value in batch.items()}
    return batch


def enable_reproducibility(seed: int = 0) -> None:
    """Seed torch, numpy and random alike on every worker, and pick deterministic kernels."""
    import random

    import torch
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
        numpy.random.seed(seed)
    except ImportError:
        pass
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
