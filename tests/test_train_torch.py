"""raylite.train with PyTorch: a real torch.distributed process group, DDP that is exact (two
workers end where one process on the full batch ends), and a failing worker that is stopped
while its peer waits in a collective. One 2-worker torch Trainer serves the whole module.
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
def torch_trainer(ray, tmp_path_factory):
    trainer = Trainer(backend="torch", num_workers=2, logdir=tmp_path_factory.mktemp("train"))
    trainer.start()
    yield trainer
    trainer.shutdown()


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
    for pid in pids:  # both processes end (rank 0 was blocked in a collective)
        psutil.Process(pid).wait(timeout=10) if psutil.pid_exists(pid) else None
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)
    # the trainer starts a fresh group for the next run by itself
    assert torch_trainer.run(lambda: train.world_rank()) == [0, 1]
