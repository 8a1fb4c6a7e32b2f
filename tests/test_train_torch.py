"""raylite.train with PyTorch: a real torch.distributed process group, DDP that is exact (two
workers end where one process on the full batch ends), and a failing worker that is stopped
while its peer waits in a collective, and both rendezvous (a FileStore on one machine, a
TCPStore across machines). One 2-worker torch Trainer serves most of the module.
"""

import importlib.util
import os

import numpy as np
import pytest

from raylite import train
from raylite.train import Trainer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="needs torch (the torch extra)")


@pytest.fixture(scope="module")
def torch_group(ray, tmp_path_factory):
    """One 2-worker torch Trainer for the module, started when a test first needs it."""
    holder = {"trainer": Trainer(backend="torch", num_workers=2,
                                 logdir=tmp_path_factory.mktemp("train")), "started": False}
    yield holder
    holder["trainer"].shutdown()


@pytest.fixture
def torch_trainer(torch_group):
    if not torch_group["started"]:
        torch_group["trainer"].start()
        torch_group["started"] = True
    return torch_group["trainer"]


FEATURES = np.arange(24, dtype=np.float32).reshape(8, 3) / 10.0
TARGETS = (FEATURES @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32) + 0.3).astype(np.float32)


def ddp_train_loop(config):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from raylite.train.torch import prepare_data_loader, prepare_model
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.1, 0.2, 0.3]]))
        model.bias.fill_(0.0)
    model = prepare_model(model)
    data = TensorDataset(torch.tensor(config["x"]), torch.tensor(config["y"]))
    # each worker holds half of the rows and takes them as one batch
    loader = prepare_data_loader(DataLoader(data, batch_size=len(data) // train.world_size()))
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
    for _ in range(config["steps"]):
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    module = model.module if hasattr(model, "module") else model
    return {"ddp": type(model).__name__, "rows": len(loader.sampler),
            "weight": module.weight.detach().numpy().copy(),
            "bias": module.bias.detach().numpy().copy()}


def full_batch_reference(lr, steps):
    weight, bias = np.array([[0.1, 0.2, 0.3]], dtype=np.float64), 0.0
    x, y = FEATURES.astype(np.float64), TARGETS.astype(np.float64)
    for _ in range(steps):
        error = x @ weight.T + bias - y  # d(mean squared error)/d(prediction) = 2 * error / n
        weight = weight - lr * (2 * error * x).mean(axis=0, keepdims=True)
        bias = bias - lr * (2 * error).mean()
    return weight, bias


def test_ddp_two_workers_match_one_process_on_the_full_batch(torch_trainer):
    config = {"x": FEATURES, "y": TARGETS, "lr": 0.1, "steps": 5}
    results = torch_trainer.run(ddp_train_loop, config)
    weight, bias = full_batch_reference(config["lr"], config["steps"])
    assert [r["ddp"] for r in results] == ["DistributedDataParallel"] * 2
    assert [r["rows"] for r in results] == [4, 4]
    for result in results:  # both replicas agree with one process that saw all 8 rows
        np.testing.assert_allclose(result["weight"], weight, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result["bias"], [bias], rtol=1e-5, atol=1e-6)
    # and the answer is not the starting point: training moved it
    assert np.abs(results[0]["weight"] - [[0.1, 0.2, 0.3]]).max() > 0.05


def test_ranks_and_process_group(torch_trainer):
    def where_am_i():
        import torch.distributed as dist
        return (train.world_rank(), train.local_rank(), train.world_size(), dist.get_rank(),
                dist.get_world_size(), dist.get_backend(), os.getpid())

    results = torch_trainer.run(where_am_i)
    assert [r[:6] for r in results] == [(0, 0, 2, 0, 2, "gloo"), (1, 1, 2, 1, 2, "gloo")]
    assert results[0][6] != results[1][6] != os.getpid()
    assert sorted(torch_trainer.execute(os.getpid)) == sorted(r[6] for r in results)
    assert torch_trainer.execute_single(os.getpid) == results[0][6]


# ------------------------------------------------------------------------------------------
# failures
# ------------------------------------------------------------------------------------------
def test_error_on_one_worker_names_its_rank_and_stops_the_others(torch_trainer):
    import psutil
    pids = torch_trainer.execute(os.getpid)

    def loop():
        import torch.distributed as dist
        if train.world_rank() == 1:
            raise ValueError("bad batch on rank 1")
        dist.barrier()  # rank 0 waits for a peer that never comes: it must be stopped

    with pytest.raises(train.TrainingFailedError) as info:
        torch_trainer.run(loop)
    error = info.value
    assert isinstance(error, ValueError) and error.rank == 1
    message = str(error)
    assert "failed on worker rank 1 (of 2)" in message and "the other workers were stopped" in message
    assert 'raise ValueError("bad batch on rank 1")' in message  # the worker's traceback
    def alive(pid):  # a process may end between two psutil calls: that counts as ended
        try:
            return psutil.Process(pid).status() != "zombie"
        except psutil.NoSuchProcess:
            return False

    for pid in pids:  # both processes end (rank 0 was blocked in a collective)
        try:
            psutil.Process(pid).wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
    assert not any(alive(pid) for pid in pids)
    # the trainer starts a fresh group for the next run by itself
    assert torch_trainer.run(lambda: train.world_rank()) == [0, 1]


# ------------------------------------------------------------------------------------------
# the rendezvous
# ------------------------------------------------------------------------------------------
class FakeGroup:
    """What TorchConfig.rendezvous asks of a worker group."""

    def __init__(self, hosts):
        import socket
        here = socket.gethostname()
        self.workers = [type("W", (), {"ip": "127.0.0.1", "hostname": here if h == "here" else h})()
                        for h in hosts]
        self.cleanups = []

    def on_this_machine(self):
        import socket
        return all(w.hostname == socket.gethostname() for w in self.workers)

    def add_cleanup(self, cleanup):
        self.cleanups.append(cleanup)


def test_rendezvous_is_a_file_store_on_one_machine_and_tcp_across_machines(monkeypatch):
    from raylite.train import _backend_torch
    from raylite.train.torch import TorchConfig
    group = FakeGroup(["here", "here"])
    url, address, port = TorchConfig().rendezvous(group)
    assert url.startswith("file://") and address == "127.0.0.1" and port > 0
    directory = os.path.dirname(url[len("file://"):])
    assert os.path.isdir(directory) and len(group.cleanups) == 1
    group.cleanups[0]()  # what WorkerGroup.shutdown() does
    assert not os.path.exists(directory)
    remote = FakeGroup(["here", "elsewhere"])
    remote.workers[0].ip = "10.0.0.7"
    remote.on_this_machine = lambda: False
    monkeypatch.setattr(_backend_torch, "free_ports", lambda group, ranks: [29500])  # rank 0's
    assert TorchConfig().rendezvous(remote) == ("env://", "10.0.0.7", 29500)
    assert TorchConfig(init_method="tcp").rendezvous(remote)[0] == "tcp://10.0.0.7:29500"
    with pytest.raises(ValueError, match="init_method='file'.*every worker on the driver's machine"):
        TorchConfig(init_method="file").rendezvous(remote)
    with pytest.raises(ValueError, match="choose 'file'"):
        TorchConfig(init_method="nfs")


def test_tcp_store_rendezvous_works_too(ray, torch_group, tmp_path):
    # the rendezvous used across machines (a TCPStore on rank 0), here on one machine
    from raylite.train.torch import TorchConfig
    torch_group["trainer"].shutdown()  # two CPUs: the module's workers make room
    torch_group["started"] = False
    trainer = Trainer(TorchConfig(init_method="env"), num_workers=2, logdir=tmp_path)
    trainer.start()
    try:
        def all_reduce():
            import torch
            import torch.distributed as dist
            value = torch.tensor([float(train.world_rank() + 1)])
            dist.all_reduce(value)
            return value.item(), os.environ["MASTER_ADDR"]

        assert trainer.run(all_reduce) == [(3.0, "127.0.0.1")] * 2
    finally:
        trainer.shutdown()
