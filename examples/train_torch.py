"""Distributed PyTorch training with raylite.train: the book's ``Trainer`` (Example 1-6) with a
real model. Run it::

    python examples/train_torch.py [--num-workers 2] [--epochs 8]

Two workers train a small MLP classifier on a synthetic two-spirals data set with
DistributedDataParallel over a gloo process group (nccl with ``--use-gpu``): each worker reads
its half of every epoch (``prepare_data_loader``), gradients are averaged across workers
(``prepare_model``), rank 0 checkpoints the model every epoch, and every worker reports its
loss and accuracy. The run is then resumed from the latest checkpoint for two more epochs.
"""

from __future__ import annotations

import argparse
import math

import raylite
from raylite import train
from raylite.train import Trainer


def two_spirals(num_points: int, seed: int = 0):
    """Points of two interleaved spirals (class 0 and 1), with a little noise."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    turns = torch.rand(num_points, generator=generator) * 3 * math.pi
    label = torch.arange(num_points) % 2
    sign = 1 - 2 * label.float()
    x = sign * turns * torch.cos(turns) / (3 * math.pi)
    y = sign * turns * torch.sin(turns) / (3 * math.pi)
    points = torch.stack([x, y], dim=1) + 0.02 * torch.randn(num_points, 2, generator=generator)
    return points, label


def train_func(config: dict) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from raylite.train.torch import prepare_data_loader, prepare_model

    torch.manual_seed(0)  # the same initial weights on every worker
    model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(),
                                torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    start_epoch = 0
    checkpoint = train.load_checkpoint()
    if checkpoint:  # resume: weights, optimizer state and epoch from rank 0's last save
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch = checkpoint["epoch"] + 1
    model = prepare_model(model)
    points, labels = two_spirals(config["num_points"])
    loader = prepare_data_loader(DataLoader(TensorDataset(points, labels),
                                            batch_size=config["batch_size"], shuffle=True))
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(start_epoch, start_epoch + config["epochs"]):
        total_loss, correct, seen = 0.0, 0, 0
        for features, target in loader:
            optimizer.zero_grad()
            logits = model(features)
            loss = loss_fn(logits, target)
            loss.backward()  # DDP all-reduces the gradients here
            optimizer.step()
            total_loss += loss.item() * len(target)
            correct += (logits.argmax(dim=1) == target).sum().item()
            seen += len(target)
        state = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
        train.save_checkpoint(epoch=epoch, model=state, optimizer=optimizer.state_dict())
        train.report(epoch=epoch, loss=total_loss / seen, accuracy=correct / seen)
    return {"rank": train.world_rank(), "examples_seen_per_epoch": seen}


class ProgressPrinter(train.TrainingCallback):
    def handle_result(self, results: list[dict], **info) -> None:
        losses = ", ".join(f"{r['loss']:.3f}" for r in results)
        accuracy = sum(r["accuracy"] for r in results) / len(results)
        print(f"epoch {results[0]['epoch']:2d}  loss per worker [{losses}]  "
              f"mean accuracy {accuracy:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--use-gpu", action="store_true")
    args = parser.parse_args()

    raylite.init()
    trainer = Trainer(backend="torch", num_workers=args.num_workers, use_gpu=args.use_gpu)
    trainer.start()
    config = {"lr": 0.01, "batch_size": 64, "num_points": 4000, "epochs": args.epochs}
    results = trainer.run(train_func, config, callbacks=[ProgressPrinter()])
    print("returned:", results)
    print("latest checkpoint:", trainer.latest_checkpoint_path)

    print("resuming from it for 2 more epochs")
    trainer.run(train_func, {**config, "epochs": 2}, callbacks=[ProgressPrinter()],
                checkpoint=trainer.latest_checkpoint)
    trainer.shutdown()
    raylite.shutdown()


if __name__ == "__main__":
    main()
