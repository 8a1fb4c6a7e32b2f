"""raylite.train with GPUs, on a machine without any: the runtime is told it has two
(``init(num_gpus=2)``), so the whole path from the scheduler's GPU ids to each worker's
CUDA_VISIBLE_DEVICES, device index and process-group backend runs, with nothing that needs
CUDA. (nccl itself, and ``torch.cuda.set_device``, need a real GPU: not tested here.)

The workers use backends that import no framework, so each test takes a fraction of a second.
"""

import os

import pytest

from raylite import train
from raylite.train import BackendConfig, Trainer
from raylite.train._session import WorkerContext
from raylite.train._worker_group import Worker, _assign_ranks, check_own_gpus


@pytest.fixture(scope="module")
def gpu_ray():
    import raylite
    raylite.shutdown()
    raylite.init(num_cpus=2, num_gpus=2)
    yield raylite
    raylite.shutdown()


class SharedDevices(BackendConfig):
    """Like the torch backend: each worker sees its machine's GPUs and picks its own by index."""

    name = "shared-devices"
    share_cuda_visible_devices = True


def where_am_i():
    context = train.get_context()
    return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "gpu_ids": context.gpu_ids,
            "device_index": context.device_index, "local_rank": context.get_local_rank()}


@pytest.mark.parametrize("backend, visible", [
    (BackendConfig(), ["0", "1"]),           # each worker sees only its own GPU
    (SharedDevices(), ["0,1", "0,1"])])      # each sees both, and uses its own by index
def test_each_gpu_worker_gets_its_own_device(gpu_ray, tmp_path, backend, visible):
    trainer = Trainer(backend, num_workers=2, use_gpu=True, logdir=tmp_path)
    trainer.start()
    try:
        seen = trainer.run(where_am_i)
    finally:
        trainer.shutdown()
    assert sorted(g for s in seen for g in s["gpu_ids"]) == [0, 1]  # one GPU each, not shared
    assert [s["visible"] for s in seen] == visible
    devices = [int(s["visible"].split(",")[s["device_index"]]) for s in seen]
    assert devices == [s["gpu_ids"][0] for s in seen]  # the index points at the worker's own GPU
    assert [s["local_rank"] for s in seen] == [0, 1]


def test_two_workers_given_one_gpu_are_refused():
    # What the guard in WorkerGroup.start() sees when the runtime hands out GPU 0 twice.
    infos = [{"hostname": "a", "gpu_ids": [0], "pid": p, "ip": "10.0.0.1"} for p in (1, 2)]
    workers = _assign_ranks(["w1", "w2"], infos, share_devices=True)
    with pytest.raises(RuntimeError, match="rank 0 and rank 1 on a were both given GPU 0"):
        check_own_gpus(workers, 1.0)
    check_own_gpus(workers, 0.5)  # half a GPU each: sharing one is what was asked for
    other_host = [Worker("w3", WorkerContext(world_rank=2, gpu_ids=[0]), 3, "b", "10.0.0.2")]
    check_own_gpus(workers[:1] + other_host, 1.0)  # GPU 0 of another machine is another GPU


def test_torch_uses_nccl_on_gpus_and_gloo_on_cpus():
    from raylite.train.torch import TorchConfig
    assert TorchConfig().process_group_backend(use_gpu=True) == "nccl"
    assert TorchConfig().process_group_backend(use_gpu=False) == "gloo"
    assert TorchConfig(backend="gloo").process_group_backend(use_gpu=True) == "gloo"
    with pytest.raises(ValueError, match="choose 'gloo', 'nccl' or None"):
        TorchConfig(backend="mpi")


def test_gpu_workers_fail_fast_when_gpus_are_missing(gpu_ray, tmp_path):
    trainer = Trainer("tensorflow", num_workers=3, use_gpu=True, resources_per_worker={"CPU": 0.5},
                      logdir=tmp_path)
    with pytest.raises(ValueError, match=r"needs 3 GPU, but the cluster has 2 GPU \(2 free now\)"):
        trainer.start()
