"""Data transforms started inside a training loop while the workers hold every CPU.

The workers capture their children into their placement group (as a Tune trial's actor
does), and a worker blocked in ``get`` or ``wait`` lends its bundle's CPU to them, so a
``map_batches`` the loop runs completes instead of waiting for CPUs that the waiting workers
themselves hold. (Ray warns, or hangs, here.) Each run has a deadline: a regression fails
instead of hanging the suite.
"""

import threading

import pytest

import raylite
from raylite.air import ScalingConfig, session
from raylite.train.torch import TorchTrainer

DEADLINE_S = 120


def _fit_within_deadline(trainer):
    outcome = {}

    def fit():
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    if thread.is_alive():
        pytest.fail(f"training did not finish within {DEADLINE_S} s: the Data tasks its loop "
                    "started never got a CPU")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _double(batch):
    batch["id"] = batch["id"] * 2
    return batch


def _loop_runs_a_pipeline(config):
    rows = raylite.data.from_items([{"id": i} for i in range(100)]).map_batches(
        _double, batch_size=10, batch_format="pandas").take_all()
    session.report({"total": int(sum(row["id"] for row in rows)),
                    "free_cpus": raylite.available_resources().get("CPU", 0)})


def _loop_transforms_its_shard(config):
    shard = session.get_dataset_shard("train")
    total, rows = 0, 0
    doubled = shard.map_batches(_double, batch_size=5, batch_format="pandas")
    for batch in doubled.iter_batches(batch_size=5, batch_format="pandas"):
        total += int(batch["id"].sum())
        rows += len(batch["id"])
    raw = sum(int(batch["id"].sum())
              for batch in shard.iter_batches(batch_size=5, batch_format="pandas"))
    session.report({"total": total, "raw": raw, "rows": rows})


@pytest.fixture
def two_cpus():
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield
    raylite.shutdown()


def test_a_pipeline_run_in_the_loop_finishes_while_the_workers_hold_every_cpu(two_cpus):
    trainer = TorchTrainer(_loop_runs_a_pipeline, scaling_config=ScalingConfig(num_workers=2))
    result = _fit_within_deadline(trainer)
    assert result.metrics["total"] == 2 * sum(range(100))
    assert result.metrics["free_cpus"] == 0          # the workers did hold both CPUs


def test_a_shard_transformed_in_the_loop_finishes_while_the_workers_hold_every_cpu(two_cpus):
    trainer = TorchTrainer(_loop_transforms_its_shard, scaling_config=ScalingConfig(num_workers=2),
                           datasets={"train": raylite.data.from_items([{"id": i}
                                                                       for i in range(40)])})
    result = _fit_within_deadline(trainer)
    metrics = result.metrics                          # rank 0's half of the rows, doubled
    assert metrics["rows"] == 20 and metrics["total"] == 2 * metrics["raw"] > 0
