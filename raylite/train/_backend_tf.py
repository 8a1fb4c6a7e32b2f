"""The TensorFlow backend: TF_CONFIG on every worker, for ``tf.distribute.MultiWorkerMirroredStrategy``.

    driver                  every worker
    on_start --find_free_port--> its port
             --set_tf_config(["127.0.0.1:p0", "127.0.0.1:p1", ...])--> TF_CONFIG =
                 {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": rank}}

TensorFlow itself is imported by the training function (building the strategy reads
TF_CONFIG), not by raylite, so starting the group costs no TensorFlow import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raylite.train._backend import BackendConfig, find_free_port
from raylite.train._session import worker_context

if TYPE_CHECKING:
    from raylite.train._worker_group import WorkerGroup


@dataclass
class TensorflowConfig(BackendConfig):
    """TensorFlow settings (none needed yet: TF_CONFIG is derived from the group)."""

    name = "tensorflow"

    def on_start(self, group: WorkerGroup, use_gpu: bool) -> None:
        ports = group.execute(find_free_port)
        addresses = [f"{worker.ip}:{port}" for worker, port in zip(group.workers, ports)]
        group.execute(set_tf_config, addresses)


def set_tf_config(addresses: list[str]) -> None:
    """Runs on each worker: describe the cluster and this worker's place in it."""
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": addresses},
        "task": {"type": "worker", "index": worker_context().world_rank}})


def prepare_dataset_shard(dataset: Any) -> Any:
    """Turn off tf.data's auto-sharding for a dataset that is already this worker's shard
    (one from ``train.get_dataset_shard``), so MultiWorkerMirroredStrategy does not shard it again.

    Example:
        >>> import tensorflow as tf                               # doctest: +SKIP
        >>> ds = prepare_dataset_shard(tf.data.Dataset.range(4))   # doctest: +SKIP
    """
    import tensorflow as tf
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)
