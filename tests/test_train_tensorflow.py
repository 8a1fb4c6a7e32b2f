"""raylite.train with TensorFlow: two workers train a Keras model under
tf.distribute.MultiWorkerMirroredStrategy (built from the TF_CONFIG raylite sets) and converge
to the same weights. TensorFlow takes seconds to import, so this module has one such run.

The loop is a custom one (strategy.run + GradientTape) over a Keras model and optimizer:
Keras 3's ``model.fit`` fails under MultiWorkerMirroredStrategy with or without raylite
("Attempt to convert a value (PerReplica...)", keras-team/keras#20585).
"""

import importlib.util
import os

import numpy as np
import pytest

from raylite import train
from raylite.train import Trainer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="needs tensorflow (the tf extra)")


def quiet_tensorflow():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"


def keras_loop(config):
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(256, 2)).astype("float32")
    y = (x @ np.array([[2.0], [-3.0]], dtype="float32") + 0.5).astype("float32")
    global_batch = 64
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch))
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
        optimizer = tf.keras.optimizers.SGD(learning_rate=0.3)
        optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(batch):
        def replica_step(inputs):
            features, targets = inputs
            with tf.GradientTape() as tape:
                error = tf.reduce_mean(tf.square(model(features, training=True) - targets), axis=-1)
                loss = tf.nn.compute_average_loss(error, global_batch_size=global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
        losses = strategy.run(replica_step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    history = []
    for epoch in range(config["epochs"]):
        losses = [float(train_step(batch)) for batch in dataset]
        history.append(sum(losses) / len(losses))
        train.report(epoch=epoch, loss=history[-1])
    return {"loss": history, "replicas": strategy.num_replicas_in_sync,
            "weights": [v.numpy().copy() for v in model.trainable_variables]}


def test_two_workers_train_keras_with_multi_worker_mirrored_strategy(ray, tmp_path):
    trainer = Trainer(backend="tensorflow", num_workers=2, logdir=tmp_path)
    trainer.start(initialization_hook=quiet_tensorflow)
    try:
        reports = []
        results = trainer.run(keras_loop, {"epochs": 6}, callbacks=[_Collect(reports)])
    finally:
        trainer.shutdown()
    assert [r["replicas"] for r in results] == [2, 2]  # one strategy over both processes
    first, last = results[0]["loss"][0], results[0]["loss"][-1]
    assert last < 0.01 < first  # converged: y = 2 x0 - 3 x1 + 0.5
    np.testing.assert_allclose(results[0]["weights"][0].ravel(), [2.0, -3.0], atol=0.1)
    for ours, theirs in zip(results[0]["weights"], results[1]["weights"]):  # replicas in sync
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert [[r["epoch"] for r in results] for results in reports] == [[e, e] for e in range(6)]


class _Collect(train.TrainingCallback):
    def __init__(self, into):
        self.into = into

    def handle_result(self, results, **info):
        self.into.append(results)
