"""Distributed TensorFlow training with raylite.train: a Keras model trained with ``model.fit``
under ``tf.distribute.MultiWorkerMirroredStrategy``, on the Ray 2.x ``TensorflowTrainer``. Run it::

    python examples/train_tensorflow.py [--num-workers 2] [--epochs 10] [--custom-loop]

raylite sets TF_CONFIG on every worker (the cluster's addresses, this worker's index), so the
strategy built in the training loop spans all workers: each step every worker takes its share
of the global batch and the gradients are all-reduced. The model is a small Keras MLP
regressing a noisy nonlinear function of 4 synthetic features. ``ReportCheckpointCallback``
reports every epoch's loss from each worker and checkpoints rank 0's weights.

``model.fit`` needs Keras 2 (``pip install tf_keras``): the TensorFlow backend then makes it
``tf.keras`` on the workers, because Keras 3's ``model.fit`` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585). Without tf_keras, or with
``--custom-loop``, the example trains with a custom loop (``strategy.run`` and a GradientTape),
which works with either Keras.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

import raylite
from raylite import train
from raylite.train import Checkpoint, ScalingConfig
from raylite.train.tensorflow import TensorflowTrainer


def synthetic_data(rows: int, seed: int = 0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype("float32")
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3] - 0.3 * x[:, 3:4]
         + 0.05 * rng.normal(size=(rows, 1))).astype("float32")
    return x, y


def build_model(tf):
    return tf.keras.Sequential([tf.keras.Input(shape=(4,)),
                                tf.keras.layers.Dense(64, activation="relu"),
                                tf.keras.layers.Dense(64, activation="relu"),
                                tf.keras.layers.Dense(1)])


def fit_loop(config: dict) -> None:
    """Keras' own ``model.fit`` (Keras 2): the dataset is sharded over the workers by tf.data."""
    import tensorflow as tf

    from raylite.train.tensorflow.keras import ReportCheckpointCallback

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    global_batch = config["batch_per_worker"] * strategy.num_replicas_in_sync
    x, y = synthetic_data(config["rows"])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(global_batch)
    with strategy.scope():
        model = build_model(tf)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=config["lr"]), loss="mse")
    model.fit(dataset, epochs=config["epochs"], verbose=0,
              callbacks=[ReportCheckpointCallback(metrics={"mse": "loss"})])


def custom_loop(config: dict) -> None:
    """The same training as a custom loop, for Keras 3 (whose model.fit cannot do this)."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    global_batch = config["batch_per_worker"] * strategy.num_replicas_in_sync
    x, y = synthetic_data(config["rows"])
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(global_batch))
    with strategy.scope():
        model = build_model(tf)
        optimizer = tf.keras.optimizers.Adam(learning_rate=config["lr"])
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
        per_replica = strategy.run(replica_step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    for epoch in range(config["epochs"]):
        losses = [float(train_step(batch)) for batch in dataset]
        checkpoint = Checkpoint.from_dict({"epoch": epoch, "weights": model.get_weights()})
        train.report({"mse": sum(losses) / len(losses)}, checkpoint=checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--custom-loop", action="store_true",
                        help="train with strategy.run instead of model.fit")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the workers inherit it: less log noise
    custom = args.custom_loop or importlib.util.find_spec("tf_keras") is None
    if custom and not args.custom_loop:
        print("tf_keras is not installed: training with a custom loop (pip install tf_keras "
              "for model.fit)")

    raylite.init()
    trainer = TensorflowTrainer(
        custom_loop if custom else fit_loop,
        train_loop_config={"lr": 0.01, "batch_per_worker": 64, "rows": 4096, "epochs": args.epochs},
        scaling_config=ScalingConfig(num_workers=args.num_workers))
    result = trainer.fit()
    for epoch, metrics in enumerate(result.metrics_history):
        print(f"epoch {epoch:2d}  mse {metrics['mse']:.4f}")
    print("final:", {k: v for k, v in result.metrics.items() if not k.startswith("_")})
    print("checkpoint:", result.checkpoint, "epoch", result.checkpoint.to_dict()["epoch"])
    raylite.shutdown()


if __name__ == "__main__":
    main()
