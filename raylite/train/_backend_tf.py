"""The TensorFlow backend: TF_CONFIG on every worker, for ``tf.distribute.MultiWorkerMirroredStrategy``,
and the Keras that ``tf.keras`` will be there.

    driver                          every worker (before the training function imports TensorFlow)
    on_start: a free port per worker
              --setup_tensorflow(["127.0.0.1:p0", "127.0.0.1:p1", ...], legacy_keras)-->
                  TF_CONFIG = {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": rank}}
                  TF_USE_LEGACY_KERAS = 1 when Keras 2 (the tf_keras package) is chosen

TensorFlow itself is imported by the training function (building the strategy reads
TF_CONFIG), not by raylite, so starting the group costs no TensorFlow import.

Why Keras 2 by default: Keras 3 (TensorFlow >= 2.16's ``tf.keras``) cannot ``model.fit`` under
MultiWorkerMirroredStrategy: it fails with "Attempt to convert a value (PerReplica...)"
(keras-team/keras#20585, still so in Keras 3.15). Keras 2, the ``tf_keras`` package, is what
TensorFlow's multi-worker tutorial runs, and TensorFlow routes ``tf.keras`` to it when
TF_USE_LEGACY_KERAS=1 is set before TensorFlow is imported. Custom training loops
(``strategy.run``) work with either Keras.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raylite.train._backend import BackendConfig, free_ports
from raylite.train._session import worker_context

if TYPE_CHECKING:
    from raylite.train._worker_group import WorkerGroup

logger = logging.getLogger("raylite.train")

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"
KERAS_3_FIT_HINT = (
    "Hint: this is Keras 3, whose model.fit cannot run under MultiWorkerMirroredStrategy "
    "(keras-team/keras#20585). Install Keras 2 on the workers (pip install tf_keras): the "
    "TensorFlow backend then makes it tf.keras (TensorflowConfig(legacy_keras=None or True)); "
    "or train with a custom loop (strategy.run and a GradientTape), which works with Keras 3.")


@dataclass
class TensorflowConfig(BackendConfig):
    """TensorFlow settings.

    Args:
        legacy_keras: which Keras ``tf.keras`` is on the workers. None (the default): Keras 2
            (the ``tf_keras`` package) when it is installed, unless TF_USE_LEGACY_KERAS is
            already set (then that setting stands); True: Keras 2, and an error at start-up if
            tf_keras is missing; False: TensorFlow's default (Keras 3 on TensorFlow >= 2.16),
            whose ``model.fit`` fails under MultiWorkerMirroredStrategy: write a custom loop.

    Example:
        >>> from raylite.train.tensorflow import TensorflowConfig
        >>> TensorflowConfig(legacy_keras=False).legacy_keras
        False
    """

    legacy_keras: bool | None = None

    name = "tensorflow"

    def __post_init__(self) -> None:
        if self.legacy_keras not in (None, True, False):
            raise TypeError(f"TensorflowConfig(legacy_keras={self.legacy_keras!r}): choose True, "
                            "False or None (Keras 2 when tf_keras is installed)")

    def on_start(self, group: WorkerGroup, use_gpu: bool) -> None:
        ranks = list(range(len(group.workers)))
        ports = free_ports(group, ranks)
        addresses = [f"{worker.ip}:{port}" for worker, port in zip(group.workers, ports)]
        group.execute(setup_tensorflow, addresses, self.legacy_keras)

    def explain_failure(self, remote_traceback: str) -> str | None:
        if "PerReplica" in remote_traceback and "keras/src/" in remote_traceback:
            return KERAS_3_FIT_HINT
        return None


def setup_tensorflow(addresses: list[str], legacy_keras: bool | None) -> str:
    """Runs on each worker: describe the cluster and this worker's place in it, and pick the
    Keras of ``tf.keras``. Returns "keras2" or "default" (what was chosen)."""
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": addresses},
        "task": {"type": "worker", "index": worker_context().world_rank}})
    return choose_keras(legacy_keras)


def choose_keras(legacy_keras: bool | None) -> str:
    """Set TF_USE_LEGACY_KERAS for ``legacy_keras`` (see TensorflowConfig); "keras2" or "default"."""
    have_tf_keras = importlib.util.find_spec("tf_keras") is not None
    if legacy_keras is None:
        if LEGACY_KERAS_VARIABLE in os.environ:  # the user decided
            return "keras2" if _legacy_requested() else "default"
        legacy_keras = have_tf_keras
    if legacy_keras and not have_tf_keras:
        raise ImportError("TensorflowConfig(legacy_keras=True) needs Keras 2, the tf_keras package, "
                          "on every worker: pip install tf_keras (the version matching tensorflow), "
                          "or pass legacy_keras=None / False")
    os.environ[LEGACY_KERAS_VARIABLE] = "1" if legacy_keras else "0"
    if "tensorflow" in sys.modules:
        logger.warning("raylite.train: TensorFlow was imported on this worker before the "
                       "TensorFlow backend set %s=%s; tf.keras may not follow it. Import "
                       "TensorFlow inside the training function, not in an initialization hook.",
                       LEGACY_KERAS_VARIABLE, os.environ[LEGACY_KERAS_VARIABLE])
    return "keras2" if legacy_keras else "default"


def _legacy_requested() -> bool:
    return os.environ.get(LEGACY_KERAS_VARIABLE) in ("1", "true", "True")


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
